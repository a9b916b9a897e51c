"""Certificates issued per second through the REST API, against the bare ``cryptography`` ceiling.

What it does, from nothing (PostgreSQL on 127.0.0.1 is the only prerequisite):

1. the bare ceiling: one process, one thread, doing parse CSR -> verify its signature -> build
   the leaf (the same extensions MazeVault puts in: BC, KU, EKU, SKI, AKI, CRL DP, AIA) -> sign,
   with ``cryptography`` alone, under a P-256 CA (and, for reference, an RSA-2048 CA);
2. for each CA key type (ECDSA P-256, then RSA-2048): a fresh database (``<prefix>_issue``,
   ``<prefix>_issue_rsa``), ``migrate``, ``bootstrap_demo --key-type …``, gunicorn on it with
   the API throttle counting at a limit never reached (``--rate-limit``), Redis for the counters
   when ``--redis-url`` is given (the production shape) and persistent DB connections, then
   ``POST /api/v1/certificates/csr``
   (uploaded CSR, auto-approved template ``client-auth``: every request comes back issued,
   status 201/active) with 1, 4 and 8 concurrent keep-alive clients. CSRs are generated before
   the clock starts; every request carries a distinct CSR;
   then, on the same server, authenticated GETs of one project and of one issued certificate;
   and once more (4 clients) on the embedded defaults: SQLite in a fresh data directory, no Redis;
3. afterwards: the number of active certificates matches the number of 201s, ``verify_audit``
   walks the whole hash chain, and ``openssl verify`` checks one issued chain;
4. drops its databases (``--keep`` keeps them).

Run: ``.venv/bin/python bench/issue_rest.py --redis-url redis://127.0.0.1:6379/4`` (``--help`` for the knobs; ``--sweep`` compares
gunicorn worker configurations at 4 clients).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cryptography  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID  # noqa: E402

from _harness import (CpuMeter, Gunicorn, LoadResult, ServerConfig, bench_database, embedded_database,  # noqa: E402
                      http_request, run_load)

DEFAULT_SERVER = ServerConfig("sync", workers=3)  # the best of --sweep on 2 cores
SWEEP = [ServerConfig("sync", 2), ServerConfig("sync", 3), ServerConfig("sync", 4),
         ServerConfig("gthread", 2, 2), ServerConfig("gthread", 2, 4), ServerConfig("gthread", 3, 2)]


# --- CSRs -----------------------------------------------------------------------------------------
def make_csrs(n: int, prefix: str) -> list[bytes]:
    """``n`` distinct PEM CSRs (fresh P-256 keys), CN ``<prefix>-<i>.clients.example.com``."""
    out = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix}-{i}.clients.example.com"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bench")])
        out.append(x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
                   .public_bytes(serialization.Encoding.PEM))
    return out


# --- The bare ceiling -------------------------------------------------------------------------------
def _bare_ca(key_type: str):
    key = ec.generate_private_key(ec.SECP256R1()) if key_type == "ec-p256" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bare Issuing CA")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def bare_rate(csrs: list[bytes], key_type: str, rounds: int = 3) -> float:
    """Best of ``rounds`` passes over ``csrs``: certificates per second for parse -> verify -> build -> sign."""
    ca_key, ca_cert = _bare_ca(key_type)
    base = "http://localhost:8000/api/v1/ca/00000000-0000-0000-0000-000000000000"
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
        ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    ku = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    cdp = x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(f"{base}/crl")],
                                                             None, None, None)])
    aia = x509.AuthorityInformationAccess([
        x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{base}/ocsp")),
        x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                               x509.UniformResourceIdentifier(f"{base}/certificate"))])
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for pem in csrs:
            csr = x509.load_pem_x509_csr(pem)
            if not csr.is_signature_valid:
                raise SystemExit("bare: CSR signature does not verify")
            public_key = csr.public_key()
            now = datetime.now(timezone.utc)
            (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject).public_key(public_key)
             .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
             .not_valid_after(now + timedelta(days=365))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(ku, critical=True).add_extension(eku, critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
             .add_extension(aki, critical=False).add_extension(cdp, critical=False).add_extension(aia, critical=False)
             .sign(ca_key, hashes.SHA256()))
        best = max(best, len(csrs) / (time.perf_counter() - started))
    return best


# --- Through the API ---------------------------------------------------------------------------------
class IssuanceRun:
    def __init__(self, env, demo: dict, server: Gunicorn) -> None:
        self.env, self.demo, self.server = env, demo, server
        self.issued = 0

    def bodies(self, csrs: list[bytes]) -> list[bytes]:
        return [http_request("POST", "/api/v1/certificates/csr", token=self.demo["token"], body={
            "project_id": self.demo["project_id"], "template_id": self.demo["template_ids"]["client-auth"],
            "csr_source_mode": "uploaded_csr", "csr_pem": pem.decode()}) for pem in csrs]

    def load(self, csrs: list[bytes], clients: int) -> tuple[LoadResult, CpuMeter]:
        requests = self.bodies(csrs)
        with CpuMeter(self.server) as meter:
            result = run_load(self.server.port, requests, clients, expect=201)
        if result.errors:
            raise SystemExit(f"{len(result.errors)} unexpected answers, first: {result.errors[:3]}")
        self.issued += result.n
        return result, meter

    def warm_up(self, csrs: list[bytes]) -> None:
        """Every worker loads the CA key, opens its DB connection and fills its caches."""
        self.load(csrs, clients=max(2, self.server.config.workers * self.server.config.threads))


def bootstrap(env, key_type: str) -> dict:
    """The demo tenant, and the client's token: a service account with the ``user`` role on the
    project (what a real API client holds; the demo admin is a superuser, whose checks are cheaper)."""
    demo = json.loads(env.manage("bootstrap_demo", "--json", "--key-type", key_type))
    demo["token"] = env.manage("create_token", "--user", "bench-client", "--role", "user",
                               "--project", demo["project_id"], "--name", "bench").strip()
    return demo


def check_afterwards(env, demo: dict, issued: int) -> list[str]:
    """Active certificates == 201 answers; the audit chain verifies; one issued chain verifies."""
    notes = []
    active = env.query("SELECT count(*) FROM certificates_certificate WHERE status = 'active'")[0][0]
    leaf = env.query("SELECT certificate_pem, chain_pem FROM certificates_certificate WHERE status = 'active' "
                     "ORDER BY issued_at DESC LIMIT 1")[0]
    roots = env.query("SELECT certificate_pem FROM certificates_certificateauthority WHERE kind = 'root'")
    if active != issued:
        raise SystemExit(f"{issued} certificates answered 201 but {active} are active")
    notes.append(f"{active} active certificates == {issued} answers 201")
    notes.append(env.manage("verify_audit").strip())
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "root.pem").write_text("".join(r[0] for r in roots))
        Path(tmp, "chain.pem").write_text(leaf[1])
        Path(tmp, "leaf.pem").write_text(leaf[0])
        result = subprocess.run(["openssl", "verify", "-CAfile", f"{tmp}/root.pem", "-untrusted",
                                 f"{tmp}/chain.pem", f"{tmp}/leaf.pem"], capture_output=True, text=True)
        notes.append("openssl verify (last leaf): " + (result.stdout.strip().rsplit(" ", 1)[-1]
                                                        if result.returncode == 0 else f"FAILED {result.stderr}"))
    return notes


def api_rates(key_type: str, db_name: str, config: ServerConfig, levels: list[int], per_level: int,
              keep: bool, db_options: str = "", floor: bool = False, extra_env: dict[str, str] | None = None,
              embedded: bool = False) -> tuple[dict, list[str]]:
    """{clients: (LoadResult, CpuMeter)} for the issuance levels, plus, when ``floor`` is asked,
    "floor" (an authenticated read of one project) and "get" (an authenticated GET of one issued
    certificate: token, roles, throttle, one row, the 45-field serializer) on the same server."""
    database = (embedded_database(db_name, extra_env=extra_env) if embedded
                else bench_database(db_name, keep=keep, db_options=db_options, extra_env=extra_env))
    with database as env:
        demo = bootstrap(env, key_type)
        warm = make_csrs(60 * config.workers, f"warm-{key_type}")
        batches = {c: make_csrs(per_level, f"{key_type}-c{c}") for c in levels}
        results: dict = {}
        with Gunicorn(env, config) as server:
            run = IssuanceRun(env, demo, server)
            run.warm_up(warm)
            for clients in levels:
                results[clients] = run.load(batches[clients], clients)
            if floor:
                read = http_request("GET", f"/api/v1/projects/{demo['project_id']}", token=demo["token"])
                with CpuMeter(server) as meter:
                    result = run_load(server.port, [read] * per_level, 4, expect=200)
                if result.errors:
                    raise SystemExit(f"floor: {result.errors[:3]}")
                results["floor"] = (result, meter)
                cert_id = env.query("SELECT id FROM certificates_certificate WHERE status = 'active' "
                                    "ORDER BY issued_at DESC LIMIT 1")[0][0]
                cert_id = str(cert_id) if embedded else cert_id
                if embedded and len(cert_id) == 32:  # SQLite stores UUIDs as 32 hex digits
                    cert_id = f"{cert_id[:8]}-{cert_id[8:12]}-{cert_id[12:16]}-{cert_id[16:20]}-{cert_id[20:]}"
                get = http_request("GET", f"/api/v1/certificates/{cert_id}", token=demo["token"])
                with CpuMeter(server) as meter:
                    result = run_load(server.port, [get] * per_level, 4, expect=200)
                if result.errors:
                    raise SystemExit(f"get: {result.errors[:3]}")
                results["get"] = (result, meter)
        notes = check_afterwards(env, demo, run.issued)
    return results, notes


def fmt_row(label: str, clients: int, r: LoadResult, meter: CpuMeter, bare: float) -> str:
    return (f"{label:<10} {clients:>7} {r.rate:>9.1f} {r.pct(50):>8.2f} {r.pct(99):>8.2f} "
            f"{100 * r.rate / bare:>8.1f}%   {meter.summary(r.n)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per concurrency level (default 3000)")
    parser.add_argument("--clients", default="1,4,8", help="concurrency levels (default 1,4,8)")
    parser.add_argument("--worker-class", default=DEFAULT_SERVER.worker_class, choices=["sync", "gthread"])
    parser.add_argument("--workers", type=int, default=DEFAULT_SERVER.workers)
    parser.add_argument("--threads", type=int, default=DEFAULT_SERVER.threads)
    parser.add_argument("--no-rsa", action="store_true", help="skip the RSA-2048 CA run")
    parser.add_argument("--no-embedded", action="store_true",
                        help="skip the run on the embedded defaults (SQLite, no Redis)")
    parser.add_argument("--sweep", action="store_true",
                        help="only compare gunicorn worker configurations (P-256 CA, 4 clients)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument("--db-prefix", default=os.environ.get("BENCH_DB_PREFIX", "mv_bench"),
                        help="prefix of the benchmark databases (default mv_bench; use your own on a shared server)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""),
                        help="REDIS_URL for the server (rate counters): the production shape. Empty: the "
                             "database counter (also BENCH_REDIS_URL)")
    parser.add_argument("--rate-limit", default="10000000/min",
                        help="MAZEVAULT_RATE_LIMIT_API of the server: counting, at a limit the load never reaches "
                             "(default 10000000/min; empty switches the throttle off)")
    parser.add_argument("--db-options", default="", metavar="QUERY",
                        help="appended to the server's DATABASE_URL, e.g. server_side_binding=true&prepare_threshold=2 "
                             "(server-side prepared statements)")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    config = ServerConfig(args.worker_class, args.workers, args.threads)
    extra = {"MAZEVAULT_RATE_LIMIT_API": args.rate_limit}
    if args.redis_url:
        extra["REDIS_URL"] = args.redis_url
    db = args.db_prefix

    print(f"MazeVault issuance benchmark: {os.cpu_count()} cores (load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start), "
          f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"PostgreSQL via {os.environ.get('BENCH_PG_URL', '127.0.0.1:5432')}, "
          f"Redis {'at ' + args.redis_url if args.redis_url else 'not configured (database counters)'}, "
          f"API throttle {args.rate_limit or 'off'}")
    if args.sweep:
        print("gunicorn configurations, P-256 CA, 4 clients, "
              f"{args.requests} requests each:")
        for cfg in SWEEP:
            results, _ = api_rates("ec-p256", f"{db}_issue", cfg, [4], args.requests, keep=False,
                                   db_options=args.db_options, extra_env=extra)
            r, meter = results[4]
            print(f"  {str(cfg):<18} {r.rate:>8.1f} certs/s  p50 {r.pct(50):6.2f} ms  p99 {r.pct(99):6.2f} ms   "
                  f"{meter.summary(r.n)}")
        return

    bare_csrs = make_csrs(3000, "bare")
    bare = bare_rate(bare_csrs, "ec-p256")
    bare_rsa = bare_rate(bare_csrs, "rsa-2048")
    print("bare ceiling (cryptography only, 1 process; parse CSR -> verify -> build -> sign):")
    print(f"  P-256 CA: {bare:8.1f} certs/s      (RSA-2048 CA, for reference: {bare_rsa:.1f} certs/s)")
    print(f"API: POST /api/v1/certificates/csr (uploaded CSR, auto-approved client-auth, project-scoped token), "
          f"gunicorn {config}, PostgreSQL{' ?' + args.db_options if args.db_options else ''}, "
          f"{args.requests} requests per level")
    print(f"{'CA':<10} {'clients':>7} {'certs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'API/bare':>9}")

    p256, notes = api_rates("ec-p256", f"{db}_issue", config, levels, args.requests, args.keep, args.db_options,
                            floor=True, extra_env=extra)
    for clients in levels:
        print(fmt_row("ECDSA P-256", clients, *p256[clients], bare))
    all_notes = [f"P-256: {n}" for n in notes]
    rsa_results = {}
    if not args.no_rsa:
        rsa_results, notes = api_rates("rsa-2048", f"{db}_issue_rsa", config, levels, args.requests, args.keep,
                                       args.db_options, extra_env=extra)
        for clients in levels:
            print(fmt_row("RSA-2048", clients, *rsa_results[clients], bare))
        all_notes += [f"RSA-2048: {n}" for n in notes]
        print("RSA-2048 CA rate / P-256 CA rate: " + ", ".join(
            f"{c} clients {100 * rsa_results[c][0].rate / p256[c][0].rate:.1f}%" for c in levels))
    for key, label in (("floor", "GET /api/v1/projects/{id} (authenticated read of one row)"),
                       ("get", "GET /api/v1/certificates/{id} (authenticated read of one issued certificate)")):
        r, meter = p256[key]
        print(f"reference, same server: {label} at 4 clients: {r.rate:.1f} req/s, p50 {r.pct(50):.2f} ms, "
              f"p99 {r.pct(99):.2f} ms = {100 * r.rate / bare:.1f}% of the bare ceiling; {meter.summary(r.n)}")
    embedded = None
    if not args.no_embedded:
        # What ``make run`` gives: SQLite, database rate counters, no Redis (same throttle limit).
        embedded, notes = api_rates("ec-p256", f"{db}_issue_embedded", config, [4], args.requests, False,
                                    floor=True, extra_env={"MAZEVAULT_RATE_LIMIT_API": args.rate_limit},
                                    embedded=True)
        print("embedded defaults (SQLite under MAZEVAULT_DATA_DIR, no Redis, database rate counters):")
        print(fmt_row("ECDSA P-256", 4, *embedded[4], bare))
        r, meter = embedded["get"]
        print(f"  GET /api/v1/certificates/{{id}} at 4 clients: {r.rate:.1f} req/s, p50 {r.pct(50):.2f} ms, "
              f"p99 {r.pct(99):.2f} ms; {meter.summary(r.n)}")
        all_notes += [f"embedded: {n}" for n in notes]
    for note in all_notes:
        print("check  " + note)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    if 4 in p256:
        r, meter = p256[4]
        get, get_meter = p256["get"]
        print("aims:")
        print(f"  API at 4 clients >= 15% of bare ceiling: {100 * r.rate / bare:.1f}% "
              f"-> {'MET' if r.rate >= 0.15 * bare else 'NOT MET'}")
        print(f"  p99 at 4 clients <= 50 ms: {r.pct(99):.2f} ms -> {'MET' if r.pct(99) <= 50 else 'NOT MET'}")
        issue_cpu = meter.server_s * 1000 / max(r.n, 1)
        get_cpu = get_meter.server_s * 1000 / max(get.n, 1)
        print(f"  server CPU per issuance <= 3 ms: {issue_cpu:.2f} ms -> {'MET' if issue_cpu <= 3 else 'NOT MET'}")
        print(f"  server CPU per authenticated GET <= 1.5 ms: {get_cpu:.2f} ms "
              f"-> {'MET' if get_cpu <= 1.5 else 'NOT MET'}")
        if 4 in rsa_results:
            ratio = rsa_results[4][0].rate / r.rate
            print(f"  RSA-2048 CA >= 40% of the P-256 rate (4 clients): {100 * ratio:.1f}% "
                  f"-> {'MET' if ratio >= 0.40 else 'NOT MET'}")


if __name__ == "__main__":
    main()
