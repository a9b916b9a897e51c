"""The OCSP responder service (RFC 6960): which CA, which status, which signer, which cached bytes.

``respond(der)`` answers one DER OCSPRequest with the DER of an OCSPResponse and never raises for
client input; database failures propagate (the view turns them into tryLater).

Status source of truth (read in ONE SQL statement, so every part of it is the same snapshot):

* revoked iff a ``Revocation`` row with this CA, this serial and ``current`` (kind revoke) exists:
  revocationTime and reason come from that row;
* good iff we issued the serial from this CA (a ``Certificate``, a sub-CA or one of the CA's own
  OCSP responder certificates with that CA and serial) and it is not revoked;
* unknown otherwise (RFC 6960 section 2.2: "the responder doesn't know about the certificate").
* A CA that is itself revoked for key or CA compromise answers revoked (caCompromise, at the CA's
  revocation time) for everything it issued, as RFC 6960 section 2.7 allows: "If an OCSP
  responder knows that a particular CA's private key has been compromised, it MAY return the
  revoked state for all certificates issued by that CA."

The cache: a nonce-less request for a good or revoked serial is answered from
``OCSPCachedResponse`` when the row's ``version`` equals the serial's status version - the highest
``Revocation`` id of that CA and serial, 0 if none - read in the same statement. Every revoke,
re-revoke and release adds a Revocation row, so the version changes in the same commit as the
status; a stale response cannot match, on any replica, whatever the timing (no invalidation
message to lose). Entries are reused for a quarter of the response's validity at most.

Times (documented in docs/ocsp.md): thisUpdate = producedAt = signing time; nextUpdate =
thisUpdate + RESPONSE_VALIDITY (clipped to the signer certificate's notAfter); a cached response is
reused until thisUpdate + (nextUpdate - thisUpdate) / 4.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from certificates.keystore import get_signer, load_private_key, store_private_key
from certificates.models import CAStatus, Certificate, CertificateAuthority, Revocation, RevocationReason, StoredKey
from certificates.pki import formats, keys, ocsp as pki_ocsp
from certificates.pki.errors import PKIError
from mazevault import audit
from mazevault.models import Severity

from .models import OCSPCachedResponse, OCSPResponder

logger = logging.getLogger(__name__)

# RFC 6960 section 4.2.2.1 leaves the interval to the responder. Twelve hours: within the CA/Browser
# Forum's bounds for subscriber responses (at least eight hours, at most ten days) and shorter than
# the default delta CRL validity (24 h), so OCSP is never the staler of the two.
RESPONSE_VALIDITY = timedelta(hours=12)
# Pre-signed responses are reused for at most this share of their validity, so a cached answer is
# always at least 3/4 of its validity away from its nextUpdate.
REUSE_FRACTION = 4
# Delegated responders: short-lived (RFC 6960 section 4.2.2.2.1, nocheck), renewed when less than
# RESPONDER_RENEW_BEFORE is left - more than any response's validity, so a response never outlives
# the certificate that signed it.
RESPONDER_LIFETIME = timedelta(days=7)
RESPONDER_RENEW_BEFORE = timedelta(days=2)
RESPONDER_KEY_TYPE = "ec-p256"  # fast signatures whatever the CA's own key type
BACKDATE = timedelta(minutes=5)
# The status statement is a server-side prepared statement on PostgreSQL (see _fetch_one). Behind a
# transaction-mode PgBouncer older than 1.21 (no prepared-statement support) set this to False.
PREPARE_STATUS_STATEMENT = True
# New CAs are picked up by a lookup that misses, at most this often per process.
CA_RELOAD_INTERVAL = 1.0

_COMPROMISE = {RevocationReason.KEY_COMPROMISE, RevocationReason.CA_COMPROMISE}


# --- answers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One OCSP answer. ``cacheable`` answers (nonce-less good/revoked) may be kept by HTTP caches
    until ``reuse_until``; the others must not be."""

    der: bytes
    status: str  # good / revoked / unknown / malformedRequest / unauthorized / tryLater / internalError
    cacheable: bool = False
    this_update: datetime | None = None
    next_update: datetime | None = None
    reuse_until: datetime | None = None
    from_cache: bool = False


_ERRORS = {status: pki_ocsp.error_response(status) for status in pki_ocsp.ResponseStatus}
MALFORMED = Answer(_ERRORS[pki_ocsp.ResponseStatus.MALFORMED_REQUEST], "malformedRequest")
UNAUTHORIZED = Answer(_ERRORS[pki_ocsp.ResponseStatus.UNAUTHORIZED], "unauthorized")
TRY_LATER = Answer(_ERRORS[pki_ocsp.ResponseStatus.TRY_LATER], "tryLater")
INTERNAL_ERROR = Answer(_ERRORS[pki_ocsp.ResponseStatus.INTERNAL_ERROR], "internalError")


# --- CAs by CertID (per process: a CA's name and key never change) --------------------------------
@dataclass
class _CA:
    id: uuid.UUID
    cert: x509.Certificate
    not_after: datetime
    key_id: uuid.UUID
    signer: Any = None  # the CA's private key, loaded on first use


class _CAIndex:
    """(hash algorithm, issuerNameHash, issuerKeyHash) -> CA, for every CA in the database.

    CA certificates are immutable, so the index never goes stale; a CA created after the process
    started is found by a lookup that misses, which reloads at most every CA_RELOAD_INTERVAL.
    """

    def __init__(self) -> None:
        self._by_hash: dict[tuple[str, bytes, bytes], _CA] = {}
        self._ids: set[uuid.UUID] = set()
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def find(self, query: pki_ocsp.OCSPQuery) -> _CA | None:
        key = (query.hash_algorithm, query.issuer_name_hash, query.issuer_key_hash)
        found = self._by_hash.get(key)
        if found is None and time.monotonic() - self._loaded_at >= CA_RELOAD_INTERVAL:
            self._reload()
            found = self._by_hash.get(key)
        return found

    def _reload(self) -> None:
        with self._lock:
            self._loaded_at = time.monotonic()
            rows = (CertificateAuthority.objects.exclude(pk__in=self._ids)
                    .values_list("id", "certificate_pem", "not_after", "key_id"))
            for ca_id, pem, not_after, key_id in rows:
                cert = formats.load_certificate(pem)
                entry = _CA(id=ca_id, cert=cert, not_after=not_after, key_id=key_id)
                for algorithm in pki_ocsp.CERT_ID_HASHES:
                    name_hash, key_hash = pki_ocsp.issuer_hashes(cert, algorithm)
                    self._by_hash[(algorithm, name_hash, key_hash)] = entry
                self._ids.add(ca_id)

    def clear(self) -> None:
        with self._lock:
            self._by_hash.clear()
            self._ids.clear()
            self._loaded_at = float("-inf")


CA_INDEX = _CAIndex()


def _ca_signer(ca: _CA):
    if ca.signer is None:
        ca.signer = get_signer(StoredKey.objects.get(pk=ca.key_id)).private_key()
    return ca.signer


# --- delegated responders -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Responder:
    id: int
    cert: x509.Certificate
    key: Any


_RESPONDERS: dict[int, _Responder] = {}
_RESPONDER_LOCK = threading.Lock()


def _load_responder(responder_id: int) -> _Responder:
    """The responder's certificate and key, decrypted once per process (rows never change)."""
    found = _RESPONDERS.get(responder_id)
    if found is None:
        row = OCSPResponder.objects.select_related("key").get(pk=responder_id)
        found = _Responder(id=row.pk, cert=formats.load_certificate(row.certificate_pem),
                           key=load_private_key(row.key))
        with _RESPONDER_LOCK:
            now = datetime.now(UTC)
            for stale in [k for k, r in _RESPONDERS.items() if r.cert.not_valid_after_utc <= now]:
                del _RESPONDERS[stale]
            _RESPONDERS[responder_id] = found
    return found


def _renewal_threshold(now: datetime, ca_not_after: datetime) -> datetime:
    """A responder is usable while it has RESPONDER_RENEW_BEFORE left - or, for a CA that itself
    ends sooner, while it lasts as long as the CA (a renewal could not do better)."""
    return min(now + RESPONDER_RENEW_BEFORE, ca_not_after - timedelta(seconds=1))


def ensure_responder(ca_id: uuid.UUID, *, now: datetime | None = None) -> OCSPResponder:
    """The CA's current delegated responder, issuing a new one if none is valid for
    RESPONDER_RENEW_BEFORE more. Concurrent callers issue at most one: the CA row is locked
    (``SELECT … FOR UPDATE``; SQLite's IMMEDIATE transactions serialise writers) and the check
    is repeated under the lock. The key is generated outside the lock, sealed at rest."""
    now = now or timezone.now()
    private_key = keys.generate_private_key(RESPONDER_KEY_TYPE)
    with transaction.atomic():
        ca = CertificateAuthority.objects.select_for_update().select_related("key").get(pk=ca_id)
        threshold = _renewal_threshold(now, ca.not_after)
        current = OCSPResponder.objects.filter(ca=ca, not_after__gt=threshold).order_by("-not_after").first()
        if current is not None:
            return current
        if ca.not_after <= now:
            raise PKIError("The CA has expired; it cannot certify a responder", code="VALIDATION_ERROR",
                           field="ca")
        from certificates.services import ca_certificate

        cert = pki_ocsp.responder_certificate(
            issuer_cert=ca_certificate(ca), issuer_key=get_signer(ca.key).private_key(),
            responder_public_key=private_key.public_key(), not_before=now - BACKDATE,
            lifetime=RESPONDER_LIFETIME)
        stored = store_private_key(private_key, key_type=RESPONDER_KEY_TYPE)
        responder = OCSPResponder.objects.create(
            ca=ca, key=stored, serial_number=formats.format_serial(cert.serial_number),
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
            certificate_pem=formats.cert_to_pem(cert))
        audit.record("ocsp.responder.issued", actor="system", entity=ca, severity=Severity.INFO,
                     details={"responder_id": responder.pk, "serial_number": responder.serial_number,
                              "not_after": responder.not_after.isoformat()})
    logger.info("issued OCSP responder %s for CA %s", responder.serial_number, ca_id)
    return responder


def renew_responders(*, now: datetime | None = None) -> int:
    """Make sure every active, unexpired CA that signs through a delegated responder has one valid
    for RESPONDER_RENEW_BEFORE more; returns how many were issued (the beat task's body)."""
    now = now or timezone.now()
    issued = 0
    for ca_id, not_after in (CertificateAuthority.objects.filter(status=CAStatus.ACTIVE, not_after__gt=now,
                                                                 ocsp_sign_with_ca_key=False)
                             .values_list("id", "not_after")):
        threshold = _renewal_threshold(now, not_after)
        if OCSPResponder.objects.filter(ca_id=ca_id, not_after__gt=threshold).exists():
            continue
        before = OCSPResponder.objects.filter(ca_id=ca_id).count()
        ensure_responder(ca_id, now=now)
        issued += OCSPResponder.objects.filter(ca_id=ca_id).count() - before
    return issued


# --- the status statement ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _State:
    sign_with_ca_key: bool
    ca_status: str
    ca_revoked_at: datetime | None
    ca_reason: int | None
    version: int
    revoked_at: datetime | None
    reason: int | None
    is_revoked: bool
    issued: bool
    responder_id: int | None
    cached: tuple[int, str, bool, bytes, datetime, datetime, datetime] | None


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(name).column)


def _status_sql() -> str:
    ca, rev, cert, resp, cache = (_table(m) for m in (CertificateAuthority, Revocation, Certificate, OCSPResponder,
                                                      OCSPCachedResponse))
    c = _column
    return (
        f"SELECT ca.{c(CertificateAuthority, 'ocsp_sign_with_ca_key')}, ca.{c(CertificateAuthority, 'status')}, "
        f"ca.{c(CertificateAuthority, 'revoked_at')}, ca.{c(CertificateAuthority, 'revocation_reason')}, "
        f"(SELECT MAX(v.{c(Revocation, 'id')}) FROM {rev} v WHERE v.{c(Revocation, 'ca')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND v.{c(Revocation, 'serial_number')} = %s), "
        f"cur.{c(Revocation, 'id')}, cur.{c(Revocation, 'revoked_at')}, cur.{c(Revocation, 'reason')}, "
        f"CASE WHEN EXISTS (SELECT 1 FROM {cert} i WHERE i.{c(Certificate, 'ca')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND i.{c(Certificate, 'serial_number')} = %s) "
        f"OR EXISTS (SELECT 1 FROM {ca} s WHERE s.{c(CertificateAuthority, 'parent')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND s.{c(CertificateAuthority, 'serial_number')} = %s) "
        f"OR EXISTS (SELECT 1 FROM {resp} o WHERE o.{c(OCSPResponder, 'ca')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND o.{c(OCSPResponder, 'serial_number')} = %s) THEN 1 ELSE 0 END, "
        f"(SELECT r.{c(OCSPResponder, 'id')} FROM {resp} r WHERE r.{c(OCSPResponder, 'ca')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND r.{c(OCSPResponder, 'not_after')} > %s ORDER BY r.{c(OCSPResponder, 'not_after')} DESC LIMIT 1), "
        f"k.{c(OCSPCachedResponse, 'version')}, k.{c(OCSPCachedResponse, 'status')}, "
        f"k.{c(OCSPCachedResponse, 'by_ca_key')}, k.{c(OCSPCachedResponse, 'der')}, "
        f"k.{c(OCSPCachedResponse, 'this_update')}, k.{c(OCSPCachedResponse, 'next_update')}, "
        f"k.{c(OCSPCachedResponse, 'reuse_until')} "
        f"FROM {ca} ca "
        f"LEFT JOIN {rev} cur ON cur.{c(Revocation, 'ca')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND cur.{c(Revocation, 'serial_number')} = %s AND cur.{c(Revocation, 'current')} = %s "
        f"AND cur.{c(Revocation, 'kind')} = 'revoke' "
        f"LEFT JOIN {cache} k ON k.{c(OCSPCachedResponse, 'ca')} = ca.{c(CertificateAuthority, 'id')} "
        f"AND k.{c(OCSPCachedResponse, 'serial_number')} = %s AND k.{c(OCSPCachedResponse, 'reuse_until')} > %s "
        f"WHERE ca.{c(CertificateAuthority, 'id')} = %s"
    )


_SQL: dict[str, str] = {}


def _dt(value: Any) -> datetime | None:
    """A datetime column from a raw cursor: aware on PostgreSQL, ISO text on SQLite."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _execute_once(sql: str, params: list[Any]) -> tuple | None:
    """Run the status statement, reconnecting once if the persistent connection is dead.

    With ``CONN_HEALTH_CHECKS`` Django pings (``SELECT 1``) before the first query of every request,
    a round trip that costs as much as the whole status statement. Outside a transaction the
    statement is its own health check: a dead connection fails it before anything happened, so we
    reconnect and run it again - the guarantee of the ping, without the ping.
    """
    retry = not connection.in_atomic_block
    if retry:
        connection.health_check_done = True
    try:
        return _fetch_one(sql, params)
    except (OperationalError, InterfaceError):
        if not retry:
            raise
        connection.close()
    return _fetch_one(sql, params)


def _fetch_one(sql: str, params: list[Any]) -> tuple | None:
    """One row of ``sql``. On PostgreSQL the statement is sent with server-side binding and prepared
    on its connection (``PREPARE_STATUS_STATEMENT``): parsed and planned once per connection instead
    of once per request. It is logged like any other query (``connection.queries``, the test suite's
    statement counts) and its errors are Django's."""
    if connection.vendor != "postgresql" or not PREPARE_STATUS_STATEMENT:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    raw_connection = connection.connection
    if raw_connection.prepare_threshold is None:
        # Django turns psycopg's automatic preparing off (prepare_threshold None), which also
        # disables an explicit prepare=True. A threshold no query reaches re-enables the explicit
        # kind only: Django's own (client-side binding) cursors never prepare either way.
        raw_connection.prepare_threshold = 2**31 - 1
    with connection.wrap_database_errors, ServerBindingCursor(connection.connection) as raw:
        if connection.queries_logged:
            with connection.make_debug_cursor(raw).debug_sql(sql, params):
                raw.execute(sql, params, prepare=True)
        else:
            raw.execute(sql, params, prepare=True)
        return raw.fetchone()


def _read_state(ca: _CA, serial: str, now: datetime, want_cache: bool) -> _State | None:
    sql = _SQL.get(connection.vendor)
    if sql is None:
        sql = _SQL[connection.vendor] = _status_sql()
    ops = connection.ops
    threshold = ops.adapt_datetimefield_value(_renewal_threshold(now, ca.not_after))
    # An impossible serial for the cache join when the request must not be served from the cache.
    cache_serial = serial if want_cache else ""
    params = [serial, serial, serial, serial, threshold, serial, True, cache_serial,
              ops.adapt_datetimefield_value(now),
              CertificateAuthority._meta.pk.get_db_prep_value(ca.id, connection)]
    row = _execute_once(sql, params)
    if row is None:  # the CA was deleted since the index saw it
        return None
    cached = None
    if row[10] is not None:
        cached = (int(row[10]), row[11], bool(row[12]), bytes(row[13]), _dt(row[14]), _dt(row[15]), _dt(row[16]))
    return _State(sign_with_ca_key=bool(row[0]), ca_status=row[1], ca_revoked_at=_dt(row[2]), ca_reason=row[3],
                  version=int(row[4] or 0), is_revoked=row[5] is not None, revoked_at=_dt(row[6]), reason=row[7],
                  issued=bool(row[8]), responder_id=row[9], cached=cached)


# --- the answer ------------------------------------------------------------------------------------
def respond(der: bytes, *, now: datetime | None = None) -> Answer:
    """Answer one DER OCSPRequest (see the module docstring for what and why)."""
    try:
        query = pki_ocsp.parse_request(der)
    except PKIError:
        # Garbage, truncation, several requests, a bad nonce and unsupported CertID hash algorithms
        # alike: RFC 6960 section 2.3 "malformedRequest: Illegal confirmation request".
        return MALFORMED
    ca = CA_INDEX.find(query)
    if ca is None:
        # RFC 5019 section 2.2.3: "unauthorized" when the server cannot answer authoritatively,
        # i.e. for a CA that is not ours.
        return UNAUTHORIZED
    now = (now or timezone.now()).replace(microsecond=0)
    if ca.not_after <= now:
        return UNAUTHORIZED  # nothing we sign for an expired CA can be verified any more
    serial = formats.format_serial(query.serial_number)
    want_cache = query.nonce is None
    state = _read_state(ca, serial, now, want_cache)
    if state is None:
        return UNAUTHORIZED

    compromised = state.ca_status == CAStatus.REVOKED and state.ca_reason in _COMPROMISE
    if compromised and state.issued:
        status, revoked_at, reason = "revoked", state.ca_revoked_at or now, int(RevocationReason.CA_COMPROMISE)
    elif state.is_revoked:
        status, revoked_at, reason = "revoked", state.revoked_at, state.reason
    elif state.issued:
        status, revoked_at, reason = "good", None, None
    else:
        status, revoked_at, reason = "unknown", None, None
    # Only settled answers of a CA in its normal state are shared: an unknown serial may be issued
    # a moment later, and a compromised CA's answers do not follow the serial's version.
    cacheable = want_cache and status != "unknown" and not compromised

    if cacheable and state.cached is not None:
        version, cached_status, by_ca_key, cached_der, this_update, next_update, reuse_until = state.cached
        if version == state.version and cached_status == status and by_ca_key == state.sign_with_ca_key:
            return Answer(cached_der, status, cacheable=True, this_update=this_update, next_update=next_update,
                          reuse_until=reuse_until, from_cache=True)

    if state.sign_with_ca_key:
        signer_cert, signer_key, include_signer = ca.cert, _ca_signer(ca), False
    else:
        responder_id = state.responder_id or ensure_responder(ca.id, now=now).pk
        responder = _load_responder(responder_id)
        signer_cert, signer_key, include_signer = responder.cert, responder.key, True
    next_update = min(now + RESPONSE_VALIDITY, signer_cert.not_valid_after_utc)
    if next_update <= now:
        return TRY_LATER  # the signer expires this very second; the next request renews it
    reuse_until = now + (next_update - now) / REUSE_FRACTION
    signed = pki_ocsp.sign_response(
        query, status=pki_ocsp.CertStatus[status.upper()], this_update=now, next_update=next_update,
        signer_cert=signer_cert, signer_key=signer_key, include_signer=include_signer,
        revocation_time=revoked_at, revocation_reason=reason, nonce=query.nonce)
    if cacheable:
        _store(ca.id, serial, state, status, signed, now, next_update, reuse_until)
    return Answer(signed, status, cacheable=cacheable, this_update=now, next_update=next_update,
                  reuse_until=reuse_until)


def _store(ca_id: uuid.UUID, serial: str, state: _State, status: str, der: bytes, this_update: datetime,
           next_update: datetime, reuse_until: datetime) -> None:
    """Upsert the pre-signed response (one statement). Best effort: the answer is already signed,
    and a lost write only costs the next request a signature."""
    row = OCSPCachedResponse(ca_id=ca_id, serial_number=serial, version=state.version, status=status,
                             by_ca_key=state.sign_with_ca_key, this_update=this_update, next_update=next_update,
                             reuse_until=reuse_until, der=der)
    try:
        OCSPCachedResponse.objects.bulk_create(
            [row], update_conflicts=True, unique_fields=["ca", "serial_number"],
            update_fields=["version", "status", "by_ca_key", "this_update", "next_update", "reuse_until", "der"])
    except DatabaseError:
        logger.warning("could not store a pre-signed OCSP response", exc_info=True)


def purge_cache(*, now: datetime | None = None) -> int:
    """Delete cached responses no longer reusable (the beat task keeps the table small)."""
    deleted, _ = OCSPCachedResponse.objects.filter(reuse_until__lte=now or timezone.now()).delete()
    return deleted
