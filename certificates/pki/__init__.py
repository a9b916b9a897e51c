"""Pure X.509 / key-handling primitives for MazeVault Certificates.

Invariant: nothing in this package imports Django or touches the database;
every module depends only on the standard library and ``cryptography``, so
it can be unit-tested (and reasoned about) in isolation.  Import the
submodules directly (``from certificates.pki import keys``); this package
deliberately re-exports nothing.
"""
