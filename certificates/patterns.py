"""Template patterns (subject fields, SANs), matched in linear time.

A template's patterns are matched against values a requester chooses. With a backtracking engine
(Python's ``re``) a pattern such as ``(a+)+$`` takes time exponential in the value's length: one
request could hold a worker for minutes (ReDoS). Patterns are therefore compiled and matched by
RE2 (``google-re2``), whose matching time is linear in the input and which has no backtracking
constructs at all. What RE2 cannot express (look-around, back-references) is refused when the
template is saved, with a message naming the field, never discovered at request time.

Invariants:
- ``pattern_error(p)`` is None exactly when ``fullmatch(p, …)`` can run ``p``;
- a compiled program is bounded (``MAX_PROGRAM_BYTES``), so a pattern like ``((a{100}){100}){100}``
  is refused at save instead of allocating without limit;
- ``fullmatch`` of a pattern that cannot be compiled (e.g. one stored before this rule) is False:
  a template that cannot be evaluated allows nothing.
"""
from __future__ import annotations

from functools import lru_cache

import re2

MAX_PATTERN_LENGTH = 500
MAX_PROGRAM_BYTES = 2 << 20  # RE2 max_mem: compiled program and DFA cache of one pattern


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False  # a refused pattern is reported to the caller, not to stderr
    options.never_capture = True  # only "does it match" is asked; no groups to track
    return options


_OPTIONS = _options()


class PatternError(ValueError):
    """A pattern RE2 refuses; ``str()`` is a message fit for the template's author."""


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The compiled pattern (cached per process: templates are read on every request)."""
    if not isinstance(pattern, str):
        raise PatternError("must be a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"at most {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not accepted"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(f"not a valid RE2 regular expression ({reason}); look-around and "
                           "back-references are not supported") from None


def pattern_error(pattern: object) -> str | None:
    """Why ``pattern`` cannot be used as a template pattern, or None when it can."""
    try:
        compile_pattern(pattern)  # type: ignore[arg-type]
    except PatternError as exc:
        return str(exc)
    except TypeError:
        return "must be a string"
    return None


def fullmatch(pattern: str, value: str) -> bool:
    """``value`` matches the whole of ``pattern`` (linear time in ``len(value)``)."""
    try:
        compiled = compile_pattern(pattern)
    except (PatternError, TypeError):
        return False
    return compiled.fullmatch(value) is not None
