"""The OCSP responder over HTTP (RFC 6960 Appendix A, profiled by RFC 5019): transport only.

A plain Django view, not DRF: no authentication (relying parties are anonymous), no content
negotiation, no REST error envelope. Every answer is an ``application/ocsp-response``; problems are
OCSP error statuses, never a 500:

* not an OCSP request (empty, truncated, garbage, wrong Content-Type, larger than
  ``MAX_REQUEST_BYTES``, undecodable base64, unsupported CertID hash) -> malformedRequest (HTTP 200);
* a CA that is not ours -> unauthorized (HTTP 200);
* over the rate limit -> tryLater with HTTP 429 and Retry-After;
* the database unreachable -> tryLater with HTTP 503 and Retry-After;
* anything unexpected -> internalError (HTTP 200), logged.

GET (RFC 6960 A.1: "{url}/{url-encoding of base-64 encoding of the DER encoding of the
OCSPRequest}") takes the request from the path; the base64 may contain ``/``, ``+`` and ``=`` and
may arrive percent-encoded (once more than the server already decoded), in the URL-safe alphabet,
or without padding.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from datetime import UTC, datetime
from urllib.parse import unquote

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt

from certificates.pki.ocsp import MAX_REQUEST_BYTES
from mazevault.middleware import client_ip

from . import ocsp as service
from .ocsp_ratelimit import hit, parse_rate

logger = logging.getLogger(__name__)

REQUEST_TYPE = "application/ocsp-request"
RESPONSE_TYPE = "application/ocsp-response"
RETRY_AFTER_OUTAGE = 30
_B64 = re.compile(r"^[A-Za-z0-9+/\-_]*={0,2}$")
_MAX_ENCODED = (MAX_REQUEST_BYTES * 4) // 3 + 4


class _Malformed(Exception):
    pass


def _from_path(encoded: str) -> bytes:
    text = encoded
    for _ in range(2):  # the server decoded once; a client may have encoded twice
        if "%" not in text:
            break
        text = unquote(text)
    text = "".join(text.split())
    if not text or len(text) > _MAX_ENCODED or not _B64.match(text):
        raise _Malformed()
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed() from None


def _from_body(request: HttpRequest) -> bytes:
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != REQUEST_TYPE:
        raise _Malformed()
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Malformed() from None
    if length <= 0 or length > MAX_REQUEST_BYTES:
        raise _Malformed()  # refused before reading: an oversized body is never buffered
    body = request.read(MAX_REQUEST_BYTES + 1)
    if len(body) > MAX_REQUEST_BYTES:
        raise _Malformed()
    return body


def _response(answer: service.Answer, *, status: int = 200, get: bool = False) -> HttpResponse:
    response = HttpResponse(answer.der, content_type=RESPONSE_TYPE, status=status)
    response["Content-Length"] = str(len(answer.der))  # no chunking, also on the middleware-free path
    now = datetime.now(UTC)
    if get and answer.cacheable and answer.reuse_until and answer.reuse_until > now:
        # RFC 5019 section 6.2: caching headers for HTTP caches in front of the responder.
        # max-age ends when our own pre-signed copy would be replaced (well before nextUpdate,
        # which RFC 5019 requires max-age not to exceed), so an HTTP cache never holds a response
        # longer than we would have served it.
        max_age = int((answer.reuse_until - now).total_seconds())
        response["Cache-Control"] = f"max-age={max_age}, public, no-transform, must-revalidate"
        response["Last-Modified"] = http_date(answer.this_update.timestamp())
        response["Expires"] = http_date(answer.next_update.timestamp())
        response["ETag"] = f'"{hashlib.sha256(answer.der).hexdigest()[:32]}"'
    else:
        response["Cache-Control"] = "no-store"
    return response


def _rate_limited(request: HttpRequest) -> tuple[HttpResponse | None, tuple[int, int] | None]:
    rate = parse_rate(settings.MAZEVAULT_RATE_LIMIT_OCSP)
    if rate is None:
        return None, None
    limit, window = rate
    allowed, remaining, retry_after = hit(client_ip(request) or "unknown", limit, window)
    if allowed:
        return None, (limit, remaining)
    response = _response(service.TRY_LATER, status=429)
    response["Retry-After"] = str(retry_after)
    response["X-RateLimit-Limit"] = str(limit)
    response["X-RateLimit-Remaining"] = "0"
    return response, None


@csrf_exempt
def ocsp_view(request: HttpRequest, ca_id: object = None, encoded: str | None = None) -> HttpResponse:
    """POST ``…/ocsp`` with an ``application/ocsp-request`` body, or GET ``…/ocsp/<base64>``.

    ``ca_id`` in the URL is not needed: the CA is found by the request's CertID, so every URL
    serves every CA we hold (a certificate's AIA names its own CA's URL).
    """
    if request.method not in ("GET", "POST"):
        response = _response(service.MALFORMED, status=405)
        response["Allow"] = "GET, POST"
        return response
    is_get = request.method == "GET"
    try:
        limited, quota = _rate_limited(request)
        if limited is not None:
            return limited
        try:
            der = _from_path(encoded or "") if is_get else _from_body(request)
        except _Malformed:
            answer = service.MALFORMED
        else:
            answer = service.respond(der)
        response = _response(answer, get=is_get)
    except DatabaseError:
        logger.warning("OCSP: database unavailable, answering tryLater", exc_info=True)
        response = _response(service.TRY_LATER, status=503)
        response["Retry-After"] = str(RETRY_AFTER_OUTAGE)
        return response
    except Exception:  # noqa: BLE001 - the edge: never a 500, never a traceback to the client
        logger.exception("OCSP: unexpected error")
        return _response(service.INTERNAL_ERROR)
    if quota is not None:
        response["X-RateLimit-Limit"], response["X-RateLimit-Remaining"] = str(quota[0]), str(quota[1])
    return response
