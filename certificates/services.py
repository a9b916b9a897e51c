"""Certificate workflows: CAs, requests, approval, issuance, rejection, updates, expiry.

Services own their transactions and audit inside them; views, admin actions and tasks only call
them. Status changes go through ``states.transition`` (compare-and-set).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cryptography import x509
from django.db import IntegrityError, transaction
from django.utils import timezone

from certificates.pki import builder, csr as pki_csr, formats, keys, names
from mazevault import audit
from mazevault.errors import Conflict, NotFound, PermissionDenied, PolicyViolation, ValidationFailed
from mazevault.models import ApprovalPolicy, Organization, Project, Severity
from mazevault.rbac import Role
from mazevault.tenancy import Access

from . import policy, signals
from .keystore import get_signer, store_private_key
from .models import (Approval, CAKind, CAStatus, Certificate, CertificateAuthority, CertificateSigningRequest,
                     CertificateStatus, CertificateTemplate, RequestMode)
from .states import transition

BACKDATE = timedelta(minutes=5)  # tolerate relying parties whose clocks run a little behind
DEFAULT_REQUIRED_APPROVALS = 1  # no policy configured: one approval (secure default, docs/approvals.md)


# --- CA certificates, parsed once per process -------------------------------------------------
_CA_CERTS: dict[str, x509.Certificate] = {}
_CA_LOCK = threading.Lock()


def ca_certificate(ca: CertificateAuthority) -> x509.Certificate:
    cached = _CA_CERTS.get(str(ca.pk))
    if cached is None:
        with _CA_LOCK:
            cached = _CA_CERTS.setdefault(str(ca.pk), formats.load_certificate(ca.certificate_pem))
    return cached


def ca_chain(ca: CertificateAuthority) -> list[CertificateAuthority]:
    """``ca`` and its ancestors, issuing CA first, root last."""
    chain = [ca]
    while chain[-1].parent_id is not None and len(chain) < 10:
        chain.append(chain[-1].parent)
    return chain


_CA_CHAIN_PEMS: dict[str, str] = {}


def ca_chain_pem(ca: CertificateAuthority) -> str:
    """The PEMs of ``ca_chain(ca)``, read once per process (CA certificates and parents never change)."""
    cached = _CA_CHAIN_PEMS.get(str(ca.pk))
    if cached is None:
        cached = _CA_CHAIN_PEMS.setdefault(str(ca.pk), "".join(c.certificate_pem for c in ca_chain(ca)))
    return cached


# --- Certificate authorities --------------------------------------------------------------------
@dataclass(frozen=True)
class CASpec:
    name: str
    subject: dict[str, str]
    key_type: str = "ec-p256"
    validity_days: int = 3650
    path_length: int | None = None
    crl_url: str = ""
    ocsp_url: str = ""
    crl_full_interval_hours: int = 24
    crl_full_validity_hours: int = 168
    crl_delta_interval_hours: int = 1
    crl_delta_validity_hours: int = 24
    crl_keep_expired: bool = False
    crl_shards: int = 0
    ocsp_sign_with_ca_key: bool = False


def create_ca(spec: CASpec, *, actor: Any, organization: Organization, project: Project | None = None,
              parent: CertificateAuthority | None = None) -> CertificateAuthority:
    """Create a root (``parent`` None) or an intermediate signed by one of our CAs."""
    if spec.key_type not in keys.KEY_TYPES or spec.key_type == "ed25519":
        raise ValidationFailed("CA keys are RSA or ECDSA.", details={"field": "key_type",
                                                                      "allowed": [k for k in keys.KEY_TYPES if k != "ed25519"]})
    if not spec.subject.get("common_name"):
        raise ValidationFailed("A CA needs a subject common_name.", details={"field": "subject.common_name"})
    subject = names.build_name(spec.subject)
    if CertificateAuthority.objects.filter(organization=organization, name=spec.name).exists():
        raise_duplicate("A CA with this name already exists in the organization.")
    now = timezone.now()
    issuer_cert = issuer_key = None
    if parent is not None:
        if parent.organization_id != organization.pk:
            raise NotFound("Parent CA not found.")
        if parent.status != CAStatus.ACTIVE or parent.not_after <= now:
            raise Conflict("The parent CA is not active.", details={"parent_id": str(parent.pk)})
        if parent.path_length is not None:
            # RFC 5280 4.2.1.9: pathLenConstraint bounds the CA certificates that may follow.
            if parent.path_length == 0:
                raise ValidationFailed("The parent CA may not issue CA certificates (pathLenConstraint 0).",
                                       details={"field": "parent_id"})
            if spec.path_length is None:
                spec = replace(spec, path_length=parent.path_length - 1)
            elif spec.path_length >= parent.path_length:
                raise ValidationFailed(f"path_length must be below the parent's ({parent.path_length}).",
                                       details={"field": "path_length"})
        issuer_cert = ca_certificate(parent)
        issuer_key = get_signer(parent.key).private_key()
    private_key = keys.generate_private_key(spec.key_type)
    profile = builder.CAProfile(
        subject=subject,
        public_key=private_key.public_key(),
        not_before=now - BACKDATE,
        not_after=now + timedelta(days=spec.validity_days),
        path_length=spec.path_length,
        crl_urls=parent.crl_urls() if parent else (),
        ocsp_urls=parent.ocsp_urls() if parent else (),
        ca_issuers_urls=parent.ca_issuers_urls() if parent else (),
    )
    cert = builder.sign_ca(profile, issuer_cert=issuer_cert, issuer_key=issuer_key or private_key)
    with transaction.atomic():
        stored = store_private_key(private_key, key_type=spec.key_type)
        ca = CertificateAuthority.objects.create(
            organization=organization, project=project, name=spec.name,
            kind=CAKind.INTERMEDIATE if parent else CAKind.ROOT, parent=parent, key=stored,
            key_type=spec.key_type, subject=names.name_to_string(cert.subject),
            serial_number=formats.format_serial(cert.serial_number),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
            certificate_pem=formats.cert_to_pem(cert), path_length=spec.path_length,
            crl_url=spec.crl_url, ocsp_url=spec.ocsp_url,
            crl_full_interval_hours=spec.crl_full_interval_hours, crl_full_validity_hours=spec.crl_full_validity_hours,
            crl_delta_interval_hours=spec.crl_delta_interval_hours,
            crl_delta_validity_hours=spec.crl_delta_validity_hours, crl_keep_expired=spec.crl_keep_expired,
            crl_shards=spec.crl_shards, ocsp_sign_with_ca_key=spec.ocsp_sign_with_ca_key,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit.record("ca.created", actor=actor, entity=ca, severity=Severity.WARNING,
                     details={"name": ca.name, "kind": ca.kind, "key_type": ca.key_type, "subject": ca.subject,
                              "parent_id": str(parent.pk) if parent else None})
        transaction.on_commit(lambda: signals.ca_created.send(sender=CertificateAuthority, ca_id=ca.pk))
    return ca


def raise_duplicate(message: str) -> None:
    from mazevault.errors import DuplicateName
    raise DuplicateName(message)


def update_object(obj: Any, changes: dict[str, Any], *, actor: Any, action: str,
                  severity: str = Severity.INFO) -> Any:
    """Apply plain field changes and audit them (old and new values) in one transaction."""
    diff = {}
    for name, value in changes.items():
        old = getattr(obj, name)
        if old != value:
            diff[name] = {"old": old, "new": value}
            setattr(obj, name, value)
    if not diff:
        return obj
    with transaction.atomic():
        try:
            obj.save(update_fields=[*diff.keys(), "updated_at"])
        except IntegrityError:
            raise_duplicate("The change conflicts with an existing object (duplicate name).")
        audit.record(action, actor=actor, entity=obj, severity=severity, details={"changes": diff})
    return obj


def create_object(obj: Any, *, actor: Any, action: str, details: dict[str, Any] | None = None) -> Any:
    with transaction.atomic():
        try:
            with transaction.atomic():
                obj.save(force_insert=True)
        except IntegrityError:
            raise_duplicate("An object with this name already exists.")
        audit.record(action, actor=actor, entity=obj, details=details or {"name": str(obj)})
    return obj


def delete_object(obj: Any, *, actor: Any, action: str) -> None:
    from django.db.models import ProtectedError

    entity = (obj._meta.model_name, obj.pk)
    org_id, project_id = getattr(obj, "organization_id", None), getattr(obj, "project_id", None)
    with transaction.atomic():
        try:
            obj.delete()
        except ProtectedError:
            raise Conflict("The object is still in use.") from None
        audit.record(action, actor=actor, entity=entity, severity=Severity.WARNING,
                     organization_id=org_id, project_id=project_id, details={"name": str(obj)})


# --- Requests ----------------------------------------------------------------------------------
@dataclass
class RequestInput:
    mode: str
    csr_pem: str = ""
    requested_cn: str = ""
    requested_subject: dict[str, str] | None = None
    requested_san: dict[str, list[str]] | None = None
    requested_key_algorithm: str = ""
    requested_key_size: int | None = None
    key_storage_mode: str = ""
    agent_id: Any = None
    generation_reference: str = ""
    name: str = ""
    description: str = ""
    labels: dict[str, str] | None = None
    owner_contacts: list[str] | None = None
    auto_renew: bool = False


def template_usable(template: CertificateTemplate, project: Project) -> bool:
    return (template.organization_id == project.organization_id
            and template.project_id in (None, project.pk))


def approval_requirement(template: CertificateTemplate, project: Project) -> tuple[int, str]:
    """(distinct approvals needed, approver role or "") for a request under ``template`` in ``project``."""
    if template.auto_approve:
        return 0, ""
    policies: list[ApprovalPolicy] = []
    if template.approval_policy_id is not None:
        policies = [template.approval_policy]
    else:
        policies = [p for p in ApprovalPolicy.objects.filter(project=project) if p.covers(project.environment)]
    if not policies:
        return DEFAULT_REQUIRED_APPROVALS, ""
    strictest = max(policies, key=lambda p: p.required_approvals)
    return strictest.required_approvals, strictest.approver_role


def _validate_names(template: CertificateTemplate, subject: dict[str, str], sans: dict[str, list[str]],
                    violations: policy.Violations) -> tuple[x509.Name, list[x509.GeneralName], dict[str, list[str]]]:
    policy.check_subject(template, subject, violations)
    sans = policy.with_cn_in_san(template, subject, sans)
    policy.check_sans(template, sans, violations)
    if not subject.get("common_name") and not any(sans.values()):
        violations.add("requested_subject.common_name", "a certificate needs a common name or a SAN")
    return names.build_name(subject), names.build_general_names(sans), sans


def submit_request(data: RequestInput, *, actor: Any, project: Project,
                   template: CertificateTemplate) -> Certificate:
    """Validate a request against its template; store it pending, or issue it at once.

    Nothing is written unless every check passes. An uploaded CSR's signature is verified and its
    key and names are checked like generated ones. A request that needs no approval comes back
    issued (status active).
    """
    if not template_usable(template, project):
        raise NotFound("Template not found.", details={"field": "template_id"})
    if not template.is_active:
        raise Conflict("The template is disabled.", details={"field": "template_id"})
    ca = template.ca
    if ca.status != CAStatus.ACTIVE or ca.not_after <= timezone.now():
        raise Conflict("The template's CA is not active.", details={"ca_id": str(ca.pk)})

    violations = policy.Violations()
    private_key = None
    if data.mode == RequestMode.UPLOADED_CSR:
        if not data.csr_pem:
            raise ValidationFailed("csr_pem is required for uploaded_csr.", details={"field": "csr_pem"})
        request = pki_csr.load_csr(data.csr_pem)
        subject = names.name_to_dict(request.subject)
        requested_sans = names.certificate_sans(request)
        public_key = request.public_key()
        policy.check_key(template, public_key, violations, "csr_pem")
        # Subject fields the CSR carries beyond the seven known ones would be silently lost: refuse.
        known = {a.oid for a in request.subject if a.oid in names.SUBJECT_FIELDS.values()}
        if len(known) != len({a.oid for a in request.subject}):
            violations.add("csr_pem", "the CSR subject has attributes MazeVault does not issue")
        if data.requested_cn and subject.get("common_name") and data.requested_cn != subject["common_name"]:
            violations.add("requested_cn", "requested_cn differs from the CSR's common name")
    elif data.mode == RequestMode.MAZEVAULT_GENERATED:
        if data.key_storage_mode not in ("", "local"):
            raise ValidationFailed("Only key_storage_mode 'local' is available.", details={"field": "key_storage_mode"})
        subject = dict(data.requested_subject or {})
        if data.requested_cn:
            if subject.get("common_name") and subject["common_name"] != data.requested_cn:
                violations.add("requested_cn", "requested_cn differs from requested_subject.common_name")
            subject.setdefault("common_name", data.requested_cn)
        requested_sans = {k: list(v) for k, v in (data.requested_san or {}).items()}
        if data.requested_key_algorithm:
            key_type = keys.key_type_for(data.requested_key_algorithm, data.requested_key_size)
        elif data.requested_key_size:
            raise ValidationFailed("requested_key_size needs requested_key_algorithm.",
                                   details={"field": "requested_key_algorithm"})
        else:
            key_type = template.default_key_type
        policy.check_generated_key_type(template, key_type, violations)
        public_key = None
    else:
        raise ValidationFailed(f"csr_source_mode {data.mode} is not available in this release.",
                               details={"field": "csr_source_mode"})

    subject = policy.effective_subject(template, subject)
    x509_subject, general_names, sans = _validate_names(template, subject, requested_sans, violations)
    if violations:
        raise PolicyViolation("The request violates the template policy.", violations=violations.items)

    if data.mode == RequestMode.MAZEVAULT_GENERATED:
        private_key = keys.generate_private_key(key_type)
        request = pki_csr.build_csr(private_key, subject, sans)
        csr_pem = pki_csr.csr_to_pem(request)
    else:
        csr_pem = pki_csr.csr_to_pem(request)

    required, approver_role = approval_requirement(template, project)
    # audit.batch(): the events are chained at the end, so signing does not hold the chain lock.
    with transaction.atomic(), audit.batch():
        stored_key = store_private_key(private_key) if private_key is not None else None
        cert = Certificate.objects.create(
            organization_id=project.organization_id, project=project, template=template, ca=ca,
            status=CertificateStatus.PENDING_APPROVAL,
            common_name=subject.get("common_name", "") or data.requested_cn,
            subject=names.name_to_string(x509_subject), san=names.sans_flat(sans),
            key_type=keys.describe_public_key((private_key.public_key() if private_key else public_key)).display,
            private_key=stored_key, name=data.name, description=data.description, labels=data.labels or {},
            owner_contacts=data.owner_contacts or [], auto_renew=data.auto_renew,
            required_approvals=required, approver_role=approver_role,
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        CertificateSigningRequest.objects.create(
            certificate=cert, mode=data.mode, csr_pem=csr_pem, requested_cn=data.requested_cn,
            requested_subject=subject, requested_san=sans,
            requested_key_algorithm=data.requested_key_algorithm, requested_key_size=data.requested_key_size,
            key_storage_mode=data.key_storage_mode or ("local" if private_key else ""),
            agent_id=data.agent_id, generation_reference=data.generation_reference,
        )
        audit.record("cert.requested", actor=actor, entity=cert,
                     details={"common_name": cert.common_name, "san": cert.san, "mode": data.mode,
                              "template_id": str(template.pk), "required_approvals": required})
        if required == 0:
            _issue(cert, actor=actor, request=request, general_names=general_names, subject=x509_subject)
    return cert


def crl_shard_for(ca: CertificateAuthority, serial: int) -> int | None:
    """The CRL shard a new certificate of ``ca`` goes to (None: the unsharded CRL). Chosen once, at
    issuance, and written into the certificate's CRL distribution point (docs/crl.md)."""
    return serial % ca.crl_shards if ca.crl_shards else None


def _issue(cert: Certificate, *, actor: Any, request: x509.CertificateSigningRequest | None = None,
           general_names: list[x509.GeneralName] | None = None, subject: x509.Name | None = None) -> Certificate:
    """Sign and activate a pending certificate. Caller holds the transaction (and the row lock)."""
    template, ca = cert.template, cert.ca
    if template is None or ca is None:
        raise Conflict("The request has no template or CA any more.")
    if request is None:
        request = pki_csr.load_csr(cert.request.csr_pem)
        subject = names.build_name(cert.request.requested_subject)
        general_names = names.build_general_names(cert.request.requested_san)
    now = timezone.now()
    if ca.status != CAStatus.ACTIVE or ca.not_after <= now:
        raise Conflict("The issuing CA is not active.", details={"ca_id": str(ca.pk)})
    days = cert.request.requested_validity_days or template.validity_days
    days = max(template.min_validity_days, min(days, template.max_validity_days))
    not_after = min(now + timedelta(days=days), ca.not_after)
    not_before = max(now - BACKDATE, ca.not_before)
    serial = builder.random_serial()
    shard = crl_shard_for(ca, serial)
    issued = builder.sign_leaf(
        builder.LeafProfile(
            subject=subject, public_key=request.public_key(), sans=general_names,
            not_before=not_before, not_after=not_after,
            key_usage=tuple(template.key_usage), extended_key_usage=tuple(template.extended_key_usage),
            crl_urls=ca.crl_urls(shard), ocsp_urls=ca.ocsp_urls(), ca_issuers_urls=ca.ca_issuers_urls(),
            serial=serial,
        ),
        issuer_cert=ca_certificate(ca), issuer_key=get_signer(ca.key).private_key(),
    )
    transition(
        cert, CertificateStatus.ACTIVE,
        serial_number=formats.format_serial(issued.serial_number),
        not_before=issued.not_valid_before_utc, not_after=issued.not_valid_after_utc,
        fingerprint_sha256=formats.fingerprint_sha256(issued), certificate_pem=formats.cert_to_pem(issued),
        chain_pem=ca_chain_pem(ca), issuer_cn=names.common_name(issued.issuer) or "",
        issued_at=now, crl_shard=shard,
    )
    audit.record("cert.issued", actor=actor, entity=cert,
                 details={"serial_number": cert.serial_number, "ca_id": str(ca.pk),
                          "not_after": cert.not_after.isoformat(), "fingerprint_sha256": cert.fingerprint_sha256})
    transaction.on_commit(lambda: signals.certificate_issued.send(sender=Certificate, certificate_id=cert.pk))
    return cert


def _lock(cert: Certificate) -> Certificate:
    """Reload the row under a lock (PostgreSQL ``SELECT … FOR UPDATE``; SQLite's write lock is
    already held because our transactions begin IMMEDIATE)."""
    return (Certificate.objects.select_for_update(of=("self",))
            .select_related("template", "ca", "ca__key", "request").get(pk=cert.pk))


def may_approve(access: Access, cert: Certificate) -> bool:
    if not access.has("certificate:approve", organization_id=cert.organization_id, project_id=cert.project_id):
        return False
    role = cert.approver_role
    if not role or access.is_superuser:
        return True
    roles = access.org_roles.get(cert.organization_id, set()) | access.project_roles.get(cert.project_id, set())
    return role in roles or Role.ADMIN in roles


def approve_certificate(cert: Certificate, *, actor: Any, access: Access, comment: str = "") -> Certificate:
    """Record one approval; issue when enough distinct approvers agreed. Never issues twice:
    the row lock serialises approvals, and issuance is a compare-and-set from pending."""
    with transaction.atomic(), audit.batch():
        cert = _lock(cert)
        if cert.status != CertificateStatus.PENDING_APPROVAL:
            raise Conflict(f"The certificate is {cert.status}, not pending_approval.",
                           details={"current_status": cert.status})
        if cert.requested_by_id is not None and cert.requested_by_id == getattr(actor, "pk", None):
            raise PermissionDenied("Nobody approves their own request.", details={"reason": "self_approval"})
        if not may_approve(access, cert):
            raise PermissionDenied(f"Approval needs the {cert.approver_role or 'certificate:approve'} role.",
                                   details={"permission": "certificate:approve", "approver_role": cert.approver_role})
        try:
            with transaction.atomic():
                Approval.objects.create(certificate=cert, approver=actor, comment=comment)
        except IntegrityError:
            raise Conflict("You already approved this request.", details={"reason": "already_approved"}) from None
        count = Approval.objects.filter(certificate=cert).count()
        audit.record("cert.approved", actor=actor, entity=cert,
                     details={"approvals": count, "required": cert.required_approvals, "comment": comment})
        if count >= max(1, cert.required_approvals):
            _issue(cert, actor=actor)
    return cert


def reject_certificate(cert: Certificate, *, actor: Any, reason: str) -> Certificate:
    if not reason.strip():
        raise ValidationFailed("A rejection needs a reason.", details={"field": "reason"})
    with transaction.atomic():
        cert = _lock(cert)
        transition(cert, CertificateStatus.REJECTED, rejected_at=timezone.now(),
                   rejected_by=actor if getattr(actor, "is_authenticated", False) else None,
                   rejection_reason=reason)
        audit.record("cert.rejected", actor=actor, entity=cert, details={"reason": reason})
    return cert


MUTABLE_FIELDS = ("name", "description", "labels", "owner_contacts", "auto_renew")


def update_certificate(cert: Certificate, changes: dict[str, Any], *, actor: Any) -> Certificate:
    """Change the mutable properties only; nothing cryptographic can change after issuance."""
    unknown = set(changes) - set(MUTABLE_FIELDS)
    if unknown:
        raise ValidationFailed("Only name, description, labels, owner_contacts and auto_renew can change.",
                               details={"fields": sorted(unknown)})
    return update_object(cert, changes, actor=actor, action="cert.updated")


def expire_certificates(batch_size: int = 500) -> int:
    """Move active certificates past notAfter to expired, auditing each one; returns how many."""
    moved = 0
    while True:
        ids = list(Certificate.objects.past_expiry().order_by("not_after").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return moved
        for cert in Certificate.objects.filter(pk__in=ids, status=CertificateStatus.ACTIVE):
            with transaction.atomic():
                try:
                    transition(cert, CertificateStatus.EXPIRED)
                except Conflict:
                    continue
                audit.record("cert.expired", actor="system", entity=cert,
                             details={"not_after": cert.not_after.isoformat() if cert.not_after else None})
                moved += 1
        if len(ids) < batch_size:
            return moved
