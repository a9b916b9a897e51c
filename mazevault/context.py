"""Per-request context (request id, client IP) that services read without taking a request."""
from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip_address: str | None = None


_EMPTY = RequestContext()  # frozen, so sharing one default instance is safe
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("mazevault_request", default=_EMPTY)


def current() -> RequestContext:
    return _current.get()


def set_current(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)
