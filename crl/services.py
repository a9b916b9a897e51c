"""CRL publication: per CA and scope (the unsharded CRL, or one shard), full and delta.

How a CRL is made (``publish_crl``), linear in the number of entries:

1. The boundary: under ``FOR NO KEY UPDATE`` of the CA row (revocations hold ``FOR SHARE`` on it
   while they add their row, certificates/revocation.py), read the highest revocation row id. Every
   row at or below it has committed; rows above it belong to the next CRL. The lock is held for one
   statement.
2. Under the scope's generation lock (the ``CRLState`` row, which also holds the CRL Number counter
   shared by full and delta CRLs), read the entries: for a full CRL every row in effect, for a delta
   every change after its base's boundary. Each row's DER entry was encoded at revocation time, so the
   list is concatenated (PostgreSQL's ``string_agg`` over bytea: one value, no per-row Python),
   framed, and the TBS signed once (certificates/pki/crl.py).
3. Take the next number, store the CRL, audit it; commit. Generations of a CA are serialised by the
   ``CRLState`` row: a number is never reused or skipped and a higher number has newer content.

A full CRL that covers up to boundary B, read in a snapshot at or after B, lists every revocation
with id <= B; a delta whose base is that CRL lists every row with id > B (RFC 5280 5.2.4).
Expired certificates stay on one full CRL issued after their notAfter (RFC 5280 3.3), unless the CA
keeps them for good (``crl_keep_expired``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from hashlib import sha256
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from certificates import services as cert_services
from certificates.keystore import get_signer
from certificates.models import (CAKind, Certificate, CertificateAuthority, Revocation, RevocationKind)
from certificates.pki import crl as pki_crl
from mazevault import audit
from mazevault.errors import NotFound, ValidationFailed

from .models import CRL, CRLKind, CRLState

log = logging.getLogger(__name__)

KEEP_PER_SCOPE = 3  # stored CRLs kept per CA, kind and shard (older ones are pruned after a publication)


@dataclass(frozen=True)
class Scope:
    """Which certificates a CRL covers: the CA's unsharded CRL (``shard`` None) or one shard."""

    ca: CertificateAuthority
    shard: int | None = None

    def q(self) -> Q:
        return Q(shard__isnull=True) if self.shard is None else Q(shard=self.shard)


def scopes(ca: CertificateAuthority) -> list[Scope]:
    """Every scope the CA publishes: the unsharded CRL always (certificates issued before sharding
    and sub-CA certificates live there), and each shard ever configured."""
    state = CRLState.objects.filter(ca=ca).values_list("shards_published", flat=True).first() or 0
    return [Scope(ca), *(Scope(ca, shard) for shard in range(max(state, ca.crl_shards)))]


def _boundary(ca_id: Any) -> int:
    with transaction.atomic():
        list(CertificateAuthority.objects.select_for_update(no_key=True).filter(pk=ca_id).values_list("pk"))
        return Revocation.objects.filter(ca_id=ca_id).aggregate(m=Max("id"))["m"] or 0


def _server_cursor():
    """A psycopg cursor with server-side parameter binding on Django's connection (same transaction):
    Django's own cursors bind client-side, which can neither return binary results nor send binary
    parameters."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _concatenated(rows) -> tuple[bytes, int]:
    """(concatenated entry DER, count) of a Revocation queryset, in no particular order (RFC 5280
    imposes none). On PostgreSQL the database concatenates: ``string_agg`` over bytea returns one
    value, fetched in binary (no hex round trip); elsewhere Python joins."""
    if connection.vendor == "postgresql":
        sql, params = rows.order_by().values("entry_der").query.sql_with_params()
        with _server_cursor() as cursor:
            cursor.execute(f"SELECT string_agg(sub.entry_der, ''::bytea), count(*) FROM ({sql}) AS sub", params,
                           binary=True)
            blob, count = cursor.fetchone()
        return (bytes(blob) if blob else b""), count
    parts = [bytes(der) for der in rows.order_by().values_list("entry_der", flat=True).iterator(chunk_size=10_000)]
    return b"".join(parts), len(parts)


def _store_der(crl: CRL, der: bytes) -> None:
    """Write the DER into the row just inserted. PostgreSQL: as a binary parameter (Django's client-side
    binding would inline 2x its size as a hex literal)."""
    if connection.vendor == "postgresql":
        with _server_cursor() as cursor:
            cursor.execute(f'UPDATE "{CRL._meta.db_table}" SET der = %b WHERE id = %s', [der, crl.pk])
    else:
        CRL.objects.filter(pk=crl.pk).update(der=der)
    crl.der = der


def _full_entries(scope: Scope, boundary: int) -> tuple[bytes, int]:
    rows = Revocation.objects.filter(scope.q(), ca_id=scope.ca.pk, current=True, kind=RevocationKind.REVOKE)
    if not scope.ca.crl_keep_expired:
        previous = CRL.objects.filter(ca_id=scope.ca.pk, kind=CRLKind.FULL, shard=scope.shard) \
            .order_by("-number").values_list("this_update", flat=True).first()
        if previous is not None:
            # Included while notAfter >= the previous full CRL's thisUpdate: so an entry is on the first
            # full CRL issued after its notAfter, and leaves with the one after that.
            rows = rows.filter(not_after__gte=previous)
    return _concatenated(rows)


def _delta_entries(scope: Scope, base: CRL, boundary: int) -> tuple[bytes, int]:
    """The latest row of every serial that changed after the base (revoked: its entry; released from
    hold: a removeFromCRL entry). At most the changes since the base, so plain Python is fine."""
    latest: dict[str, bytes] = {}
    changes = Revocation.objects.filter(scope.q(), ca_id=scope.ca.pk, id__gt=base.max_revocation_id,
                                        id__lte=boundary).order_by("id").values_list("serial_number", "entry_der")
    for serial, der in changes.iterator(chunk_size=10_000):
        latest[serial] = bytes(der)
    return b"".join(latest.values()), len(latest)


def _idp(scope: Scope, issued_leaves: bool) -> dict[str, Any]:
    """Issuing Distribution Point fields (RFC 5280 5.2.5) of the scope's CRLs (full and delta alike).

    A shard names its own URL and holds only end-entity certificates. The unsharded CRL of a CA that
    issues certificates names the URL(s) its certificates carry. A root's CRL carries no distribution
    point name: relying parties check the self-signed root against it too, and the root certificate
    has no CRL distribution point to match; it says onlyContainsCACerts when the root issued only CAs.
    """
    ca = scope.ca
    if scope.shard is not None:
        return {"idp_urls": ca.crl_urls(scope.shard), "idp_only_user_certs": True}
    if ca.kind == CAKind.ROOT:
        return {} if issued_leaves else {"idp_only_ca_certs": True}
    urls = list(ca.crl_urls())
    default = f"{ca.public_url}/crl"
    if default not in urls:  # certificates issued before a crl_url override carry the default URL
        urls.append(default)
    return {"idp_urls": tuple(urls)}


def publish_crl(ca: CertificateAuthority, *, kind: str = CRLKind.FULL, shard: int | None = None,
                actor: Any = "system", now: datetime | None = None) -> CRL:
    """Sign and store the next CRL of ``kind`` for the scope; returns it. A delta without a full
    CRL to build on publishes the full CRL first."""
    if kind not in CRLKind.values:
        raise ValidationFailed("type must be full or delta.", details={"field": "type"})
    if shard is not None and not 0 <= shard < max(ca.crl_shards, _shards_published(ca)):
        raise NotFound("This CA publishes no such CRL shard.", details={"field": "shard"})
    scope = Scope(ca, shard)
    if kind == CRLKind.DELTA and not _latest(ca.pk, CRLKind.FULL, shard, meta_only=True):
        publish_crl(ca, kind=CRLKind.FULL, shard=shard, actor=actor, now=now)
    boundary = _boundary(ca.pk)
    issuer = cert_services.ca_certificate(ca)
    issued_leaves = ca.kind == CAKind.ROOT and Certificate.objects.filter(ca_id=ca.pk).exists()
    with transaction.atomic():
        state, _ = CRLState.objects.get_or_create(ca=ca)
        state = CRLState.objects.select_for_update().get(pk=state.pk)
        # Two generations may read their boundaries in one order and take the lock in the other: a
        # CRL numbered later must never cover fewer revocations, so take the highest boundary already
        # published if it is above ours (every boundary is safe: its rows had all committed). The CA
        # row lock is not held here, so revocations never wait for a generation.
        boundary = max(boundary, CRL.objects.filter(ca_id=ca.pk).aggregate(m=Max("max_revocation_id"))["m"] or 0)
        base = None
        if kind == CRLKind.FULL:
            entries, count = _full_entries(scope, boundary)
        else:
            base = _latest(ca.pk, CRLKind.FULL, shard, meta_only=True)
            entries, count = _delta_entries(scope, base, boundary)
        now = now or timezone.now()
        hours = ca.crl_full_validity_hours if kind == CRLKind.FULL else ca.crl_delta_validity_hours
        number = state.last_number + 1
        der = pki_crl.build_crl(pki_crl.CRLSpec(
            issuer=issuer, number=number, this_update=now, next_update=now + timedelta(hours=hours),
            delta_base=base.number if base else None,
            freshest_urls=ca.delta_crl_urls(shard) if kind == CRLKind.FULL else (),
            **_idp(scope, issued_leaves),
        ), entries, get_signer(ca.key).private_key())
        state.last_number = number
        state.shards_published = max(state.shards_published, ca.crl_shards)
        state.save(update_fields=["last_number", "shards_published"])
        crl = CRL.objects.create(
            ca=ca, number=number, kind=kind, shard=shard, base_number=base.number if base else None,
            this_update=now.replace(microsecond=0), next_update=(now + timedelta(hours=hours)).replace(microsecond=0),
            max_revocation_id=boundary, entry_count=count, size=len(der), sha256=sha256(der).hexdigest(), der=b"")
        _store_der(crl, der)
        audit.record("crl.generated", actor=actor, entity=ca,
                     details={"number": number, "type": kind, "shard": shard, "entries": count, "size": len(der),
                              "base_number": crl.base_number, "next_update": crl.next_update.isoformat()})
        stale = list(CRL.objects.filter(ca_id=ca.pk, kind=kind, shard=shard).order_by("-number")
                     .values_list("pk", flat=True)[KEEP_PER_SCOPE:])
        if stale:
            CRL.objects.filter(pk__in=stale).delete()
    return crl


def _shards_published(ca: CertificateAuthority) -> int:
    return CRLState.objects.filter(ca=ca).values_list("shards_published", flat=True).first() or 0


def _latest(ca_id: Any, kind: str, shard: int | None, *, meta_only: bool = False) -> CRL | None:
    queryset = CRL.objects.filter(ca_id=ca_id, kind=kind, shard=shard).order_by("-number")
    if meta_only:
        queryset = queryset.defer("der")
    return queryset.first()


def _aware(value: Any) -> datetime:
    """A timestamp column as read by a raw cursor: aware already (PostgreSQL) or ISO text (SQLite)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, dt_timezone.utc)


@dataclass(frozen=True)
class CRLMeta:
    pk: int
    sha256: str
    this_update: datetime
    next_update: datetime


def latest_crl(ca_id: Any, kind: str = CRLKind.FULL, shard: int | None = None) -> CRLMeta | None:
    """What a download needs of the newest stored CRL of a scope, without its DER (``crl_der`` fetches
    the bytes). One indexed statement (``crl_latest_idx``), written out: the download is a hot path and
    building this query through the ORM costs more than running it."""
    table = CRL._meta.db_table
    shard_sql = "shard IS NULL" if shard is None else "shard = %s"
    ca_param = CRL._meta.get_field("ca").target_field.get_db_prep_value(ca_id, connection)
    params = [ca_param, kind, *([] if shard is None else [shard])]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id, sha256, this_update, next_update FROM "{table}" '
                       f"WHERE ca_id = %s AND kind = %s AND {shard_sql} ORDER BY number DESC LIMIT 1", params)
        row = cursor.fetchone()
    if row is None:
        return None
    this_update, next_update = (_aware(value) for value in row[2:4])
    return CRLMeta(pk=row[0], sha256=row[1], this_update=this_update, next_update=next_update)


def crl_der(crl: CRL | CRLMeta) -> bytes:
    return bytes(CRL.objects.filter(pk=crl.pk).values_list("der", flat=True).get())


def publish_all(ca: CertificateAuthority, *, actor: Any = "system", shards: bool = True) -> list[CRL]:
    """A full and a delta CRL for every scope of the CA (``shards`` False: the unsharded scope only)."""
    published = []
    for scope in scopes(ca) if shards else [Scope(ca)]:
        published.append(publish_crl(ca, kind=CRLKind.FULL, shard=scope.shard, actor=actor))
        published.append(publish_crl(ca, kind=CRLKind.DELTA, shard=scope.shard, actor=actor))
    return published


def publish_due(now: datetime | None = None) -> int:
    """Beat: publish what is due, for every CA that still has to publish (any status: a disabled or
    revoked CA's certificates still need revocation data). Due: no CRL yet; its interval passed; less
    than a tenth of its validity left; or revocations after its boundary (a lost trigger)."""
    now = now or timezone.now()
    published = 0
    for ca in CertificateAuthority.objects.select_related("key").filter(not_after__gt=now - timedelta(days=1)):
        try:
            head = Revocation.objects.filter(ca_id=ca.pk).aggregate(m=Max("id"))["m"] or 0
            for scope in scopes(ca):
                for kind, interval in ((CRLKind.FULL, ca.crl_full_interval_hours),
                                       (CRLKind.DELTA, ca.crl_delta_interval_hours)):
                    latest = _latest(ca.pk, kind, scope.shard, meta_only=True)
                    if latest is None or _due(latest, interval, now) or latest.max_revocation_id < head:
                        publish_crl(ca, kind=kind, shard=scope.shard, now=now)
                        published += 1
        except Exception:  # one CA's failure (say, a key that cannot be opened) must not stop the others
            log.exception("CRL publication failed for CA %s", ca.pk)
    return published


def _due(crl: CRL, interval_hours: int, now: datetime) -> bool:
    validity = crl.next_update - crl.this_update
    return crl.this_update + timedelta(hours=interval_hours) <= now or crl.next_update - validity / 10 <= now


# --- Triggers: coalesce a burst of revocations into a handful of publications ------------------------
def _pending_key(ca_id: Any) -> str:
    return f"mv:crl:pending:{ca_id}"


def request_refresh(ca_id: Any) -> None:
    """After a revocation commits: queue one refresh of the CA's CRLs unless one is already queued.

    The task clears the marker *before* it reads the boundary, so a revocation that finds the marker
    set is covered by the queued run, and one that finds it cleared queues the next run."""
    from django.core.cache import cache

    from . import tasks

    delay = settings.MAZEVAULT_CRL_COALESCE_SECONDS
    try:
        queued = cache.add(_pending_key(ca_id), 1, timeout=max(60, delay * 10))
    except Exception:  # the cache is down: publish anyway (more CRLs, never a missed revocation)
        log.warning("CRL trigger cache unavailable; queueing without coalescing", exc_info=True)
        queued = True
    if queued:
        tasks.refresh_ca_crls.apply_async(kwargs={"ca_id": str(ca_id)}, countdown=delay)


def refresh_after_revocations(ca_id: Any) -> int:
    """Publish full and delta CRLs of every scope of the CA that changed (or never published)."""
    from django.core.cache import cache

    try:
        cache.delete(_pending_key(ca_id))
    except Exception:
        log.warning("CRL trigger cache unavailable", exc_info=True)
    ca = CertificateAuthority.objects.select_related("key").filter(pk=ca_id).first()
    if ca is None:
        return 0
    published = 0
    for scope in scopes(ca):
        if _stale(scope):
            publish_crl(ca, kind=CRLKind.FULL, shard=scope.shard)
            publish_crl(ca, kind=CRLKind.DELTA, shard=scope.shard)
            published += 2
    return published


def _stale(scope: Scope) -> bool:
    """The scope has no CRL yet, or revocation rows newer than its latest full CRL's boundary."""
    latest = _latest(scope.ca.pk, CRLKind.FULL, scope.shard, meta_only=True)
    if latest is None:
        return True
    return Revocation.objects.filter(scope.q(), ca_id=scope.ca.pk, id__gt=latest.max_revocation_id).exists()
