"""Error type shared by the PKI layer.

Invariant: every failure the PKI layer reports to callers is a
:class:`PKIError` carrying a stable machine-readable ``code`` (and, where the
failure can be attributed to an input, the request ``field``).  Messages never
contain key material or secret-derived data.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PKIError"]


class PKIError(Exception):
    """A PKI operation failed for a reason the caller can act on.

    Codes in use:

    * ``INVALID_FORMAT`` - input is not parseable PEM/DER (or too large).
    * ``INVALID_CSR`` - a CSR parsed but its self-signature does not verify.
    * ``WEAK_KEY`` - key parameters are below policy (e.g. RSA < 2048 bits).
    * ``UNSUPPORTED_KEY`` - key algorithm/curve/size is not supported.
    * ``WRONG_PASSWORD`` - an encrypted private key could not be decrypted.
    * ``VALIDATION_ERROR`` - a name, SAN, usage or profile value is invalid.
    * ``KEY_DECRYPT_FAILED`` - an at-rest envelope could not be opened.
    * ``UNSUPPORTED_ALGORITHM`` - e.g. an OCSP CertID hash algorithm we cannot match.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "INVALID_FORMAT",
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: str = code
        self.field: str | None = field
        self.details: dict[str, Any] = dict(details) if details else {}

    def __repr__(self) -> str:
        return f"PKIError({self.message!r}, code={self.code!r}, field={self.field!r})"
