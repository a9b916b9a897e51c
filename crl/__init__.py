"""Revocation publishing: per-CA CRLs (full, delta, sharded) and the OCSP responder."""
