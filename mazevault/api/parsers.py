"""Request parsers that enforce ``MAZEVAULT_MAX_UPLOAD_BYTES``.

DRF streams a JSON body straight from the WSGI input, bypassing Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE``; this parser reads at most the limit (+1 byte to detect excess)
and refuses anything larger with 413 before any parsing or database work.
"""
from __future__ import annotations

import json

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "PAYLOAD_TOO_LARGE"
    default_detail = "The request body is too large."


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.MAZEVAULT_MAX_UPLOAD_BYTES
        if stream is None:
            return {}
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.loads(raw.decode(encoding), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None


def _reject_constant(name: str):
    """NaN/Infinity are not JSON (RFC 8259); refuse them instead of storing non-standard floats."""
    raise ValueError(f"{name} is not valid JSON")
