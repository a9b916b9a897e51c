"""Domain errors. Services raise these; only ``mazevault/api/exceptions.py`` renders them."""
from __future__ import annotations

from typing import Any

# SQLSTATE 23505 (unique_violation) on PostgreSQL; SQLite reports it in the message only.
_UNIQUE_SQLSTATE = "23505"
_SQLITE_UNIQUE = ("UNIQUE constraint failed", "PRIMARY KEY must be unique")


def is_unique_violation(exc: BaseException) -> bool:
    """True when a database ``IntegrityError`` is a unique-constraint violation (a race between two
    writers of the same name or key), as opposed to a foreign-key or NOT NULL failure (a bug)."""
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == _UNIQUE_SQLSTATE:
        return True
    text = str(exc)
    return any(marker in text for marker in _SQLITE_UNIQUE)


class DomainError(Exception):
    """An error a client can act on: a stable UPPER_SNAKE code, an HTTP status and details."""

    code = "VALIDATION_ERROR"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details or {}


class ValidationFailed(DomainError):
    code, status = "VALIDATION_ERROR", 400


class InvalidFormat(DomainError):
    code, status = "INVALID_FORMAT", 400


class NotFound(DomainError):
    code, status = "RESOURCE_NOT_FOUND", 404


class PermissionDenied(DomainError):
    code, status = "PERMISSION_DENIED", 403


class Conflict(DomainError):
    code, status = "RESOURCE_CONFLICT", 409


class DuplicateName(DomainError):
    code, status = "DUPLICATE_NAME", 409


class PolicyViolation(DomainError):
    """The request is well-formed but the template or policy forbids it (422, every violation listed)."""

    code, status = "POLICY_VIOLATION", 422

    def __init__(self, message: str, *, violations: list[dict[str, str]]) -> None:
        super().__init__(message, details={"violations": violations})
        self.violations = violations
