"""ACME endpoints (RFC 8555 section 7): transport only. Parse, authenticate, call a service, render.

Plain Django views, outside DRF: no REST error envelope, no REST throttle. Every error is an
``AcmeProblem`` rendered by acme/problems.py; an unexpected exception is logged and answered
``serverInternal`` without detail. Every response to a POST carries a fresh ``Replay-Nonce`` ("The
server MUST include a Replay-Nonce header field in every successful response to a POST request and
SHOULD provide it in error responses as well", RFC 8555 6.5) and ``Link: <directory>;rel="index"``.
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import jws, messages, problems, services
from .models import (Account, AccountStatus, Authorization, AuthzStatus, Challenge, ChallengeStatus, Order,
                     OrderStatus)
from .problems import AcmeProblem

logger = logging.getLogger(__name__)
PREFIX = "/api/acme"
JOSE = "application/jose+json"


def base() -> str:
    return f"{settings.MAZEVAULT_PUBLIC_URL}{PREFIX}"


def url(kind: str, pk: Any = None) -> str:
    return f"{base()}/{kind}" if pk is None else f"{base()}/{kind}/{pk}"


def _time(value) -> str:
    return value.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


# --- resource representations (RFC 8555 7.1.2 - 7.1.5) ----------------------------------------------------
def account_json(account: Account) -> dict[str, Any]:
    # The externalAccountBinding is a newAccount request field: it is kept (Account.eab_jws), not echoed.
    return {"status": account.status, "contact": account.contact, "orders": url("orders", account.pk),
            "createdAt": _time(account.created_at)}


def order_json(order: Order) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": order.status, "expires": _time(order.expires), "identifiers": order.identifiers,
        "authorizations": [url("authz", a.pk) for a in order.authorizations.all()],
        "finalize": url("finalize", order.pk),
    }
    if order.profile:
        body["profile"] = order.profile
    if order.replaces:
        body["replaces"] = order.replaces
    if order.status == OrderStatus.VALID and order.certificate_id:
        body["certificate"] = url("cert", order.certificate_id)
    if order.status == OrderStatus.INVALID and order.error:
        body["error"] = order.error
    return body


def challenge_json(challenge: Challenge) -> dict[str, Any]:
    body: dict[str, Any] = {"type": challenge.type, "url": url("challenge", challenge.pk), "status": challenge.status,
                            "token": challenge.token}
    if challenge.validated_at:
        body["validated"] = _time(challenge.validated_at)
    if challenge.error:
        body["error"] = challenge.error
    return body


def authz_json(authz: Authorization) -> dict[str, Any]:
    status = authz.status
    if status in (AuthzStatus.PENDING, AuthzStatus.VALID) and authz.expires <= timezone.now():
        status = AuthzStatus.EXPIRED
    challenges = list(authz.challenges.all())
    if status == AuthzStatus.VALID:  # RFC 8555 7.1.4: a valid authorization lists the challenge that validated it
        challenges = [c for c in challenges if c.status == ChallengeStatus.VALID] or challenges
    body: dict[str, Any] = {"identifier": {"type": authz.identifier_type, "value": authz.identifier_value},
                            "status": status, "expires": _time(authz.expires),
                            "challenges": [challenge_json(c) for c in challenges]}
    if authz.wildcard:
        body["wildcard"] = True
    return body


# --- the base view --------------------------------------------------------------------------------------
@method_decorator(csrf_exempt, name="dispatch")
class AcmeView(View):
    methods: tuple[str, ...] = ("POST",)
    allow_jwk = False  # new-account, revoke-cert: the request may be signed with a bare key
    require_jwk = False  # new-account: it must be
    nonce_header = True

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            if request.method not in self.methods:
                raise AcmeProblem("malformed", f"{request.method} is not allowed here", status=405,
                                  headers={"Allow": ", ".join(self.methods)})
            response = getattr(self, request.method.lower())(request, *args, **kwargs)
        except AcmeProblem as problem:
            response = problems.render(problem)
        except Exception:  # the edge: never a traceback or internal text to a client
            logger.exception("ACME %s %s failed", request.method, request.path)
            response = problems.render(problems.server_internal())
        if self.nonce_header:
            try:
                response["Replay-Nonce"] = services.new_nonce()
            except DatabaseError:
                logger.exception("cannot issue a nonce")
        response["Link"] = ", ".join([f'<{url("directory")}>;rel="index"', *getattr(response, "acme_links", [])])
        return response

    def authenticate(self, request: HttpRequest) -> tuple[jws.ParsedJws, Account | None, jws.PublicJwk | None]:
        """RFC 8555 6.2-6.5: JOSE content type, flattened JWS, url = the public URL of this request, a fresh
        nonce, then ``jwk`` (where allowed) or ``kid`` naming a valid account whose key verifies the signature."""
        if request.content_type != JOSE:
            raise AcmeProblem("malformed", f"the Content-Type must be {JOSE}", status=415)
        parsed = jws.parse(request.body)
        # RFC 8555 6.4: the url is compared with the URL the client addressed, as the public sees it
        # (behind a load balancer: MAZEVAULT_PUBLIC_URL + path, not this process's host and port).
        if parsed.url != f"{settings.MAZEVAULT_PUBLIC_URL}{request.path}":
            raise AcmeProblem("unauthorized", "the JWS url does not match the request URL")
        if not services.consume_nonce(parsed.nonce):
            raise AcmeProblem("badNonce", "the nonce is unknown, expired or already used")
        if parsed.jwk is not None:
            if not self.allow_jwk:
                raise AcmeProblem("malformed", "this resource needs a kid (the account URL), not a jwk")
            key = jws.load_jwk(parsed.jwk)
            parsed.verify(key)
            return parsed, None, key
        if self.require_jwk:
            raise AcmeProblem("malformed", "new-account requests are signed with the account key as jwk")
        prefix = url("acct") + "/"
        account = None
        if parsed.kid.startswith(prefix):
            try:
                account = Account.objects.select_related("credential").filter(
                    pk=uuid.UUID(parsed.kid[len(prefix):])).first()
            except ValueError:
                account = None
        if account is None:
            raise AcmeProblem("accountDoesNotExist", "the kid names no account of this server")
        parsed.verify(jws.load_jwk(account.jwk))
        if account.status != AccountStatus.VALID:
            raise AcmeProblem("unauthorized", f"the account is {account.status}")
        services.touch_account(account)
        return parsed, account, None

    def account_request(self, request: HttpRequest) -> tuple[jws.ParsedJws, Account]:
        parsed, account, _ = self.authenticate(request)
        assert account is not None  # allow_jwk is False: authenticate returns an account
        return parsed, account


def _owned(model, pk: Any, account: Account, path: str = "account"):
    """The account's own object, or 404 (another account's object does not exist for this one)."""
    obj = model.objects.filter(pk=pk, **{path: account}).first()
    if obj is None:
        raise AcmeProblem("malformed", f"no such {model._meta.verbose_name}", status=404)
    return obj


class DirectoryView(AcmeView):
    methods = ("GET",)
    nonce_header = False

    def get(self, request: HttpRequest) -> HttpResponse:
        """RFC 8555 7.1.1 (+ RFC 9773 renewalInfo, the profiles draft's meta.profiles)."""
        from certificates.models import CertificateTemplate

        profiles: dict[str, dict[str, str]] = {}
        for name, description, template_name in CertificateTemplate.objects.filter(is_active=True) \
                .exclude(acme_profile="").order_by("acme_profile", "name") \
                .values_list("acme_profile", "description", "name"):
            profiles.setdefault(name, {"description": f"Template: {template_name}" + (
                f" ({description})" if description else "")})
        return _json({
            "newNonce": url("new-nonce"), "newAccount": url("new-account"), "newOrder": url("new-order"),
            "revokeCert": url("revoke-cert"), "keyChange": url("key-change"), "renewalInfo": url("renewal-info"),
            "meta": {"externalAccountRequired": True, "profiles": profiles},
        })


class NewNonceView(AcmeView):
    methods = ("HEAD", "GET", "POST")

    def head(self, request: HttpRequest) -> HttpResponse:
        # RFC 8555 7.2: HEAD answers 200, GET 204; both "MUST include a Cache-Control header field with the
        # "no-store" directive".
        response = HttpResponse(status=200)
        response["Cache-Control"] = "no-store"
        return response

    def get(self, request: HttpRequest) -> HttpResponse:
        response = HttpResponse(status=204)
        response["Cache-Control"] = "no-store"
        return response

    post = get


class NewAccountView(AcmeView):
    allow_jwk = require_jwk = True

    def post(self, request: HttpRequest) -> HttpResponse:
        parsed, _, key = self.authenticate(request)
        body = messages.new_account(parsed.payload)
        account, created = services.register_account(key, body, url=parsed.url)
        return _json(account_json(account), status=201 if created else 200, Location=url("acct", account.pk))


class AccountView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        parsed, account = self.account_request(request)
        if account.pk != pk:
            raise AcmeProblem("unauthorized", "the kid is not this account")
        update = messages.account_update(parsed.payload)
        if update is not None:
            account = services.update_account(account, update)
        return _json(account_json(account), Location=url("acct", account.pk))


class OrdersView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        """RFC 8555 7.1.2.1: the account's orders (not yet invalid or valid ones are what clients need)."""
        _, account = self.account_request(request)
        if account.pk != pk:
            raise AcmeProblem("unauthorized", "these are not this account's orders")
        ids = Order.objects.filter(account=account, status__in=(OrderStatus.PENDING, OrderStatus.READY,
                                                                OrderStatus.PROCESSING)) \
            .order_by("-created_at").values_list("pk", flat=True)[:1000]
        return _json({"orders": [url("order", i) for i in ids]})


class KeyChangeView(AcmeView):
    def post(self, request: HttpRequest) -> HttpResponse:
        parsed, account = self.account_request(request)
        inner = jws.parse(json.dumps(parsed.payload).encode() if parsed.payload is not None else b"", inner=True)
        if inner.url != parsed.url:
            raise AcmeProblem("malformed", "the inner JWS url differs from the outer one")
        new_key = jws.load_jwk(inner.jwk)
        inner.verify(new_key)
        account = services.change_key(account, new_key, messages.key_change_inner(inner.payload),
                                      account_url=url("acct", account.pk))
        return _json(account_json(account), Location=url("acct", account.pk))


class NewOrderView(AcmeView):
    def post(self, request: HttpRequest) -> HttpResponse:
        parsed, account = self.account_request(request)
        order = services.create_order(account, messages.new_order(parsed.payload))
        return _json(order_json(order), status=201, Location=url("order", order.pk))


def _order_response(order: Order) -> HttpResponse:
    headers = {"Location": url("order", order.pk)}
    if order.status == OrderStatus.PROCESSING:
        headers["Retry_After"] = str(settings.MAZEVAULT_ACME_RETRY_AFTER_SECONDS)
    return _json(order_json(order), **headers)


class OrderView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        _, account = self.account_request(request)
        order = services.refresh_order(_owned(Order, pk, account))
        return _order_response(order)


class AuthorizationView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        parsed, account = self.account_request(request)
        authz = _owned(Authorization, pk, account)
        if messages.authorization_update(parsed.payload):
            authz = services.deactivate_authorization(authz)
        headers = {}
        if authz.status == AuthzStatus.PENDING and authz.challenges.filter(status=ChallengeStatus.PROCESSING).exists():
            headers["Retry_After"] = str(settings.MAZEVAULT_ACME_RETRY_AFTER_SECONDS)
        return _json(authz_json(authz), **headers)


class ChallengeView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        """RFC 8555 7.5.1: an empty JSON object ({}) asks for validation; POST-as-GET only reads."""
        parsed, account = self.account_request(request)
        challenge = _owned(Challenge, pk, account, "authorization__account")
        if parsed.payload is not None:
            if not isinstance(parsed.payload, dict):
                raise AcmeProblem("malformed", "a challenge response is a JSON object")
            challenge = services.respond_to_challenge(challenge)
            challenge.refresh_from_db()
        response = _json(challenge_json(challenge))
        if challenge.status == ChallengeStatus.PROCESSING:
            response["Retry-After"] = str(settings.MAZEVAULT_ACME_RETRY_AFTER_SECONDS)
        # RFC 8555 7.5.1: "a Link header field with relation "up" pointing to the authorization".
        response.acme_links = [f'<{url("authz", challenge.authorization_id)}>;rel="up"']
        return response


class FinalizeView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        parsed, account = self.account_request(request)
        order = _owned(Order, pk, account)
        order = services.finalize_order(order, messages.finalize(parsed.payload))
        return _order_response(order)


class CertificateView(AcmeView):
    def post(self, request: HttpRequest, pk: uuid.UUID) -> HttpResponse:
        """RFC 8555 7.4.2: application/pem-certificate-chain, end-entity first. Each CA here has one chain,
        so no rel="alternate" links are offered."""
        _, account = self.account_request(request)
        order = Order.objects.filter(account=account, certificate_id=pk, status=OrderStatus.VALID) \
            .select_related("certificate").first()
        if order is None or order.certificate is None:
            raise AcmeProblem("malformed", "no such certificate", status=404)
        return HttpResponse(services.certificate_chain_pem(order.certificate),
                            content_type="application/pem-certificate-chain")


class RevokeView(AcmeView):
    allow_jwk = True

    def post(self, request: HttpRequest) -> HttpResponse:
        parsed, account, key = self.authenticate(request)
        services.revoke(messages.revocation(parsed.payload), account=account, jwk=key)
        return HttpResponse(status=200)


class NotFoundView(AcmeView):
    methods = ("GET", "HEAD", "POST")
    nonce_header = False

    def get(self, request: HttpRequest, rest: str = "") -> HttpResponse:
        raise AcmeProblem("malformed", "no such ACME resource", status=404)

    head = post = get


class RenewalInfoView(AcmeView):
    methods = ("GET",)
    nonce_header = False

    def get(self, request: HttpRequest, cert_id: str) -> HttpResponse:
        """RFC 9773 4.2: the suggested renewal window, with Retry-After for the next poll."""
        return _json(services.renewal_window(cert_id), Retry_After=str(6 * 3600))
