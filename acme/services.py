"""ACME workflows: credentials, nonces, accounts, orders, authorizations, challenges, finalize, revoke.

Services own their transactions and audit inside them (mazevault/audit.py: ``acme.*`` actions);
status changes are compare-and-set updates (``_cas``: ``UPDATE … WHERE status = old``, 0 rows = the row
moved meanwhile), so concurrent requests on any replica cannot both win. Network I/O (validation) never
runs inside a transaction: the challenge is marked ``processing`` and committed, the task validates,
then ``record_validation`` settles it. Issuance goes through exactly one function, ``issue_for_order``.
"""
from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from certificates import revocation as cert_revocation
from certificates import services as cert_services
from certificates.models import (Certificate, CertificateSource, CertificateStatus, CertificateTemplate,
                                 RequestMode, RevocationReason)
from certificates.pki import envelope, formats
from certificates.pki.errors import PKIError
from mazevault import audit
from mazevault.errors import Conflict, DomainError, PolicyViolation
from mazevault.models import Organization, Project, Severity

from . import jws, messages, policy, validation
from .models import (Account, AccountStatus, Authorization, AuthzStatus, Challenge, ChallengeStatus, ChallengeType,
                     EabCredential, Nonce, Order, OrderStatus)
from .problems import AcmeProblem, problem_document

logger = logging.getLogger(__name__)


def _cas(model, pk: Any, old: str | tuple[str, ...], new: str, **fields: Any) -> bool:
    olds = (old,) if isinstance(old, str) else old
    return bool(model.objects.filter(pk=pk, status__in=olds).update(status=new, **fields))


def actor_for(account: Account | None) -> str:
    """The audit actor name of an ACME account (accounts are not users)."""
    return f"acme:{account.pk}" if account is not None else "acme:anonymous"


# --- EAB credentials -------------------------------------------------------------------------------
def _keks() -> dict[str, bytes]:
    return {envelope.kek_id_for(k): k for k in (settings.MAZEVAULT_KEK, *settings.MAZEVAULT_OLD_KEKS)}


@dataclass(frozen=True)
class CredentialSpec:
    project: Project
    default_template: CertificateTemplate
    cluster_label: str = ""
    allowed_identifiers: tuple[str, ...] = ()
    max_accounts: int | None = None
    expires_at: Any = None


def create_credential(spec: CredentialSpec, *, actor: Any, organization: Organization) -> tuple[EabCredential, str]:
    """Mint an EAB key pair; return the credential and the HMAC key (unpadded base64url), the only time
    the key is ever available. It is stored sealed under the KEK, bound to the row id."""
    if spec.project.organization_id != organization.pk:
        raise Conflict("The project is not in this organization.", details={"field": "project_id"})
    if not cert_services.template_usable(spec.default_template, spec.project):
        raise Conflict("The template is not usable by this project.", details={"field": "default_template_id"})
    hmac_key = policy.new_eab_key()
    kek = settings.MAZEVAULT_KEK
    credential_id = uuid.uuid4()
    with transaction.atomic():
        credential = EabCredential.objects.create(
            id=credential_id, organization=organization, project=spec.project, default_template=spec.default_template,
            key_id=policy.new_eab_key_id(), kek_id=envelope.kek_id_for(kek),
            hmac_sealed=envelope.seal(hmac_key, kek=kek, kek_id=envelope.kek_id_for(kek),
                                      aad=b"acme-eab:" + str(credential_id).encode()),
            cluster_label=spec.cluster_label, allowed_identifiers=list(spec.allowed_identifiers),
            max_accounts=spec.max_accounts, expires_at=spec.expires_at,
            created_by=actor if getattr(actor, "is_authenticated", False) else None)
        # The key id is public (clients send it); the HMAC key never reaches the log.
        audit.record("acme.credential.created", actor=actor, entity=credential, severity=Severity.WARNING,
                     details={"eab_key_id": credential.key_id, "cluster_label": credential.cluster_label,
                              "default_template_id": str(spec.default_template.pk), "max_accounts": spec.max_accounts})
    return credential, jws.b64encode(hmac_key)


def credential_hmac_key(credential: EabCredential) -> bytes:
    return envelope.open_sealed(bytes(credential.hmac_sealed), keks=_keks(),
                                aad=b"acme-eab:" + str(credential.pk).encode())


def revoke_credential(credential: EabCredential, *, actor: Any) -> EabCredential:
    """No new accounts, and no new orders from the accounts it bound, from now on. Idempotent."""
    with transaction.atomic():
        updated = EabCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now())
        credential.refresh_from_db()
        if updated:
            audit.record("acme.credential.revoked", actor=actor, entity=credential, severity=Severity.WARNING,
                         details={"eab_key_id": credential.key_id, "accounts": credential.accounts.count()})
    return credential


# --- Nonces (RFC 8555 6.5) ------------------------------------------------------------------------
def new_nonce() -> str:
    value = jws.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes[:8])
    Nonce.objects.create(value=value, expires_at=timezone.now() + timedelta(seconds=settings.MAZEVAULT_ACME_NONCE_TTL_SECONDS))
    return value


def consume_nonce(value: str) -> bool:
    """Delete the nonce; True only for the one request whose DELETE removed the row.

    One statement: of two concurrent requests with the same nonce (on any replica) the second's DELETE
    finds no row once the first commits (PostgreSQL waits on the row lock, SQLite serialises writers),
    so a replay under concurrency fails ("The server MUST NOT accept ... a nonce it has already
    accepted", RFC 8555 6.5)."""
    if len(value) > 64:
        return False
    table = connection.ops.quote_name(Nonce._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE value = %s AND expires_at > %s", [value, timezone.now()])
        return cursor.rowcount == 1


# --- Accounts (RFC 8555 7.3) -------------------------------------------------------------------------
def find_account(thumbprint: str) -> Account | None:
    return Account.objects.filter(thumbprint=thumbprint).first()


def _check_contact(contact: list[str] | None) -> list[str]:
    """RFC 8555 7.3: mailto: URLs only here ("unsupportedContact"), one address each, no hfields."""
    result = []
    for entry in contact or []:
        if not entry.startswith("mailto:"):
            raise AcmeProblem("unsupportedContact", f"only mailto: contacts are supported, not {entry!r}")
        address = entry[len("mailto:"):]
        if "?" in address or "," in address or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
            raise AcmeProblem("invalidContact", f"{entry!r} is not a single mailto: address")
        result.append(entry)
    return result


def register_account(jwk: jws.PublicJwk, request: messages.NewAccount, *, url: str) -> tuple[Account, bool]:
    """new-account: (account, created). An existing key answers its account (RFC 8555 7.3.1: 200 + Location).

    RFC 8555 7.3.4: with externalAccountRequired, a request without a valid binding is
    ``externalAccountRequired``/``unauthorized``; the binding's kid selects the credential, whose project and
    default template the account is bound to.
    """
    existing = find_account(jwk.thumbprint)
    if existing is not None:
        return existing, False
    if request.only_return_existing:
        raise AcmeProblem("accountDoesNotExist", "no account exists for this key")
    if request.external_account_binding is None:
        raise AcmeProblem("externalAccountRequired", "this server requires an externalAccountBinding")
    contact = _check_contact(request.contact)
    found: dict[str, EabCredential] = {}

    def hmac_for(kid: str) -> bytes:
        credential = EabCredential.objects.filter(key_id=kid).first()
        if credential is None:
            raise AcmeProblem("unauthorized", "unknown externalAccountBinding key id")
        found["credential"] = credential
        try:
            return credential_hmac_key(credential)
        except PKIError:
            logger.error("EAB credential %s cannot be opened with the configured KEKs", credential.pk)
            raise AcmeProblem("serverInternal", "the server cannot check this binding now") from None

    jws.verify_eab(request.external_account_binding, account_jwk=jwk.json, url=url, key_id_to_hmac=hmac_for)
    credential = found["credential"]
    with transaction.atomic():
        # Row lock: the account count below cannot be raced past max_accounts (SQLite: its write lock).
        credential = EabCredential.objects.select_for_update().get(pk=credential.pk)
        if not credential.usable():
            raise AcmeProblem("unauthorized", "the externalAccountBinding credential is revoked or expired")
        if credential.max_accounts is not None and credential.accounts.count() >= credential.max_accounts:
            raise AcmeProblem("unauthorized", "the externalAccountBinding credential is used up")
        if Account.objects.filter(thumbprint=jwk.thumbprint).exists():
            return Account.objects.get(thumbprint=jwk.thumbprint), False
        try:
            with transaction.atomic():
                account = Account.objects.create(
                    credential=credential, organization_id=credential.organization_id,
                    project_id=credential.project_id, jwk=jwk.json, thumbprint=jwk.thumbprint, contact=contact,
                    eab_jws=request.external_account_binding)
        except IntegrityError:  # the same key registered concurrently through another credential: that account
            return Account.objects.get(thumbprint=jwk.thumbprint), False
        audit.record("acme.account.created", actor=actor_for(account), entity=account,
                     details={"eab_key_id": credential.key_id, "credential_id": str(credential.pk),
                              "contact": contact, "thumbprint": jwk.thumbprint})
    return account, True


def touch_account(account: Account) -> None:
    """last_used_at, written at most once a minute (the credential's detail shows it)."""
    now = timezone.now()
    if now - account.last_used_at > timedelta(seconds=60):
        Account.objects.filter(pk=account.pk).update(last_used_at=now)
        account.last_used_at = now


def update_account(account: Account, update: messages.AccountUpdate) -> Account:
    """Contact change and/or deactivation (RFC 8555 7.3.2, 7.3.6). A deactivated account's pending
    orders become invalid ("the server SHOULD cancel any pending operations authorized by the account's key")."""
    with transaction.atomic():
        if update.contact is not None:
            contact = _check_contact(update.contact)
            if contact != account.contact:
                Account.objects.filter(pk=account.pk).update(contact=contact)
                audit.record("acme.account.updated", actor=actor_for(account), entity=account,
                             details={"contact": {"old": account.contact, "new": contact}})
                account.contact = contact
        if update.deactivate:
            if not _cas(Account, account.pk, AccountStatus.VALID, AccountStatus.DEACTIVATED):
                raise AcmeProblem("unauthorized", "the account is not valid")
            account.status = AccountStatus.DEACTIVATED
            cancelled = Order.objects.filter(account=account, status__in=(OrderStatus.PENDING, OrderStatus.READY)) \
                .update(status=OrderStatus.INVALID, updated_at=timezone.now(),
                        error=problem_document("unauthorized", "the account was deactivated"))
            Authorization.objects.filter(account=account, status__in=(AuthzStatus.PENDING, AuthzStatus.VALID)) \
                .update(status=AuthzStatus.DEACTIVATED)
            audit.record("acme.account.deactivated", actor=actor_for(account), entity=account, severity=Severity.WARNING,
                         details={"orders_cancelled": cancelled})
    return account


def change_key(account: Account, new_jwk: jws.PublicJwk, inner: dict[str, Any], *, account_url: str) -> Account:
    """Account key roll-over (RFC 8555 7.3.5): the inner payload names this account and its current key,
    and no other account uses the new key (409 with that account's Location otherwise)."""
    if inner["account"] != account_url:
        raise AcmeProblem("malformed", "the inner payload's account is not the signing account")
    try:
        old_thumbprint = jws.thumbprint(inner["oldKey"])
    except (KeyError, TypeError):
        raise AcmeProblem("malformed", "oldKey is not a JWK") from None
    if old_thumbprint != account.thumbprint:
        raise AcmeProblem("unauthorized", "oldKey is not the account's current key")
    with transaction.atomic():
        other = Account.objects.filter(thumbprint=new_jwk.thumbprint).exclude(pk=account.pk).first()
        if other is not None:
            raise AcmeProblem("malformed", "another account uses the new key", status=409,
                              headers={"Location": f"{settings.MAZEVAULT_PUBLIC_URL}/api/acme/acct/{other.pk}"})
        updated = Account.objects.filter(pk=account.pk, thumbprint=account.thumbprint, status=AccountStatus.VALID) \
            .update(jwk=new_jwk.json, thumbprint=new_jwk.thumbprint)
        if not updated:
            raise AcmeProblem("unauthorized", "the account changed meanwhile")
        audit.record("acme.account.key_changed", actor=actor_for(account), entity=account, severity=Severity.WARNING,
                     details={"old_thumbprint": account.thumbprint, "new_thumbprint": new_jwk.thumbprint})
        account.jwk, account.thumbprint = new_jwk.json, new_jwk.thumbprint
    return account


# --- Orders (RFC 8555 7.4) ---------------------------------------------------------------------------
def acme_templates(project: Project):
    """Active templates with an ACME profile name that ``project`` may use (directory meta.profiles too)."""
    return CertificateTemplate.objects.filter(
        Q(project__isnull=True) | Q(project=project), organization_id=project.organization_id, is_active=True) \
        .exclude(acme_profile="")


def _template_for(account: Account, profile: str) -> CertificateTemplate:
    credential = account.credential
    if not profile:
        return credential.default_template
    template = acme_templates(account.project).filter(acme_profile=profile).order_by("project_id").first()
    if template is None:
        raise AcmeProblem("invalidProfile", f"profile {profile!r} is not available to this account")
    return template


def _challenge_types(identifier: messages.Identifier, wildcard: bool) -> list[str]:
    if wildcard:  # RFC 8555 7.1.3 / 8.3: wildcard names are proven through DNS only
        return [ChallengeType.DNS_01]
    if identifier.type == "ip":  # RFC 8738 7: no dns-01 for IP addresses; tls-alpn-01 needs reverse names
        return [ChallengeType.HTTP_01]
    return [ChallengeType.HTTP_01, ChallengeType.DNS_01, ChallengeType.TLS_ALPN_01]


def create_order(account: Account, request: messages.NewOrder) -> Order:
    """A pending order with one authorization per identifier; an identifier the account already holds a
    valid, unexpired authorization for reuses it (the order may then be ``ready`` at once)."""
    credential = account.credential
    if not credential.usable():
        raise AcmeProblem("unauthorized", "the account's external account credential is revoked or expired")
    if request.not_before or request.not_after:
        raise AcmeProblem("malformed", "notBefore/notAfter are not supported: the template sets the validity")
    identifiers = policy.normalise_all(request.identifiers)
    template = _template_for(account, request.profile)
    policy.check_template(template, identifiers, list(credential.allowed_identifiers or []))
    now = timezone.now()
    expires = now + timedelta(hours=settings.MAZEVAULT_ACME_ORDER_TTL_HOURS)
    with transaction.atomic():
        order = Order.objects.create(account=account, project_id=account.project_id, template=template,
                                     profile=request.profile, identifiers=[{"type": i.type, "value": i.value}
                                                                           for i in identifiers],
                                     expires=expires, replaces=request.replaces)
        reusable = {(a.identifier_type, a.identifier_value): a for a in Authorization.objects.filter(
            account=account, status=AuthzStatus.VALID, expires__gt=now + timedelta(minutes=5))}
        authzs, new_challenges = [], []
        for identifier in identifiers:
            wildcard = identifier.value.startswith("*.")
            value = identifier.value[2:] if wildcard else identifier.value
            authz = reusable.get((identifier.type, value)) if not wildcard else None
            if authz is None or authz.wildcard != wildcard:
                authz = Authorization.objects.create(
                    account=account, identifier_type=identifier.type, identifier_value=value, wildcard=wildcard,
                    expires=min(expires, now + timedelta(hours=settings.MAZEVAULT_ACME_AUTHZ_TTL_HOURS)))
                new_challenges += [Challenge(authorization=authz, type=t, token=policy.new_token())
                                   for t in _challenge_types(identifier, wildcard)]
            authzs.append(authz)
        Challenge.objects.bulk_create(new_challenges)
        order.authorizations.set(authzs)
        if all(a.status == AuthzStatus.VALID for a in authzs):
            Order.objects.filter(pk=order.pk).update(status=OrderStatus.READY)
            order.status = OrderStatus.READY
        audit.record("acme.order.created", actor=actor_for(account), entity=order,
                     organization_id=account.organization_id, project_id=account.project_id,
                     details={"identifiers": order.identifiers, "template_id": str(template.pk),
                              "profile": request.profile, "replaces": request.replaces,
                              "reused_authorizations": sum(1 for a in authzs if a.status == AuthzStatus.VALID)})
    return order


def _settle_order_status(order: Order) -> None:
    """pending → ready when every authorization is valid; → invalid when one is not usable any more."""
    statuses = list(order.authorizations.values_list("status", flat=True))
    if any(s in (AuthzStatus.INVALID, AuthzStatus.DEACTIVATED, AuthzStatus.EXPIRED, AuthzStatus.REVOKED)
           for s in statuses):
        _cas(Order, order.pk, (OrderStatus.PENDING, OrderStatus.READY), OrderStatus.INVALID, updated_at=timezone.now(),
             error=problem_document("unauthorized", "an authorization of this order is not valid"))
    elif statuses and all(s == AuthzStatus.VALID for s in statuses):
        _cas(Order, order.pk, OrderStatus.PENDING, OrderStatus.READY, updated_at=timezone.now())


def refresh_order(order: Order) -> Order:
    """Bring an order up to date before it is shown: expiry (RFC 8555 7.1.3 "expires"), and the outcome
    of an approval it waits for (the approval queue issues or rejects the certificate)."""
    now = timezone.now()
    if order.status in (OrderStatus.PENDING, OrderStatus.READY) and order.expires <= now:
        with transaction.atomic():
            if _cas(Order, order.pk, (OrderStatus.PENDING, OrderStatus.READY), OrderStatus.INVALID, updated_at=now,
                    error=problem_document("malformed", "the order expired before it was finalized")):
                audit.record("acme.order.expired", actor="system", entity=order,
                             organization_id=order.account.organization_id, project_id=order.project_id)
    elif order.status == OrderStatus.PROCESSING and order.certificate_id is not None:
        status, reason = Certificate.objects.filter(pk=order.certificate_id) \
            .values_list("status", "rejection_reason").first() or ("", "")
        with transaction.atomic():
            if status in (CertificateStatus.ACTIVE, CertificateStatus.REVOKED, CertificateStatus.EXPIRED):
                if _cas(Order, order.pk, OrderStatus.PROCESSING, OrderStatus.VALID, updated_at=now):
                    audit.record("acme.order.valid", actor="system", entity=order,
                                 organization_id=order.account.organization_id, project_id=order.project_id,
                                 details={"certificate_id": str(order.certificate_id)})
            elif status in (CertificateStatus.REJECTED, CertificateStatus.ARCHIVED, ""):
                if _cas(Order, order.pk, OrderStatus.PROCESSING, OrderStatus.INVALID, updated_at=now,
                        error=problem_document("unauthorized", f"the certificate request was rejected: {reason}"
                                               if reason else "the certificate request was rejected")):
                    audit.record("acme.order.invalid", actor="system", entity=order,
                                 organization_id=order.account.organization_id, project_id=order.project_id,
                                 details={"certificate_id": str(order.certificate_id), "reason": reason})
    else:
        return order  # nothing to bring up to date: no extra statement on the polling path
    order.refresh_from_db()
    return order


# --- Authorizations and challenges (RFC 8555 7.5) --------------------------------------------------------
def deactivate_authorization(authz: Authorization) -> Authorization:
    with transaction.atomic():
        if not _cas(Authorization, authz.pk, (AuthzStatus.PENDING, AuthzStatus.VALID), AuthzStatus.DEACTIVATED):
            raise AcmeProblem("malformed", f"an authorization in status {authz.status} cannot be deactivated")
        authz.status = AuthzStatus.DEACTIVATED
        for order in authz.orders.filter(status__in=(OrderStatus.PENDING, OrderStatus.READY)):
            _settle_order_status(order)
        audit.record("acme.authorization.deactivated", actor=actor_for(authz.account), entity=authz,
                     organization_id=authz.account.organization_id, project_id=authz.account.project_id,
                     details={"identifier": authz.identifier_value})
    return authz


def respond_to_challenge(challenge: Challenge) -> Challenge:
    """RFC 8555 7.5.1: the client says it is ready; the challenge goes to ``processing`` and a task on the
    ``acme`` queue validates it. Responding again, or to a settled challenge, changes nothing."""
    authz = challenge.authorization
    if authz.status != AuthzStatus.PENDING or authz.expires <= timezone.now():
        if challenge.status in (ChallengeStatus.PENDING,):
            raise AcmeProblem("malformed", f"the authorization is {authz.status}; its challenges cannot be answered")
        return challenge
    with transaction.atomic():
        if _cas(Challenge, challenge.pk, ChallengeStatus.PENDING, ChallengeStatus.PROCESSING):
            challenge.status = ChallengeStatus.PROCESSING
            audit.record("acme.challenge.responded", actor=actor_for(authz.account), entity=challenge,
                         organization_id=authz.account.organization_id, project_id=authz.account.project_id,
                         details={"type": challenge.type, "identifier": authz.identifier_value})
            from .tasks import validate_challenge
            challenge_id = str(challenge.pk)
            transaction.on_commit(lambda: validate_challenge.delay(challenge_id=challenge_id))
    return challenge


def caa_identities() -> tuple[str, ...]:
    """The issuer domain names CAA ``issue`` properties must name: MAZEVAULT_ACME_CAA_IDENTITIES, else the
    host of MAZEVAULT_PUBLIC_URL."""
    from urllib.parse import urlsplit

    return tuple(settings.MAZEVAULT_ACME_CAA_IDENTITIES) or (urlsplit(settings.MAZEVAULT_PUBLIC_URL).hostname or "",)


def validation_config() -> validation.Config:
    return validation.Config(caa_identities=caa_identities(), resolvers=tuple(settings.MAZEVAULT_ACME_DNS_RESOLVERS),
                             networks=tuple(settings.MAZEVAULT_ACME_VALIDATION_NETWORKS),
                             timeout=float(settings.MAZEVAULT_ACME_VALIDATION_TIMEOUT_SECONDS),
                             http01_port=settings.MAZEVAULT_ACME_HTTP01_PORT,
                             tlsalpn01_port=settings.MAZEVAULT_ACME_TLSALPN01_PORT)


def check_challenge(challenge: Challenge) -> validation.ValidationFailure | None:
    """One validation attempt (network I/O; call outside any transaction). None: satisfied."""
    authz = challenge.authorization
    key_authorization = jws.key_authorization(challenge.token, authz.account.jwk)
    name = f"*.{authz.identifier_value}" if authz.wildcard else authz.identifier_value
    config = validation_config()
    try:
        if challenge.type == ChallengeType.HTTP_01:
            validation.http01(authz.identifier_value, challenge.token, key_authorization, config)
        elif challenge.type == ChallengeType.DNS_01:
            validation.dns01(name, key_authorization, config)
        else:
            validation.tls_alpn01(authz.identifier_value, key_authorization, config)
        # RFC 8555 / RFC 8659: CAA is checked when the control of the name has been shown.
        validation.caa(name, config)
    except validation.ValidationFailure as failure:
        return failure
    return None


def record_validation(challenge_id: Any, failure: validation.ValidationFailure | None) -> None:
    """Settle a processing challenge, its authorization and the orders that use it, atomically."""
    now = timezone.now()
    with transaction.atomic():
        challenge = Challenge.objects.select_related("authorization__account").get(pk=challenge_id)
        authz = challenge.authorization
        if failure is None:
            if not _cas(Challenge, challenge.pk, ChallengeStatus.PROCESSING, ChallengeStatus.VALID, validated_at=now):
                return
            _cas(Authorization, authz.pk, AuthzStatus.PENDING, AuthzStatus.VALID)
        else:
            error = problem_document(failure.type, failure.detail,
                                     identifier={"type": authz.identifier_type, "value": authz.identifier_value})
            if not _cas(Challenge, challenge.pk, ChallengeStatus.PROCESSING, ChallengeStatus.INVALID, error=error):
                return
            # RFC 8555 7.1.6: one invalid challenge makes the authorization invalid.
            _cas(Authorization, authz.pk, AuthzStatus.PENDING, AuthzStatus.INVALID)
        for order in authz.orders.filter(status=OrderStatus.PENDING):
            _settle_order_status(order)
        audit.record("acme.challenge.validated" if failure is None else "acme.challenge.invalid",
                     actor="system", entity=challenge, organization_id=authz.account.organization_id,
                     project_id=authz.account.project_id,
                     details={"type": challenge.type, "identifier": authz.identifier_value,
                              **({"error": failure.type, "detail": failure.detail} if failure else {})})


# --- Finalize and issuance ---------------------------------------------------------------------------
def _csr_identifiers(csr: x509.CertificateSigningRequest) -> tuple[set[tuple[str, str]], str]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        other = len(list(san)) - len(dns) - len(ips)
    except x509.ExtensionNotFound:
        dns, ips, other = [], [], 0
    if other:
        raise AcmeProblem("badCSR", "the CSR may only name DNS names and IP addresses")
    cns = [a.value for a in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    names = {("dns", policy.normalise(messages.Identifier("dns", d)).value) for d in dns}
    names |= {("ip", policy.normalise(messages.Identifier("ip", i)).value) for i in ips}
    return names, (cns[0] if cns else "")


def issue_for_order(order: Order, csr_pem: str, *, internal: bool) -> Certificate:
    """THE issuance entry point of the ACME app: the same service as the REST API (template policy,
    audit, serial, extensions), with source=ACME. Orders whose names are all internal skip approval."""
    return cert_services.issue_certificate(
        cert_services.RequestInput(mode=RequestMode.UPLOADED_CSR, csr_pem=csr_pem,
                                   labels={"acme_order": str(order.pk)}),
        actor=actor_for(order.account), project=order.project, template=order.template,
        source=CertificateSource.ACME, internal_names=internal)


def finalize_order(order: Order, csr_der: bytes) -> Order:
    """RFC 8555 7.4: a ready order, a CSR naming exactly its identifiers → issued (valid) or, when the template
    needs approval, ``processing`` until the approval queue decides."""
    order = refresh_order(order)
    if order.status != OrderStatus.READY:
        raise AcmeProblem("orderNotReady", f"the order is {order.status}, not ready")
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError:
        raise AcmeProblem("badCSR", "the CSR is not a DER PKCS#10 request") from None
    if not csr.is_signature_valid:
        raise AcmeProblem("badCSR", "the CSR's signature does not verify")
    names, common_name = _csr_identifiers(csr)
    wanted = {(i["type"], i["value"]) for i in order.identifiers}
    if common_name and ("dns", common_name.lower().rstrip(".")) not in wanted and ("ip", common_name) not in wanted:
        raise AcmeProblem("badCSR", "the CSR's common name is not one of the order's identifiers")
    if names != wanted:
        raise AcmeProblem("badCSR", "the CSR must name exactly the order's identifiers",
                          extra={"extra": sorted(v for _, v in names - wanted),
                                 "missing": sorted(v for _, v in wanted - names)})
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    internal = policy.all_internal((messages.Identifier(t, v) for t, v in wanted), settings.MAZEVAULT_INTERNAL_SUFFIXES)
    try:
        with transaction.atomic():
            if not _cas(Order, order.pk, OrderStatus.READY, OrderStatus.PROCESSING, updated_at=timezone.now()):
                raise AcmeProblem("orderNotReady", "the order is being finalized already")
            cert = issue_for_order(order, csr_pem, internal=internal)
            status = OrderStatus.VALID if cert.status == CertificateStatus.ACTIVE else OrderStatus.PROCESSING
            Order.objects.filter(pk=order.pk).update(status=status, certificate=cert, updated_at=timezone.now())
            audit.record("acme.order.finalized", actor=actor_for(order.account), entity=order,
                         organization_id=order.account.organization_id, project_id=order.project_id,
                         details={"certificate_id": str(cert.pk), "status": status, "auto_approved": internal})
    except PolicyViolation as exc:
        raise AcmeProblem("badCSR", "the CSR violates the template policy: "
                          + "; ".join(v["message"] for v in exc.violations)) from None
    except PKIError as exc:
        raise AcmeProblem("badCSR", exc.message) from None
    except DomainError as exc:
        raise AcmeProblem("unauthorized" if exc.status < 500 else "serverInternal", exc.message) from None
    order.refresh_from_db()
    return order


# --- Revocation (RFC 8555 7.6) -----------------------------------------------------------------------
# Reasons a subscriber may give (RFC 5280 5.3.1); caCompromise and certificateHold are the operator's.
ACME_REASONS = {RevocationReason.UNSPECIFIED, RevocationReason.KEY_COMPROMISE, RevocationReason.AFFILIATION_CHANGED,
                RevocationReason.SUPERSEDED, RevocationReason.CESSATION_OF_OPERATION}


def find_certificate(der: bytes) -> tuple[Certificate, x509.Certificate]:
    try:
        parsed = x509.load_der_x509_certificate(der)
    except ValueError:
        raise AcmeProblem("malformed", "certificate is not a DER X.509 certificate") from None
    cert = Certificate.objects.filter(fingerprint_sha256=formats.fingerprint_sha256(parsed), ca__isnull=False) \
        .select_related("ca").first()
    if cert is None:
        raise AcmeProblem("malformed", "the certificate was not issued by this server", status=404)
    return cert, parsed


def _account_may_revoke(account: Account, cert: Certificate) -> bool:
    """RFC 8555 7.6: the account that ordered it, or one holding valid authorizations for every name in it
    (within the same project)."""
    if Order.objects.filter(account=account, certificate=cert).exists():
        return True
    if account.project_id != cert.project_id:
        return False
    held = set(Authorization.objects.filter(account=account, status=AuthzStatus.VALID, expires__gt=timezone.now())
               .values_list("identifier_value", flat=True))
    names = [name[2:] if name.startswith("*.") else name for name in cert.san]
    return bool(names) and all(name.lower() in held for name in names)


def revoke(request: messages.Revocation, *, account: Account | None, jwk: jws.PublicJwk | None) -> Certificate:
    cert, parsed = find_certificate(request.certificate_der)
    if jwk is not None:
        signer = serialization.PublicFormat.SubjectPublicKeyInfo
        if jwk.key.public_bytes(serialization.Encoding.DER, signer) != \
                parsed.public_key().public_bytes(serialization.Encoding.DER, signer):
            raise AcmeProblem("unauthorized", "the request is not signed by the certificate's key")
    elif account is None or not _account_may_revoke(account, cert):
        raise AcmeProblem("unauthorized", "this account may not revoke this certificate")
    reason = request.reason if request.reason is not None else 0
    if reason not in ACME_REASONS:
        raise AcmeProblem("badRevocationReason", f"reason {reason} is not accepted",
                          extra={"allowed": sorted(int(r) for r in ACME_REASONS)})
    if cert.status == CertificateStatus.REVOKED:
        raise AcmeProblem("alreadyRevoked", "the certificate is already revoked")
    if cert.status != CertificateStatus.ACTIVE:
        raise AcmeProblem("unauthorized", f"a {cert.status} certificate cannot be revoked")
    try:
        return cert_revocation.revoke_certificate(cert, actor=actor_for(account) if account else "acme:certificate-key",
                                                  reason=reason, comment="revoked over ACME")
    except Conflict:
        raise AcmeProblem("alreadyRevoked", "the certificate is already revoked") from None


def certificate_chain_pem(cert: Certificate) -> str:
    """RFC 8555 7.4.2: the end-entity certificate first, then the chain towards the root."""
    return cert.certificate_pem + cert.chain_pem


# --- Renewal information (RFC 9773) ------------------------------------------------------------------
def parse_cert_id(value: str) -> tuple[bytes, str]:
    """RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(serial DER INTEGER contents)."""
    aki, dot, serial = value.partition(".")
    if not dot or not aki or not serial:
        raise AcmeProblem("malformed", "the certificate id must be keyIdentifier.serialNumber")
    key_id = jws.b64decode(aki, "keyIdentifier")
    serial_bytes = jws.b64decode(serial, "serialNumber")
    if not serial_bytes or serial_bytes[0] & 0x80:
        raise AcmeProblem("malformed", "the serial number must be a positive DER integer")
    return key_id, formats.format_serial(int.from_bytes(serial_bytes, "big"))


def renewal_window(cert_id: str) -> dict[str, Any]:
    key_id, serial = parse_cert_id(cert_id)
    candidates = Certificate.objects.filter(serial_number=serial, ca__isnull=False).select_related("ca", "template")
    for cert in candidates:
        ca_cert = cert_services.ca_certificate(cert.ca)
        try:
            ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            continue
        if ski != key_id:
            continue
        now = timezone.now()
        if cert.status == CertificateStatus.REVOKED:
            # RFC 9773 4.2: a window in the past tells the client to renew at once.
            start, end = now - timedelta(hours=1), now
        else:
            days = cert.template.renewal_window_days if cert.template else 30
            lifetime = cert.not_after - cert.not_before
            window = min(timedelta(days=days), lifetime / 3)
            start = cert.not_after - window
            end = start + window / 2
        return {"suggestedWindow": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    raise AcmeProblem("malformed", "no certificate of this server has that id", status=404)


# --- Clean-up (beat) ---------------------------------------------------------------------------------
def clean_up() -> dict[str, int]:
    """Delete expired nonces; expire stale authorizations and orders. Idempotent."""
    now = timezone.now()
    nonces = Nonce.objects.filter(expires_at__lte=now)._raw_delete(Nonce.objects.db)
    with transaction.atomic():
        authzs = Authorization.objects.filter(status__in=(AuthzStatus.PENDING, AuthzStatus.VALID),
                                              expires__lte=now).update(status=AuthzStatus.EXPIRED)
        orders = Order.objects.filter(status__in=(OrderStatus.PENDING, OrderStatus.READY), expires__lte=now).update(
            status=OrderStatus.INVALID, updated_at=now,
            error=problem_document("malformed", "the order expired before it was finalized"))
        if authzs or orders:
            audit.record("acme.cleaned_up", actor="system", details={"authorizations_expired": authzs,
                                                                     "orders_expired": orders})
    return {"nonces": nonces, "authorizations": authzs, "orders": orders}
