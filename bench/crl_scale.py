"""CRL generation at 10,000 / 100,000 / 1,000,000 revoked entries, and CRL downloads per second.

What it does (PostgreSQL on 127.0.0.1 is the only prerequisite):

1. a fresh database ``mv_bench_crl`` (migrated), an organization with a root and an issuing CA created
   through the application's services (ECDSA P-256 by default, ``--key-type rsa-2048`` for RSA);
2. for each size, tops the issuing CA's revocation history up to that many current entries, seeded in
   bulk with COPY (each row's CRL entry DER encoded by ``certificates.pki.crl.encode_entry``, the
   code revocations use; reasons and invalidity dates vary), then ``VACUUM ANALYZE``;
3. times ``crl.services.publish_crl`` — from the database to a signed, stored DER, the path the Celery
   task runs — ``--repeat`` times and prints the best and median time and the peak Python heap of one
   run (tracemalloc); ``openssl crl -verify`` checks the stored CRL at every size;
4. in the same process, the reference: ``cryptography``'s ``CertificateRevocationListBuilder`` fed the
   same entries (already in memory, passed to the constructor — the documented
   ``add_revoked_certificate`` loop is quadratic) and signed, with its time and peak heap;
5. at the largest size: 1,000 more revocations after a full CRL, then the delta CRL's time;
6. CRL downloads per second from gunicorn (the project's config, 2 workers) for the CA's 10,000-entry CRL
   and for an empty CRL, 4 keep-alive clients.

Run: ``.venv/bin/python bench/crl_scale.py`` (about 3 minutes on 2 cores; ``--sizes 10000,100000`` for a
quick look). The database is dropped afterwards (``--keep`` keeps it).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import AppEnv, CpuMeter, Gunicorn, ServerConfig, bench_database, run_load  # noqa: E402

DB_NAME = "mv_bench_crl"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
REASONS = [0, 1, 1, 3, 4, 4, 4, 5, 6]


def setup_django(env: AppEnv) -> None:
    os.environ.update(env.environ())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mazevault.settings")
    import django

    django.setup()


def _entries(args: tuple[int, int]) -> list[tuple[int, datetime, int, datetime | None, bytes]]:
    """Rows for serials ``start .. start+count``: (serial, revoked_at, reason, invalidity, entry DER)."""
    from certificates.pki.crl import encode_entry

    start, count = args
    rng = random.Random(start)
    rows = []
    for i in range(start, start + count):
        serial = rng.getrandbits(150) | (1 << 150) | i
        revoked_at = NOW - timedelta(seconds=rng.randrange(90 * 86400))
        reason = REASONS[i % len(REASONS)]
        invalidity = revoked_at - timedelta(hours=6) if i % 5 == 0 else None
        rows.append((serial, revoked_at, reason, invalidity, encode_entry(serial, revoked_at, reason, invalidity)))
    return rows


def seed(ca, start: int, count: int) -> list[tuple[int, datetime, int, datetime | None, bytes]]:
    """COPY ``count`` current revocation rows for ``ca``; returns them (for the reference builder)."""
    import psycopg
    from django.conf import settings

    from certificates.models import Revocation
    from certificates.pki import formats

    chunk = 20_000
    jobs = [(start + offset, min(chunk, count - offset)) for offset in range(0, count, chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        rows = [row for part in pool.map(_entries, jobs) for row in part]
    table = Revocation._meta.db_table
    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"],
                         dbname=db["NAME"]) as conn, conn.cursor() as cur:
        with cur.copy(f'COPY "{table}" (ca_id, serial_number, kind, reason, revoked_at, invalidity_date, '
                      f'not_after, shard, entry_der, current, actor_name, comment, created_at) FROM STDIN') as copy:
            not_after = NOW + timedelta(days=365)
            for serial, revoked_at, reason, invalidity, der in rows:
                copy.write_row((ca.pk, formats.format_serial(serial), "revoke", reason, revoked_at, invalidity,
                                not_after, None, der, True, "bench", "", NOW))
        conn.commit()
        conn.autocommit = True
        cur.execute(f'VACUUM ANALYZE "{table}"')
    return rows


def timed_publish(ca, kind: str, repeat: int) -> tuple[list[float], float, object]:
    from crl import services

    times = []
    crl = None
    for index in range(repeat):
        if index == 0:
            tracemalloc.start()
        t0 = time.perf_counter()
        crl = services.publish_crl(ca, kind=kind)
        times.append(time.perf_counter() - t0)
        if index == 0:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    return times, peak / 2**20, crl


def reference(ca, rows) -> tuple[float, float]:
    """cryptography's builder on the same entries (constructor, not the quadratic add loop)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from certificates import services as cert_services
    from certificates.keystore import get_signer

    issuer = cert_services.ca_certificate(ca)
    key = get_signer(ca.key).private_key()
    reasons = {0: None, 1: x509.ReasonFlags.key_compromise, 3: x509.ReasonFlags.affiliation_changed,
               4: x509.ReasonFlags.superseded, 5: x509.ReasonFlags.cessation_of_operation,
               6: x509.ReasonFlags.certificate_hold}
    tracemalloc.start()
    t0 = time.perf_counter()
    revoked = []
    for serial, revoked_at, reason, invalidity, _ in rows:
        builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
        if reasons[reason] is not None:
            builder = builder.add_extension(x509.CRLReason(reasons[reason]), critical=False)
        if invalidity is not None:
            builder = builder.add_extension(x509.InvalidityDate(invalidity), critical=False)
        revoked.append(builder.build())
    crl_builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.subject, last_update=NOW, next_update=NOW + timedelta(days=7),
        extensions=[x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(1))], revoked_certificates=revoked)
    crl_builder.sign(key, hashes.SHA256() if key.key_size < 384 else hashes.SHA384())
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return elapsed, peak


def openssl_verify(ca, der: bytes) -> str:
    from certificates import services as cert_services
    from cryptography.hazmat.primitives.serialization import Encoding

    with tempfile.TemporaryDirectory() as tmp:
        crl_path, ca_path = Path(tmp, "crl.der"), Path(tmp, "ca.pem")
        crl_path.write_bytes(der)
        chain = cert_services.ca_certificate(ca).public_bytes(Encoding.PEM) + \
            cert_services.ca_certificate(ca.parent).public_bytes(Encoding.PEM)
        ca_path.write_bytes(chain)
        result = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(crl_path), "-CAfile", str(ca_path),
                                 "-noout", "-verify"], capture_output=True, text=True)
        verdict = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or "verify OK" not in verdict:
            raise SystemExit(f"openssl rejected the CRL: {verdict}")
        return verdict


def downloads(env: AppEnv, paths: dict[str, str], requests: int) -> None:
    print(f"\nCRL downloads, gunicorn 2 sync workers, 4 keep-alive clients, {requests} requests each:")
    with Gunicorn(env, ServerConfig(workers=2)) as server:
        for label, path in paths.items():
            raw = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: application/pkix-crl\r\n\r\n".encode()
            run_load(server.port, [raw] * 200, clients=4, expect=200)  # warm-up (per-process DER cache)
            with CpuMeter(server) as meter:
                result = run_load(server.port, [raw] * requests, clients=4, expect=200)
            if result.errors:
                raise SystemExit(f"download errors: {result.errors[:3]}")
            print(f"  {label:<28} {result.rate:8.0f}/s   p50 {result.pct(50):6.2f} ms   p99 {result.pct(99):6.2f} ms"
                  f"   {meter.summary(result.n)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--key-type", default="ec-p256")
    parser.add_argument("--downloads", type=int, default=4000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one full and one delta "
                                                               "publication at the largest size")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    with bench_database(DB_NAME, keep=args.keep) as env:
        setup_django(env)
        from django.contrib.auth import get_user_model

        from certificates import services as cert_services
        from certificates.models import CertificateAuthority, Revocation
        from crl import services
        from mazevault import services as core

        admin = get_user_model().objects.create_user("bench-admin")
        org = core.create_organization(name="Bench", actor=admin)
        root = cert_services.create_ca(cert_services.CASpec(
            name="Bench Root", key_type=args.key_type, subject={"common_name": "Bench Root CA"}),
            actor=admin, organization=org)
        ca = cert_services.create_ca(cert_services.CASpec(
            name="Bench Issuing", key_type=args.key_type, subject={"common_name": "Bench Issuing CA"}, path_length=0),
            actor=admin, organization=org, parent=root)
        empty = cert_services.create_ca(cert_services.CASpec(
            name="Bench Empty", key_type=args.key_type, subject={"common_name": "Bench Empty CA"}, path_length=0),
            actor=admin, organization=org, parent=root)
        services.publish_all(empty)
        ca = CertificateAuthority.objects.select_related("key", "parent").get(pk=ca.pk)
        print(f"CRL generation, {args.key_type} CA, PostgreSQL; best / median of {args.repeat}, peak Python heap of one run")
        print(f"{'entries':>10} {'ours best':>10} {'median':>8} {'heap MiB':>9} {'DER MiB':>8} "
              f"{'reference':>10} {'ref heap':>9} {'speed-up':>8}  openssl")
        have = 0
        all_rows: list = []
        download_paths = {"empty CRL": f"/api/v1/ca/{empty.pk}/crl"}
        for size in sizes:
            t0 = time.perf_counter()
            all_rows += seed(ca, have, size - have)
            have = size
            seed_s = time.perf_counter() - t0
            times, heap, crl = timed_publish(ca, "full", args.repeat)
            der = services.crl_der(crl)
            verdict = openssl_verify(ca, der)
            ref_s, ref_heap = reference(ca, all_rows)
            print(f"{size:>10,} {min(times):>9.3f}s {statistics.median(times):>7.3f}s {heap:>9.1f} "
                  f"{len(der) / 2**20:>8.1f} {ref_s:>9.2f}s {ref_heap:>9.1f} {ref_s / min(times):>7.1f}x  {verdict}"
                  f"   (seeded in {seed_s:.1f} s)")
            if size == 10_000:
                download_paths["10,000-entry CRL"] = f"/api/v1/ca/{ca.pk}/crl"
                services.publish_all(ca)
                downloads(env, download_paths, args.downloads)
        # A delta after 1,000 more revocations on top of the largest full CRL.
        base = services.publish_crl(ca, kind="full")
        seed(ca, have, 1_000)
        times, heap, delta = timed_publish(ca, "delta", args.repeat)
        assert delta.entry_count == 1_000 and delta.base_number == base.number, (delta.entry_count, delta.base_number)
        openssl_verify(ca, services.crl_der(delta))
        print(f"\ndelta CRL over {have:,} revoked with 1,000 changes since its base: best {min(times) * 1000:.1f} ms, "
              f"median {statistics.median(times) * 1000:.1f} ms, heap {heap:.1f} MiB, {delta.size:,} bytes")
        print(f"(revocation rows in the database: {Revocation.objects.filter(ca=ca).count():,})")
        if args.profile:
            import cProfile
            import pstats

            for kind in ("full", "delta"):
                profiler = cProfile.Profile()
                profiler.runcall(services.publish_crl, ca, kind=kind)
                print(f"\n--- cProfile of one {kind} publication ---")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
