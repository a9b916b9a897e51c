"""The operators' console for certificates, their requests, CAs and templates.

Pending requests come first. Approve and reject, as list actions or as buttons on a request's
page, call the same service functions as the REST API (``approve_certificate`` /
``reject_certificate`` with the operator's ``Access``), so permissions, the self-approval ban, the
audit trail and the row lock that keeps two approvals from issuing twice are the API's own.
Nothing cryptographic can be edited: certificate and CA pages show the certificate decoded from
the stored PEM, and private keys never appear (only their storage metadata).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, ObjectIdentifier, SignatureAlgorithmOID
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import RelatedOnlyFieldListFilter, helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied as DjangoPermissionDenied
from django.core.validators import validate_email
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from mazevault import services as core
from mazevault.admin import PrettyJSONField, ScopedAdmin, audit_denied, changed_values, reload, unique_name_error
from mazevault.errors import Conflict, DomainError, PermissionDenied
from mazevault.models import ApprovalPolicy, Organization, Project, Severity
from mazevault.tenancy import Access

from . import services
from .models import (MAX_CRL_SHARDS, CAStatus, Certificate, CertificateAuthority, CertificateSigningRequest, CertificateStatus,
                     CertificateTemplate)
from .pki import csr as pki_csr, extensions, formats, keys, names
from .pki.errors import PKIError

# Pending requests sort before everything else; within each group the newest come first.
PENDING_FIRST = Case(When(status=CertificateStatus.PENDING_APPROVAL, then=Value(0)), default=Value(1),
                     output_field=IntegerField())

SUBJECT_KEYS = tuple(names.SUBJECT_FIELDS)


# --- Presentation helpers -----------------------------------------------------------------------
def humanise_age(delta: timedelta) -> str:
    """A compact age for lists: "42 s", "17 min", "3 h", "12 d"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def colon_hex(data: bytes) -> str:
    return ":".join(f"{octet:02X}" for octet in data)


def _oid_names(namespace: type) -> dict[ObjectIdentifier, str]:
    return {value: key for key, value in vars(namespace).items() if isinstance(value, ObjectIdentifier)}


_SIGNATURE_NAMES = _oid_names(SignatureAlgorithmOID)
_EXTENSION_NAMES = _oid_names(ExtensionOID)
_EKU_NAMES = {**_oid_names(ExtendedKeyUsageOID), **{oid: name for name, oid in extensions.EXTENDED_KEY_USAGES.items()}}
# RFC 5280 4.2.1.3 bit names and the attribute cryptography exposes for each.
_KEY_USAGE_BITS = (("digitalSignature", "digital_signature"), ("nonRepudiation", "content_commitment"),
                   ("keyEncipherment", "key_encipherment"), ("dataEncipherment", "data_encipherment"),
                   ("keyAgreement", "key_agreement"), ("keyCertSign", "key_cert_sign"), ("cRLSign", "crl_sign"))


def _constant_name(name: str) -> str:
    """``ECDSA_WITH_SHA256`` -> ``ECDSA with SHA256``; ``SUBJECT_ALTERNATIVE_NAME`` -> ``Subject alternative name``."""
    words = name.split("_")
    if name.startswith(("RSA", "ECDSA", "DSA", "ED")):
        return " ".join(w if w.isupper() and w != "WITH" else w.lower() for w in words)
    return " ".join(words).capitalize()


def general_name(value: x509.GeneralName) -> str:
    """One subjectAltName / distribution point entry, in OpenSSL's ``TYPE:value`` notation."""
    if isinstance(value, x509.DNSName):
        return f"DNS:{value.value}"
    if isinstance(value, x509.IPAddress):
        return f"IP:{value.value}"
    if isinstance(value, x509.RFC822Name):
        return f"email:{value.value}"
    if isinstance(value, x509.UniformResourceIdentifier):
        return f"URI:{value.value}"
    if isinstance(value, x509.DirectoryName):
        return f"DirName:{value.value.rfc4514_string()}"
    if isinstance(value, x509.RegisteredID):
        return f"RID:{value.value.dotted_string}"
    if isinstance(value, x509.OtherName):
        return f"othername:{value.type_id.dotted_string}"
    return str(value)


@dataclass
class Row:
    """One line of a decoded certificate: a label and its value(s)."""

    label: str
    values: list[str] = field(default_factory=list)
    critical: bool = False
    mono: bool = False

    def html(self) -> SafeString:
        css = "mv-value mv-mono" if self.mono else "mv-value"
        values = format_html_join("", '<div class="{}">{}</div>', ((css, v) for v in self.values)) \
            if self.values else format_html('<div class="mv-value mv-muted">{}</div>', "none")
        if self.critical:
            values = format_html('{}<div class="mv-critical">critical</div>', values)
        return values


def render_rows(rows: list[Row]) -> SafeString:
    body = format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', ((r.label, r.html()) for r in rows))
    return format_html('<table class="mv-decoded"><tbody>{}</tbody></table>', body)


def _validity_note(not_before: datetime, not_after: datetime, now: datetime) -> str:
    if now < not_before:
        return f"not yet valid (starts in {humanise_age(not_before - now)})"
    if now >= not_after:
        return f"expired {humanise_age(now - not_after)} ago"
    return f"valid, expires in {humanise_age(not_after - now)}"


def _public_key(public_key: Any) -> str:
    try:
        return keys.describe_public_key(public_key).display
    except PKIError as exc:
        return exc.message


def _extension_rows(exts: x509.Extensions) -> list[Row]:
    rows: list[Row] = []
    other: list[str] = []
    for ext in exts:
        value, critical = ext.value, ext.critical
        if isinstance(value, x509.SubjectAlternativeName):
            rows.append(Row("Subject alternative names", [general_name(n) for n in value], critical))
        elif isinstance(value, x509.KeyUsage):
            bits = [label for label, attr in _KEY_USAGE_BITS if getattr(value, attr)]
            if value.key_agreement:
                bits += [label for label, flag in (("encipherOnly", value.encipher_only),
                                                   ("decipherOnly", value.decipher_only)) if flag]
            rows.append(Row("Key usage", bits, critical))
        elif isinstance(value, x509.ExtendedKeyUsage):
            rows.append(Row("Extended key usage",
                            [_EKU_NAMES.get(oid, oid.dotted_string) for oid in value], critical))
        elif isinstance(value, x509.BasicConstraints):
            text = "CA: no"
            if value.ca:
                text = "CA: yes, " + ("no path length limit" if value.path_length is None
                                      else f"path length {value.path_length}")
            rows.append(Row("Basic constraints", [text], critical))
        elif isinstance(value, x509.SubjectKeyIdentifier):
            rows.append(Row("Subject key identifier", [colon_hex(value.digest)], critical, mono=True))
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            entries = [colon_hex(value.key_identifier)] if value.key_identifier else []
            if value.authority_cert_issuer:
                entries += [f"issuer {general_name(n)}" for n in value.authority_cert_issuer]
            if value.authority_cert_serial_number is not None:
                entries.append(f"serial {formats.format_serial(value.authority_cert_serial_number)}")
            rows.append(Row("Authority key identifier", entries, critical, mono=True))
        elif isinstance(value, x509.CRLDistributionPoints):
            points = [general_name(n) for point in value for n in (point.full_name or ())]
            rows.append(Row("CRL distribution points", points, critical))
        elif isinstance(value, x509.AuthorityInformationAccess):
            ocsp = [general_name(d.access_location) for d in value
                    if d.access_method == x509.AuthorityInformationAccessOID.OCSP]
            issuers = [general_name(d.access_location) for d in value
                       if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS]
            rows.append(Row("Authority information access: OCSP", ocsp, critical))
            rows.append(Row("Authority information access: CA issuers", issuers, critical))
        else:
            name = _EXTENSION_NAMES.get(ext.oid)
            label = _constant_name(name) if name else ext.oid.dotted_string
            other.append(f"{label} (critical)" if critical else label)
    if other:
        rows.append(Row("Other extensions", other))
    return rows


def decode_certificate(cert: x509.Certificate, *, now: datetime | None = None) -> list[Row]:
    """Everything an operator checks before trusting a certificate, read from the certificate
    itself (not from the database columns derived from it)."""
    now = now or timezone.now()
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    signature = _SIGNATURE_NAMES.get(cert.signature_algorithm_oid)
    rows = [
        Row("Subject", [cert.subject.rfc4514_string() or "(empty)"], mono=True),
        Row("Issuer", [cert.issuer.rfc4514_string()], mono=True),
        Row("Serial number", [formats.format_serial(cert.serial_number)], mono=True),
        Row("Validity", [f"from {not_before:%Y-%m-%d %H:%M:%S} UTC", f"until {not_after:%Y-%m-%d %H:%M:%S} UTC",
                         _validity_note(not_before, not_after, now)]),
        Row("Public key", [_public_key(cert.public_key())]),
        Row("Signature algorithm", [_constant_name(signature) if signature
                                    else cert.signature_algorithm_oid.dotted_string]),
    ]
    try:
        rows += _extension_rows(cert.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        rows.append(Row("Extensions", [f"could not be parsed: {exc}"]))
    rows.append(Row("SHA-256 fingerprint", [formats.fingerprint_sha256(cert)], mono=True))
    return rows


def render_certificate_pem(pem: str) -> SafeString:
    """The decoded certificate of ``pem``; a certificate that does not parse is said so, not a 500."""
    if not pem:
        return format_html('<p class="mv-muted">{}</p>', "Not issued yet.")
    try:
        cert = formats.load_certificate(pem)
    except PKIError as exc:
        return format_html('<p class="errornote">The stored certificate could not be decoded: {}</p>', exc.message)
    return render_rows(decode_certificate(cert))


def render_pem(pem: str) -> SafeString:
    if not pem:
        return format_html('<p class="mv-muted">{}</p>', "none")
    return format_html('<pre class="mv-pem">{}</pre>', pem.strip())


def render_chain(pem_bundle: str) -> SafeString:
    """Each certificate of a chain (issuing CA first), decoded, with its PEM behind a disclosure."""
    if not pem_bundle.strip():
        return format_html('<p class="mv-muted">{}</p>', "none")
    try:
        certs = formats.load_pem_certificates(pem_bundle)
    except PKIError as exc:
        return format_html('<p class="errornote">The stored chain could not be decoded: {}</p>', exc.message)
    parts = []
    for index, cert in enumerate(certs, start=1):
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        summary = [
            Row("Subject", [cert.subject.rfc4514_string()], mono=True),
            Row("Issuer", [cert.issuer.rfc4514_string()], mono=True),
            Row("Serial number", [formats.format_serial(cert.serial_number)], mono=True),
            Row("Valid until", [f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC"]),
            Row("SHA-256 fingerprint", [formats.fingerprint_sha256(cert)], mono=True),
        ]
        parts.append(format_html('<div class="mv-chain-entry"><h4>{}. {}</h4>{}<details><summary>PEM</summary>{}'
                                 '</details></div>', index, names.common_name(cert.subject) or "certificate",
                                 render_rows(summary), render_pem(pem)))
    return format_html_join("", "{}", ((p,) for p in parts))


def _sans_lines(sans: dict[str, list[str]] | None) -> list[str]:
    labels = {"dns_names": "DNS", "ip_addresses": "IP", "email_addresses": "email", "uris": "URI"}
    return [f"{labels.get(kind, kind)}:{value}" for kind in names.SAN_KEYS for value in (sans or {}).get(kind) or ()]


def status_badge(status: str, label: str) -> SafeString:
    return format_html('<span class="mv-status mv-status-{}">{}</span>', status, label)


# --- Certificates -------------------------------------------------------------------------------
class EmailListField(forms.CharField):
    """A list of e-mail addresses edited as text, one per line (commas also separate)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def __init__(self, *, max_entries: int = 20, **kwargs: Any) -> None:
        self.max_entries = max_entries
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        text = super().to_python(value) or ""
        return [part.strip() for part in re.split(r"[\n,]", text) if part.strip()]

    def validate(self, value: list[str]) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if len(value) > self.max_entries:
            raise forms.ValidationError(f"At most {self.max_entries} addresses.")
        for address in value:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"“{address}” is not a valid e-mail address.") from None

    def run_validators(self, value: Any) -> None:
        # CharField's length validators would measure the list; validate() checks every entry.
        return None

    def has_changed(self, initial: Any, data: Any) -> bool:
        return list(initial or []) != self.to_python(data)


class LabelsField(PrettyJSONField):
    def validate(self, value: Any) -> None:
        super().validate(value)
        if value in (None, ""):
            return
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise forms.ValidationError('Labels are a JSON object of strings, e.g. {"team": "payments"}.')
        if len(value) > 50:
            raise forms.ValidationError("At most 50 labels.")
        if any(len(v) > 200 for v in value.values()):
            raise forms.ValidationError("A label value has at most 200 characters.")


class CertificateForm(forms.ModelForm):
    """Only the mutable properties (``services.MUTABLE_FIELDS``), validated like the API's PUT."""

    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))
    labels = LabelsField(required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 4}),
                         help_text='A JSON object of strings, e.g. {"team": "payments"}.')
    owner_contacts = EmailListField(help_text="One e-mail address per line.")

    class Meta:
        model = Certificate
        fields = services.MUTABLE_FIELDS

    def clean_labels(self) -> dict[str, str]:
        return self.cleaned_data.get("labels") or {}


class ApproveForm(forms.Form):
    comment = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text="Recorded in the audit log and shown to the requester.")


class CAListFilter(RelatedOnlyFieldListFilter):
    """Only the CAs that issued something in the operator's own scope, titled "CA"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "CA"


def _request_of(cert: Certificate) -> CertificateSigningRequest | None:
    try:
        return cert.request
    except ObjectDoesNotExist:
        return None


@admin.register(Certificate)
class CertificateAdmin(ScopedAdmin):
    form = CertificateForm
    read_permission = "certificate:read"
    write_permission = "certificate:write"
    list_display = ("common_name_display", "sans_display", "template", "requester", "age", "status_display",
                    "project", "not_after")
    list_display_links = ("common_name_display",)
    list_filter = ("status", ("project", RelatedOnlyFieldListFilter), ("template", RelatedOnlyFieldListFilter),
                   ("ca", CAListFilter))
    list_select_related = ("project", "project__organization", "template", "ca", "requested_by")
    search_fields = ("common_name", "serial_number")
    search_help_text = "Common name, or serial number (01:AB:… or hex)."
    show_full_result_count = False
    actions = ("approve_selected", "reject_selected")
    summary_fields = ("status_display", "common_name", "subject", "project", "template", "issuing_ca", "source",
                      "requester", "requested_at", "age", "issued_at", "not_after", "private_key_held", "predecessor")

    # Queryset and permissions
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        return [PENDING_FIRST.asc(), "-requested_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requests arrive through the API, ACME and SCEP

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return self.access(request).has_anywhere("certificate:approve")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            try:
                serial = formats.format_serial(formats.parse_serial(term))
            except PKIError:
                pass
            else:  # any spelling of a serial finds it: 1abc, 0x01ABC, 01:ab:bc
                results = results | queryset.filter(serial_number=serial)
        return results, may_have_duplicates

    # List columns
    @admin.display(description="Common name / subject", ordering="common_name")
    def common_name_display(self, obj: Certificate) -> str:
        return obj.common_name or obj.subject or str(obj.pk)

    @admin.display(description="SANs")
    def sans_display(self, obj: Certificate) -> SafeString | str:
        if not obj.san:
            return "–"
        shown = ", ".join(obj.san[:3])
        more = f" +{len(obj.san) - 3} more" if len(obj.san) > 3 else ""
        return format_html('<span title="{}">{}{}</span>', ", ".join(obj.san), shown, more)

    @admin.display(description="Requester", ordering="requested_by__username")
    def requester(self, obj: Certificate) -> str:
        return obj.requested_by.get_username() if obj.requested_by else obj.get_source_display()

    @admin.display(description="Age", ordering="-requested_at")
    def age(self, obj: Certificate) -> SafeString:
        return format_html('<span title="requested {} UTC">{}</span>', f"{obj.requested_at:%Y-%m-%d %H:%M:%S}",
                           humanise_age(timezone.now() - obj.requested_at))

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: Certificate) -> SafeString:
        return status_badge(obj.status, obj.get_status_display())

    # Change page
    def get_fieldsets(self, request: HttpRequest, obj: Certificate | None = None):
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [(None, {"fields": self.summary_fields})]
        if obj is None:
            return fieldsets
        if obj.status == CertificateStatus.REJECTED or obj.rejected_at:
            fieldsets.append(("Rejection", {"fields": ("rejected_by", "rejected_at", "rejection_reason")}))
        if obj.revoked_at:
            fieldsets.append(("Revocation", {"fields": ("revoked_by", "revoked_at", "revocation_reason",
                                                        "revocation_comment")}))
        # An issued certificate is what the operator came for; a pending one is all request.
        if obj.certificate_pem:
            fieldsets.append(("Decoded certificate", {"fields": ("decoded_certificate", "certificate_pem_display",
                                                                 "chain_display")}))
        if _request_of(obj) is not None:
            fieldsets.append(("Request", {"fields": ("request_display", "approvals_display")}))
        fieldsets.append(("Properties", {"fields": services.MUTABLE_FIELDS}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Certificate | None = None) -> tuple[str, ...]:
        return (*self.summary_fields, "rejected_by", "rejected_at", "rejection_reason", "revoked_by", "revoked_at",
                "revocation_reason", "revocation_comment", "request_display", "approvals_display",
                "decoded_certificate", "certificate_pem_display", "chain_display")

    @admin.display(description="CA")
    def issuing_ca(self, obj: Certificate) -> SafeString | str:
        if obj.ca is None:
            return "–"
        url = reverse("admin:certificates_certificateauthority_change", args=[obj.ca_id],
                      current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, obj.ca.name)

    @admin.display(description="Private key")
    def private_key_held(self, obj: Certificate) -> str:
        key = obj.private_key  # metadata only: the sealed key never leaves the keystore
        if key is None:
            return "held by the requester (not stored by MazeVault)"
        kek = f", KEK {key.kek_id}" if key.kek_id else ""
        return f"stored by MazeVault: {key.key_type}, {key.get_storage_display()}{kek}"

    @admin.display(description="Decoded")
    def decoded_certificate(self, obj: Certificate) -> SafeString:
        return render_certificate_pem(obj.certificate_pem)

    @admin.display(description="PEM")
    def certificate_pem_display(self, obj: Certificate) -> SafeString:
        return render_pem(obj.certificate_pem)

    @admin.display(description="Chain")
    def chain_display(self, obj: Certificate) -> SafeString:
        return render_chain(obj.chain_pem)

    @admin.display(description="Request")
    def request_display(self, obj: Certificate) -> SafeString:
        req = _request_of(obj)
        if req is None:
            return format_html('<p class="mv-muted">{}</p>', "none")
        subject = names.build_name({k: v for k, v in (req.requested_subject or {}).items() if v})
        rows = [
            Row("Mode", [req.get_mode_display()]),
            Row("Requested subject", [subject.rfc4514_string() or "(empty)"], mono=True),
            Row("Requested SANs", _sans_lines(req.requested_san)),
        ]
        if req.key_storage_mode:
            rows.append(Row("Key storage", [req.key_storage_mode]))
        if req.requested_key_algorithm:
            size = f" {req.requested_key_size}" if req.requested_key_size else ""
            rows.append(Row("Requested key", [f"{req.requested_key_algorithm}{size}"]))
        if req.requested_validity_days:
            rows.append(Row("Requested validity", [f"{req.requested_validity_days} days"]))
        try:
            csr = pki_csr.load_csr(req.csr_pem)
        except PKIError as exc:
            rows.append(Row("CSR", [f"could not be decoded: {exc.message}"]))
            return render_rows(rows)
        rows += [
            Row("CSR subject", [csr.subject.rfc4514_string() or "(empty)"], mono=True),
            Row("CSR key", [_public_key(csr.public_key())]),
            Row("CSR signature", ["valid" if csr.is_signature_valid else "INVALID"]),
        ]
        return format_html("{}<details><summary>CSR PEM</summary>{}</details>", render_rows(rows),
                           render_pem(req.csr_pem))

    @admin.display(description="Approvals")
    def approvals_display(self, obj: Certificate) -> SafeString:
        approvals = list(obj.approvals.select_related("approver"))
        required = max(1, obj.required_approvals) if obj.required_approvals or approvals else 0
        role = f", approver role {obj.approver_role}" if obj.approver_role else ""
        head = (format_html("{} of {} required{}", len(approvals), required, role) if required
                else format_html("{}", "none required (auto-approved)"))
        if not approvals:
            return format_html("<p>{}</p>", head)
        rows = format_html_join("", "<tr><td>{}</td><td>{} UTC</td><td>{}</td></tr>", (
            (a.approver.get_username(), f"{a.created_at:%Y-%m-%d %H:%M:%S}", a.comment) for a in approvals))
        return format_html('<p>{}</p><table class="mv-approvals"><thead><tr><th>Approver</th><th>At</th>'
                           '<th>Comment</th></tr></thead><tbody>{}</tbody></table>', head, rows)

    def save_model(self, request: HttpRequest, obj: Certificate, form: forms.ModelForm, change: bool) -> None:
        # The form already wrote the new values onto ``obj``; the service needs the stored row
        # to compute and audit the difference.
        services.update_certificate(reload(obj), changed_values(form, services.MUTABLE_FIELDS), actor=request.user)

    # Approve / reject: one place for both the list actions and the buttons
    def refuse_decision(self, request: HttpRequest, cert: Certificate) -> str | None:
        """As the API's ``require("certificate:approve", obj=cert)``: deciding on a request needs the
        permission on the request's own project; a refusal is audited and explained."""
        if self.access(request).has("certificate:approve", organization_id=cert.organization_id,
                                    project_id=cert.project_id):
            return None
        audit_denied(request, "certificate:approve", obj=cert)
        return f"“{cert}”: permission denied (you do not hold certificate:approve in {cert.project})."

    def approve_one(self, request: HttpRequest, cert: Certificate, comment: str = "") -> tuple[int, str]:
        """Approve ``cert`` through the service; (message level, message) describing the outcome."""
        access = self.access(request)
        label = f"“{cert}”"
        if refusal := self.refuse_decision(request, cert):
            return messages.ERROR, refusal
        try:
            cert = services.approve_certificate(cert, actor=request.user, access=access, comment=comment)
        except PermissionDenied as exc:
            audit_denied(request, "certificate:approve", obj=cert, reason=exc.message)
            if exc.details.get("reason") == "self_approval":
                return messages.ERROR, f"{label}: you cannot approve your own request."
            return messages.ERROR, f"{label}: permission denied ({exc.message})"
        except Conflict as exc:
            if exc.details.get("current_status") == CertificateStatus.ACTIVE:
                return messages.WARNING, f"{label} is already issued (409); nothing changed."
            if exc.details.get("reason") == "already_approved":
                return messages.WARNING, f"{label}: you already approved this request (409)."
            return messages.WARNING, f"{label}: {exc.message} (409)"
        except DomainError as exc:
            return messages.ERROR, f"{label}: {exc.message}"
        except PKIError as exc:
            return messages.ERROR, f"{label} could not be issued: {exc.message}"
        if cert.status == CertificateStatus.ACTIVE:
            return messages.SUCCESS, f"{label} approved and issued, serial {cert.serial_number}."
        count = cert.approvals.count()
        return (messages.SUCCESS, f"{label} approved ({count} of {cert.required_approvals} approvals); it is "
                                  f"issued when enough operators have approved it.")

    def reject_one(self, request: HttpRequest, cert: Certificate, reason: str) -> tuple[int, str]:
        label = f"“{cert}”"
        if refusal := self.refuse_decision(request, cert):
            return messages.ERROR, refusal
        try:
            services.reject_certificate(cert, actor=request.user, reason=reason)
        except Conflict as exc:
            current = exc.details.get("current_status")
            if current:
                return messages.WARNING, f"{label} is {current}, not pending approval (409); nothing changed."
            return messages.WARNING, f"{label}: {exc.message} (409)"
        except DomainError as exc:
            return messages.ERROR, f"{label}: {exc.message}"
        return messages.SUCCESS, f"{label} rejected."

    @admin.action(description="Approve selected requests", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for cert in queryset:
            level, text = self.approve_one(request, cert)
            self.message_user(request, text, level)

    @admin.action(description="Reject selected requests", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        certs = list(queryset)
        if request.POST.get("mv_confirm"):
            form = RejectForm(request.POST)
            if form.is_valid():
                for cert in certs:
                    level, text = self.reject_one(request, cert, form.cleaned_data["reason"])
                    self.message_user(request, text, level)
                return None
        else:
            form = RejectForm()
        return self.render_reject(request, certs, form, action="reject_selected",
                                  cancel_url=request.get_full_path())

    def render_reject(self, request: HttpRequest, certs: list[Certificate], form: RejectForm, *, action: str,
                      cancel_url: str) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject certificate request" if len(certs) == 1 else "Reject certificate requests",
            "opts": self.opts,
            "objects": certs,
            "form": form,
            "action_name": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/certificates/certificate/reject_confirmation.html", context)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap: Callable = self.admin_site.admin_view
        return [
            path("<path:object_id>/approve/", wrap(self.approve_view), name="%s_%s_approve" % info),
            path("<path:object_id>/reject/", wrap(self.reject_view), name="%s_%s_reject" % info),
            *super().get_urls(),
        ]

    def _change_url(self, cert: Certificate) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[cert.pk],
                       current_app=self.admin_site.name)

    def _load(self, request: HttpRequest, object_id: str) -> Certificate | HttpResponse:
        cert = self.get_object(request, unquote(object_id))
        if cert is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, cert):
            raise DjangoPermissionDenied
        return cert

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        cert = self._load(request, object_id)
        if isinstance(cert, HttpResponse):
            return cert
        form = ApproveForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "The comment is too long (at most 2000 characters).", messages.ERROR)
            return HttpResponseRedirect(self._change_url(cert))
        level, text = self.approve_one(request, cert, form.cleaned_data["comment"])
        self.message_user(request, text, level)
        return HttpResponseRedirect(self._change_url(cert))

    def reject_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        cert = self._load(request, object_id)
        if isinstance(cert, HttpResponse):
            return cert
        if request.method == "POST":
            form = RejectForm(request.POST)
            if form.is_valid():
                level, text = self.reject_one(request, cert, form.cleaned_data["reason"])
                self.message_user(request, text, level)
                return HttpResponseRedirect(self._change_url(cert))
        else:
            form = RejectForm()
        return self.render_reject(request, [cert], form, action="", cancel_url=self._change_url(cert))

    def decision(self, request: HttpRequest, cert: Certificate) -> dict[str, Any] | None:
        """What the change page offers for a pending request, and why not when it cannot."""
        if cert.status != CertificateStatus.PENDING_APPROVAL:
            return None
        access: Access = self.access(request)
        approvals = list(cert.approvals.values_list("approver_id", flat=True))
        required = max(1, cert.required_approvals)
        reason = ""
        if not access.has("certificate:approve", organization_id=cert.organization_id, project_id=cert.project_id):
            reason = f"You do not hold certificate:approve in {cert.project}."
        elif cert.requested_by_id is not None and cert.requested_by_id == request.user.pk:
            reason = "You requested this certificate: another operator has to approve it."
        elif not services.may_approve(access, cert):
            reason = f"Approving this request needs the {cert.approver_role} role."
        elif request.user.pk in approvals:
            reason = "You already approved this request; it waits for other approvers."
        info = self.opts.app_label, self.opts.model_name
        return {
            "approvals": len(approvals),
            "required": required,
            "issues_now": len(approvals) + 1 >= required,
            "can_approve": not reason,
            "can_reject": access.has("certificate:approve", organization_id=cert.organization_id,
                                     project_id=cert.project_id),
            "reason": reason,
            "approve_url": reverse("admin:%s_%s_approve" % info, args=[cert.pk], current_app=self.admin_site.name),
            "reject_url": reverse("admin:%s_%s_reject" % info, args=[cert.pk], current_app=self.admin_site.name),
        }

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = dict(extra_context or {})
        cert = self.get_object(request, unquote(object_id))
        if cert is not None:
            extra_context["mv_decision"] = self.decision(request, cert)
        return super().change_view(request, object_id, form_url, extra_context)


# --- Certificate authorities --------------------------------------------------------------------
class CAForm(forms.ModelForm):
    status = forms.ChoiceField(choices=[(CAStatus.ACTIVE, "Active"), (CAStatus.DISABLED, "Disabled")],
                               help_text="A revoked CA stays revoked; revoke a CA through the API.")
    crl_full_interval_hours = forms.IntegerField(label="Full CRL interval (hours)", min_value=1, max_value=24 * 366,
                                                 help_text="A new full CRL is published this often.")
    crl_full_validity_hours = forms.IntegerField(label="Full CRL validity (hours)", min_value=1, max_value=24 * 366,
                                                 help_text="Lifetime of each full CRL (nextUpdate − thisUpdate).")
    crl_delta_interval_hours = forms.IntegerField(label="Delta CRL interval (hours)", min_value=1, max_value=24 * 31)
    crl_delta_validity_hours = forms.IntegerField(label="Delta CRL validity (hours)", min_value=1, max_value=24 * 31)
    crl_shards = forms.IntegerField(label="CRL shards", min_value=0, max_value=MAX_CRL_SHARDS, required=False,
                                    help_text="Partition the CRL of certificates issued from now on (0: off).")
    crl_url = forms.URLField(label="CRL URL", max_length=500, required=False, assume_scheme="https",
                             help_text="Overrides the CRL distribution point put into certificates issued from now on.")
    ocsp_url = forms.URLField(label="OCSP URL", max_length=500, required=False, assume_scheme="https",
                              help_text="Overrides the OCSP responder URL put into certificates issued from now on.")

    class Meta:
        model = CertificateAuthority
        fields = ("name", "status", "crl_url", "ocsp_url", "crl_full_interval_hours", "crl_full_validity_hours",
                  "crl_delta_interval_hours", "crl_delta_validity_hours", "crl_keep_expired", "crl_shards",
                  "ocsp_sign_with_ca_key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.status == CAStatus.REVOKED:
            self.fields["status"].choices = [(CAStatus.REVOKED, "Revoked")]
            self.fields["status"].disabled = True

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("crl_shards") is None:
            data["crl_shards"] = self.instance.crl_shards or 0
        for kind in ("full", "delta"):
            interval, validity = data.get(f"crl_{kind}_interval_hours"), data.get(f"crl_{kind}_validity_hours")
            if interval and validity and interval > validity:
                self.add_error(f"crl_{kind}_interval_hours",
                               "The interval must not exceed the validity: a CRL must be replaced before nextUpdate.")
        if data.get("name"):
            same_org = CertificateAuthority.objects.filter(organization_id=self.instance.organization_id)
            if error := unique_name_error(same_org, self.instance, data["name"], "A CA with this name already exists."):
                raise error
        return data


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ScopedAdmin):
    """CAs are created through the API or ``bootstrap_demo`` (a key ceremony is not a form) and
    never deleted; operators can rename, disable and tune distribution settings."""

    form = CAForm
    read_permission = "ca:read"
    write_permission = "ca:admin"
    org_wide_visible = True
    list_display = ("name", "kind", "status_display", "organization", "project", "key_type", "parent", "not_after")
    list_filter = ("kind", "status", "key_type", ("organization", RelatedOnlyFieldListFilter))
    list_select_related = ("organization", "project", "project__organization", "parent")
    search_fields = ("name", "subject", "serial_number")
    readonly_fields = ("id", "kind", "organization", "project", "parent", "subject", "serial_number", "key_type",
                       "not_before", "not_after", "path_length", "key_storage", "distribution_urls",
                       "issued_certificates", "created_by", "created_at", "updated_at", "decoded_certificate",
                       "certificate_pem_display", "chain_display")
    fieldsets = (
        (None, {"fields": ("id", "name", "kind", "status", "organization", "project", "parent", "subject",
                           "serial_number", "key_type", "not_before", "not_after", "path_length", "key_storage",
                           "issued_certificates", "created_by", "created_at", "updated_at")}),
        ("Revocation information", {"fields": ("crl_url", "ocsp_url", "distribution_urls", "crl_full_interval_hours",
                                               "crl_full_validity_hours", "crl_delta_interval_hours",
                                               "crl_delta_validity_hours", "crl_keep_expired", "crl_shards",
                                               "ocsp_sign_with_ca_key")}),
        ("Decoded certificate", {"fields": ("decoded_certificate", "certificate_pem_display", "chain_display")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: CertificateAuthority) -> SafeString:
        css = "active" if obj.status == CAStatus.ACTIVE else "revoked"
        return status_badge(css, obj.get_status_display())

    @admin.display(description="Private key")
    def key_storage(self, obj: CertificateAuthority) -> str:
        key = obj.key  # metadata only: the sealed key never leaves the keystore
        kek = f", KEK {key.kek_id}" if key.kek_id else ""
        return f"{key.key_type}, {key.get_storage_display()}{kek} (key id {key.pk})"

    @admin.display(description="URLs in issued certificates")
    def distribution_urls(self, obj: CertificateAuthority) -> SafeString:
        return render_rows([Row("CRL distribution point", list(obj.crl_urls())), Row("OCSP", list(obj.ocsp_urls())),
                            Row("CA issuers", list(obj.ca_issuers_urls()))])

    @admin.display(description="Issued certificates")
    def issued_certificates(self, obj: CertificateAuthority) -> SafeString:
        url = reverse("admin:certificates_certificate_changelist", current_app=self.admin_site.name)
        return format_html('<a href="{}?ca__id__exact={}">{} certificates</a>', url, obj.pk,
                           obj.certificates.count())

    @admin.display(description="Decoded")
    def decoded_certificate(self, obj: CertificateAuthority) -> SafeString:
        return render_certificate_pem(obj.certificate_pem)

    @admin.display(description="PEM")
    def certificate_pem_display(self, obj: CertificateAuthority) -> SafeString:
        return render_pem(obj.certificate_pem)

    @admin.display(description="Issuer chain")
    def chain_display(self, obj: CertificateAuthority) -> SafeString:
        return render_chain("".join(ca.certificate_pem for ca in services.ca_chain(obj)[1:]))

    def save_model(self, request: HttpRequest, obj: CertificateAuthority, form: forms.ModelForm,
                   change: bool) -> None:
        core.update_object(reload(obj), changed_values(form, tuple(CAForm.Meta.fields)), actor=request.user,
                               action="ca.updated", severity=Severity.WARNING)


# --- Templates ----------------------------------------------------------------------------------
def _checkboxes(choices: Any, **kwargs: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(choices=[(c, c) for c in choices], widget=forms.CheckboxSelectMultiple,
                                     **kwargs)


class TemplateForm(forms.ModelForm):
    """The template's policy. Its rules are ``CertificateTemplate.clean()``, which Django's model form
    runs (``_post_clean``) exactly as the API's template view does; this form adds only what needs
    the operator: the permission checks and the duplicate-name message."""

    key_algorithms = _checkboxes(keys.KEY_TYPES)
    default_key_type = forms.ChoiceField(choices=[(k, k) for k in keys.KEY_TYPES])
    min_rsa_key_size = forms.IntegerField(label="Minimum RSA key size", min_value=2048, max_value=8192, initial=2048)
    validity_days = forms.IntegerField(min_value=1, max_value=36500, initial=365)
    min_validity_days = forms.IntegerField(min_value=1, max_value=36500, initial=1)
    max_validity_days = forms.IntegerField(min_value=1, max_value=36500, initial=397)
    san_types = _checkboxes(names.SAN_KEYS, required=False, label="SAN types")
    key_usage = _checkboxes(extensions.KEY_USAGES, required=False)
    extended_key_usage = _checkboxes(extensions.EXTENDED_KEY_USAGES, required=False)
    max_sans = forms.IntegerField(label="Maximum SANs", min_value=1, max_value=1000, initial=100)
    renewal_window_days = forms.IntegerField(min_value=0, max_value=365, initial=30)
    subject_policy = PrettyJSONField(
        required=False, initial=dict, widget=forms.Textarea(attrs={"rows": 8}),
        help_text=f'Allowed subject fields ({", ".join(SUBJECT_KEYS)}), each {{"required": bool, "pattern": regex, '
                  f'"default": value}}; fields not listed are refused.')
    san_patterns = PrettyJSONField(label="SAN patterns", required=False, initial=dict,
                                   widget=forms.Textarea(attrs={"rows": 4}),
                                   help_text='Per SAN type, the regular expressions a value must match, e.g. '
                                             '{"dns_names": ["[a-z0-9.-]+\\\\.example\\\\.com"]}.')

    class Meta:
        model = CertificateTemplate
        fields = ("organization", "project", "name", "description", "ca", "key_algorithms", "default_key_type",
                  "min_rsa_key_size", "validity_days", "min_validity_days", "max_validity_days", "subject_policy",
                  "san_types", "san_patterns", "allow_wildcards", "require_san", "max_sans", "copy_cn_to_san",
                  "key_usage", "extended_key_usage", "auto_approve", "approval_policy", "renewal_window_days",
                  "key_export_allowed", "acme_profile", "is_active")
        labels = {"ca": "CA", "require_san": "Require a SAN", "copy_cn_to_san": "Copy the common name into the SANs",
                  "acme_profile": "ACME profile"}
        help_texts = {"is_active": "A template that issued certificates cannot be deleted: disable it instead.",
                      "project": "Empty: the template is shared by every project of the organization."}

    access: Access  # set by CertificateTemplateAdmin.get_form
    request: HttpRequest  # likewise, to audit a refusal

    def add_error(self, field: str | None, error: Any) -> None:
        # A model rule may name a field this form shows read-only (organization, project on change):
        # show it above the form instead of failing.
        if isinstance(error, forms.ValidationError) and hasattr(error, "error_dict"):
            for name in [n for n in error.error_dict if n not in self.fields and n != "__all__"]:
                error.error_dict.setdefault("__all__", []).extend(error.error_dict.pop(name))
        super().add_error(field, error)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        instance = self.instance
        adding = instance._state.adding
        organization = data.get("organization") if adding else instance.organization
        project = data.get("project") if adding else instance.project
        if organization is None:
            return data
        if project is not None and project.organization_id != organization.pk:
            self.add_error("project", "The project belongs to another organization.")
            return data
        if adding and not self.access.has("template:write", organization_id=organization.pk,
                                                   project_id=project.pk if project else None):
            raise forms.ValidationError("You cannot create templates in this organization or project.")
        # The CA the template would issue from: the chosen one, else (no valid choice) the current one.
        ca = data.get("ca") or (instance.ca if instance.ca_id else None)
        if ca is not None and not self.access.has("ca:admin", organization_id=ca.organization_id,
                                                  project_id=ca.project_id):
            # Defect fixed in issue 6: the template delegates its CA's signing, so it needs ca:admin
            # on that CA's own scope (as in the API), not only template:write on the project.
            audit_denied(self.request, "ca:admin", obj=ca, reason="ca_outside_your_ca_admin_scope")
            self.add_error("ca", "Issuing from this CA needs the ca:admin permission on the CA's own "
                                 "organization or project.")
        if data.get("name"):
            scope = (CertificateTemplate.objects.filter(project=project) if project is not None
                     else CertificateTemplate.objects.filter(organization=organization, project__isnull=True))
            if error := unique_name_error(scope, instance, data["name"], "A template with this name already exists "
                                                                         "in this scope."):
                raise error
        return data


@admin.register(CertificateTemplate)
class CertificateTemplateAdmin(ScopedAdmin):
    form = TemplateForm
    read_permission = "template:read"
    write_permission = "template:write"
    org_wide_visible = True
    list_display = ("name", "organization", "project", "ca", "eku_display", "validity_days", "auto_approve",
                    "is_active")
    list_filter = ("is_active", "auto_approve", ("ca", CAListFilter),
                   ("organization", RelatedOnlyFieldListFilter))
    list_select_related = ("organization", "project", "project__organization", "ca")
    search_fields = ("name", "acme_profile")
    fieldsets = (
        (None, {"fields": ("organization", "project", "name", "description", "ca", "is_active")}),
        ("Keys", {"fields": ("key_algorithms", "default_key_type", "min_rsa_key_size", "key_export_allowed")}),
        ("Validity", {"fields": ("validity_days", "min_validity_days", "max_validity_days", "renewal_window_days")}),
        ("Names", {"fields": ("subject_policy", "san_types", "san_patterns", "allow_wildcards", "require_san",
                              "max_sans", "copy_cn_to_san")}),
        ("Usage", {"fields": ("key_usage", "extended_key_usage")}),
        ("Approval and protocols", {"fields": ("auto_approve", "approval_policy", "acme_profile")}),
    )

    @admin.display(description="Extended key usage")
    def eku_display(self, obj: CertificateTemplate) -> str:
        return ", ".join(obj.extended_key_usage) or "–"

    def get_readonly_fields(self, request: HttpRequest, obj: CertificateTemplate | None = None) -> tuple[str, ...]:
        return () if obj is None else ("organization", "project")

    def has_delete_permission(self, request: HttpRequest, obj: CertificateTemplate | None = None) -> bool:
        # One by one only (no bulk action), and never a template that issued certificates.
        if obj is None:
            return False
        return self.has_change_permission(request, obj) and not obj.certificates.exists()

    def get_form(self, request: HttpRequest, obj: CertificateTemplate | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.access = self.access(request)
        form.request = request
        return form

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        access = self.access(request)
        if db_field.name == "organization":
            orgs = access.org_ids("template:write") | {access.project_org[p]
                                                       for p in access.project_ids("template:write")}
            kwargs["queryset"] = Organization.objects.all() if access.is_superuser else Organization.objects.filter(
                pk__in=orgs)
        elif db_field.name == "project":
            q = access.scope_q("template:write", project_field="id")
            projects = Project.objects.select_related("organization")
            kwargs["queryset"] = projects if q is None else projects.filter(q)
        elif db_field.name == "ca":
            q = access.scope_q("ca:admin")  # only CAs the operator may delegate (see TemplateForm.clean)
            cas = CertificateAuthority.objects.filter(status=CAStatus.ACTIVE)
            kwargs["queryset"] = cas if q is None else cas.filter(q)
        elif db_field.name == "approval_policy":
            q = access.scope_q("project:read", org_field="project__organization_id")
            policies = ApprovalPolicy.objects.select_related("project", "project__organization")
            kwargs["queryset"] = policies if q is None else policies.filter(q)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: CertificateTemplate, form: forms.ModelForm, change: bool) -> None:
        if change:
            editable = tuple(f for f in TemplateForm.Meta.fields if f not in ("organization", "project"))
            # The values as CertificateTemplate.clean() left them on ``obj`` (normalised rules).
            changes = {name: getattr(obj, name) for name in changed_values(form, editable)}
            core.update_object(reload(obj), changes, actor=request.user,
                                   action="template.updated")
        else:
            core.create_object(obj, actor=request.user, action="template.created")

    def delete_model(self, request: HttpRequest, obj: CertificateTemplate) -> None:
        core.delete_object(obj, actor=request.user, action="template.deleted")
