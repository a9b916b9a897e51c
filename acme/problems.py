"""ACME errors and their problem documents (RFC 8555 section 6.7, RFC 7807).

Every error an ACME endpoint can answer is an ``AcmeProblem``; ``render()`` is the only place that
turns one into an ``application/problem+json`` response. Internal faults become ``serverInternal``
with a generic text (the detail goes to the log, never to the client).
"""
from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

NS = "urn:ietf:params:acme:error:"
CONTENT_TYPE = "application/problem+json"

# RFC 8555 6.7 (and RFC 9773 / the profiles draft): error type -> default HTTP status.
STATUS = {
    "accountDoesNotExist": 400,
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 403,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 400,
    "incorrectResponse": 403,
    "invalidContact": 400,
    "invalidProfile": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
}


class AcmeProblem(Exception):
    """An ACME error: ``type`` is the short name (``badNonce``), rendered as ``urn:ietf:params:acme:error:badNonce``."""

    def __init__(self, type_: str, detail: str, *, status: int | None = None,
                 subproblems: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        if type_ not in STATUS:
            raise ValueError(f"unknown ACME error type {type_}")
        super().__init__(detail)
        self.type = type_
        self.detail = detail
        self.status = status or STATUS[type_]
        self.subproblems = subproblems or []
        self.headers = headers or {}
        self.extra = extra or {}

    def document(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": NS + self.type, "detail": self.detail, "status": self.status}
        if self.subproblems:
            body["subproblems"] = self.subproblems
        body.update(self.extra)
        return body


def problem_document(type_: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem document to store on a challenge or an order (RFC 8555 7.1.3 ``error``, 7.1.5)."""
    return AcmeProblem(type_, detail, extra=extra).document()


def render(problem: AcmeProblem) -> HttpResponse:
    response = HttpResponse(json.dumps(problem.document()), status=problem.status, content_type=CONTENT_TYPE)
    for name, value in problem.headers.items():
        response[name] = value
    return response


def server_internal() -> AcmeProblem:
    return AcmeProblem("serverInternal", "The server could not process the request; try again later.")
