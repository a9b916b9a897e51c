"""Extra components of ``GET /api/v1/health``, contributed by apps.

The core imports no app, so an app that has something worth alerting on (the certificates app's
key store) registers a check here when it loads. A check returns a dict of details when the
component is fine and raises ``ComponentDown`` (or any exception) when it is not. Registered
components are non-essential in DESIGN.md's sense: a failing one makes the answer
``200 {"status": "degraded"}`` naming it, while only an unreachable database makes it 503.
"""
from __future__ import annotations

from collections.abc import Callable

Check = Callable[[], "dict | None"]

_COMPONENTS: dict[str, Check] = {}


class ComponentDown(Exception):
    """A component is not working; ``reason`` is a stable lower_snake code shown by health."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def register_component(name: str, check: Check) -> None:
    """Add (or replace) the health check called ``name``."""
    _COMPONENTS[name] = check


def registered() -> dict[str, Check]:
    return dict(_COMPONENTS)
