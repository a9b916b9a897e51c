"""A WSGI fast path for the OCSP responder: its requests skip Django's middleware and URL resolver.

OCSP is the hottest, simplest endpoint we serve: anonymous, no session, no CSRF, no cookies, no HTML,
one DER body in and one out. The middleware stack (request id, security headers, WhiteNoise,
sessions, CommonMiddleware, CSRF, authentication, messages, clickjacking) does nothing useful for
it and costs about as much CPU as the cached answer itself. ``mazevault/wsgi.py`` wraps the Django
application with :func:`ocsp_fast_path`: a request whose path is an OCSP route goes straight to
``crl.ocsp_views.ocsp_view`` (the same view the URLconf routes, so behaviour is identical); every
other request goes to Django unchanged.

What the fast path keeps: Django's ``request_started``/``request_finished`` signals (database
connection lifecycle: ``CONN_MAX_AGE``, health checks), a real ``WSGIRequest`` (client address via
``mazevault.middleware.client_ip``, ``MAZEVAULT_TRUSTED_PROXIES`` included). What it drops on
purpose: the ``X-Request-ID`` header and the ``ALLOWED_HOSTS`` check (an OCSP answer is the same for
every Host, and is signed).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from django.core import signals
from django.core.handlers.wsgi import WSGIRequest

# The paths of crl/ocsp_urls.py, with Django's <uuid:> syntax (lower-case hex).
OCSP_PATH = re.compile(r"^/api/v1/(?:ca/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/)?ocsp"
                       r"(?:/(?P<encoded>.*))?$", re.DOTALL)

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class OCSPFastPath:
    """Sender of the request signals for requests served by the fast path."""


def ocsp_fast_path(django_app: WSGIApp) -> WSGIApp:
    """Wrap ``django_app`` so that OCSP requests bypass the middleware (see the module docstring)."""
    from .ocsp_views import ocsp_view

    def application(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        match = OCSP_PATH.match(path) if "ocsp" in path else None
        if match is None:
            return django_app(environ, start_response)
        signals.request_started.send(sender=OCSPFastPath, environ=environ)
        request = WSGIRequest(environ)
        try:
            encoded = match.group("encoded")
            response = ocsp_view(request, encoded=encoded)
        except BaseException:
            signals.request_finished.send(sender=OCSPFastPath)
            raise
        response._handler_class = OCSPFastPath  # its close() sends request_finished
        response._resource_closers.append(request.close)
        start_response(f"{response.status_code} {response.reason_phrase}",
                       [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())])
        return response

    return application
