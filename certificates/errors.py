"""Domain errors of the certificates app, and how the pure PKI layer's errors reach clients.

``pki`` raises ``PKIError`` with its own codes and knows nothing of HTTP; ``translate_pki_error``
turns each into the product's top-level codes (DESIGN.md's list) with a stable sub-code in
``details`` (docs/errors.md):

- a CSR or other input that does not parse: 400 ``INVALID_FORMAT``, ``details.reason`` ``unparsable``;
- a CSR whose self-signature does not verify: 400 ``INVALID_FORMAT``, reason ``csr_signature_invalid``;
- a weak or unsupported key: 422 ``POLICY_VIOLATION``, one violation with code ``weak_key`` or
  ``unsupported_key`` (the same shape as template violations);
- a key that cannot be opened with the configured KEKs: a server fault, 503 ``SERVICE_UNAVAILABLE``
  with a generic message (logged, and reported by /api/v1/health as the ``keystore`` component).

The app registers the translation with the core's error handler when it loads (``apps.py``), so
the core never imports this app.
"""
from __future__ import annotations

import logging

from mazevault.errors import DomainError, InvalidFormat, PolicyViolation, ValidationFailed

from .pki.errors import PKIError

logger = logging.getLogger(__name__)


class KeyUnavailable(DomainError):
    """A stored private key cannot be used by this process (wrong or missing KEK, external custody
    this release cannot reach). Never the client's fault: 503, generic text."""

    code, status = "SERVICE_UNAVAILABLE", 503

    def __init__(self, message: str = "The signing key is unavailable; the operators have been alerted.", *,
                 details: dict | None = None) -> None:
        super().__init__(message, details=details)


_FORMAT_REASONS = {"INVALID_FORMAT": "unparsable", "INVALID_CSR": "csr_signature_invalid"}
_POLICY_REASONS = {"WEAK_KEY": "weak_key", "UNSUPPORTED_KEY": "unsupported_key"}
_INPUT_REASONS = {"WRONG_PASSWORD": "wrong_password", "VALIDATION_ERROR": "invalid_value"}


def translate_pki_error(exc: PKIError) -> DomainError:
    """The client-facing error for a ``PKIError`` (see the module docstring)."""
    field = exc.field or exc.details.get("field")
    base = {k: v for k, v in exc.details.items() if k != "field"}
    if exc.code in _FORMAT_REASONS:
        return InvalidFormat(exc.message, details={**base, "field": field, "reason": _FORMAT_REASONS[exc.code]})
    if exc.code in _POLICY_REASONS:
        return PolicyViolation(exc.message, violations=[{"field": field or "", "code": _POLICY_REASONS[exc.code],
                                                         "message": exc.message}])
    if exc.code == "KEY_DECRYPT_FAILED":
        # Which key, never why (the envelope is opaque on purpose); the KEK itself is not logged.
        logger.error("a stored key could not be decrypted with the configured KEKs (%s)", exc.details or "no details")
        from .keystore.health import note_failure

        note_failure("decrypt_failed")
        return KeyUnavailable()
    return ValidationFailed(exc.message, details={**base, "field": field,
                                                  "reason": _INPUT_REASONS.get(exc.code, "invalid_value")})
