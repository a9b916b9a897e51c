"""Latency of ``GET /api/v1/certificates`` over 1,000,000 certificates in PostgreSQL.

What it does (PostgreSQL on 127.0.0.1 is the only prerequisite):

1. a fresh database ``mv_bench_list``, ``migrate`` (so the indexes measured are the migrations'),
   ``bootstrap_demo``, then two more projects and three more issuing CAs in the same organization,
   an organization-level admin (not a superuser: its lists carry the tenant filter, like a real
   operator's) and a project-level ``user``;
2. bulk-loads ``--rows`` certificates (default 1,000,000) with COPY: 50/30/20 % over the three
   projects, four issuing CAs, three years of ``requested_at`` (inserted in time order, as a live
   system does), validity 90/365/397 days with statuses that agree with it (active, expired,
   revoked, archived, pending_approval, rejected), common names like
   ``host-123456.svc.example.com``, real certificate and chain PEMs (so rows have a real width).
   Secondary indexes are dropped for the load and rebuilt from their own definitions, then
   ``VACUUM ANALYZE``;
3. starts gunicorn (the project's config, 2 workers) and, with one keep-alive client, times each
   case ``--repeat`` times (parameters vary between repetitions: other substrings, other CAs, …);
   prints median and p95 latency, ``pagination.total`` and the plan PostgreSQL chose for the page
   and the count query (``EXPLAIN ANALYZE``; ``--explain`` prints the whole plans);
4. drops the database (``--keep`` keeps it; ``--reuse`` measures a kept one again without loading).

Run: ``.venv/bin/python bench/list_scale.py`` (about 3 minutes on 2 cores, most of it loading; 3.5 GB of
disk while it runs).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import AppEnv, Gunicorn, HttpConnection, ServerConfig, bench_database, http_request  # noqa: E402

DB_NAME = "mv_bench_list"
NOW = datetime.now(timezone.utc)
PREFIXES = ["host"] * 5 + ["api"] * 2 + ["db", "web", "mq", "cache"]
DOMAINS = ["svc.example.com", "svc.example.com", "prod.example.net", "internal.corp", "edge.example.org"]


# --- Tenants, CAs, users (through the application's own services) ------------------------------------
def setup_django(env: AppEnv) -> None:
    os.environ.update(env.environ())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mazevault.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()


def make_tenants(env: AppEnv) -> dict:
    demo = json.loads(env.manage("bootstrap_demo", "--json"))
    setup_django(env)
    from django.contrib.auth import get_user_model

    from certificates import services
    from certificates.models import CertificateAuthority
    from mazevault import services as core
    from mazevault.models import Environment, Organization, Project
    from mazevault.rbac import Role

    admin = get_user_model().objects.get(username="admin")
    org = Organization.objects.get(pk=demo["organization_id"])
    demo_project = Project.objects.get(pk=demo["project_id"])
    root = CertificateAuthority.objects.get(pk=demo["root_ca_id"])
    issuing = CertificateAuthority.objects.get(pk=demo["issuing_ca_id"])
    payments = core.create_project(organization=org, name="Payments", environment=Environment.PRODUCTION,
                                   actor=admin)
    edge = core.create_project(organization=org, name="Edge", environment=Environment.STAGING, actor=admin)

    def ca(name: str, project) -> CertificateAuthority:
        return services.create_ca(services.CASpec(name=name, subject={"common_name": name, "organization": "Demo"},
                                                  validity_days=3650, path_length=0),
                                  actor=admin, organization=org, project=project, parent=root)

    cas = {"demo": [issuing, ca("Demo Issuing CA 2", demo_project)], "payments": [ca("Payments Issuing CA", payments)],
           "edge": [ca("Edge Issuing CA", edge)]}
    User = get_user_model()
    ops = User.objects.create_user("ops-admin")
    core.assign_role(user=ops, role=Role.ADMIN, organization=org, actor=admin)
    _, ops_token = core.create_token(user=ops, name="bench", actor=admin)
    dev = User.objects.create_user("dev-user")
    core.assign_role(user=dev, role=Role.USER, project=demo_project, actor=admin)
    _, dev_token = core.create_token(user=dev, name="bench", actor=admin)
    return {
        "org": org, "root": root, "admin": admin, "ops": ops,
        "projects": {"demo": demo_project, "payments": payments, "edge": edge}, "cas": cas,
        "templates": [uuid.UUID(t) for t in demo["template_ids"].values()],
        "tokens": {"superuser": demo["token"], "org-admin": ops_token, "project-user": dev_token},
    }


# --- Bulk load -------------------------------------------------------------------------------------------
def _hex(nbytes: int) -> str:
    return ":".join(f"{b:02X}" for b in random.randbytes(nbytes))


def _leaf_pems(root_ca, n: int = 32) -> list[str]:
    """Real leaf certificate PEMs to give the rows their real width."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    out = []
    for i in range(n):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"host-{i:06d}.svc.example.com")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(NOW).not_valid_after(NOW + timedelta(365))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"host-{i:06d}.svc.example.com")]), False)
                .sign(key, hashes.SHA256()))
        out.append(cert.public_bytes(serialization.Encoding.PEM).decode())
    return out


def rows(t: dict, n: int, seed: int = 7):
    """Yield ``n`` certificate rows as dicts keyed by column name, oldest first."""
    from certificates.services import ca_chain_pem

    rng = random.Random(seed)
    random.seed(seed)
    pems = _leaf_pems(t["root"])
    projects = [("demo", 0.5), ("payments", 0.3), ("edge", 0.2)]
    chains = {ca.pk: ca_chain_pem(ca) for cas in t["cas"].values() for ca in cas}
    start = NOW - timedelta(days=3 * 365)
    span = (NOW - start).total_seconds()
    users = [t["admin"].pk, t["ops"].pk]
    for i in range(n):
        name = rng.choices(projects, weights=[w for _, w in projects])[0][0]
        project = t["projects"][name]
        cas = t["cas"][name]
        ca = cas[0] if len(cas) == 1 or rng.random() < 0.7 else cas[1]
        requested = start + timedelta(seconds=span * (i + rng.random()) / n)
        cn = f"{rng.choice(PREFIXES)}-{rng.randrange(1_000_000):06d}.{rng.choice(DOMAINS)}"
        row = {
            "id": uuid.UUID(int=rng.getrandbits(128), version=4), "created_at": requested, "updated_at": requested,
            "organization_id": t["org"].pk, "project_id": project.pk, "template_id": rng.choice(t["templates"]),
            "ca_id": ca.pk, "source": "request", "common_name": cn, "subject": f"CN={cn},O=Demo",
            "san": json.dumps([cn]), "key_type": "ECDSA-P256" if rng.random() < 0.8 else "RSA-2048",
            "requested_by_id": rng.choice(users), "requested_at": requested, "labels": json.dumps(
                {"team": name} if rng.random() < 0.3 else {}), "required_approvals": 1,
        }
        age_days = (NOW - requested).days
        if age_days < 14 and rng.random() < 0.5:
            row["status"] = "pending_approval"
        elif rng.random() < 0.02:
            row.update(status="rejected", rejected_at=requested + timedelta(hours=2), rejected_by_id=t["admin"].pk,
                       rejection_reason="not ours")
        else:
            issued = requested + timedelta(minutes=rng.randrange(1, 240))
            not_after = issued + timedelta(days=rng.choice([90, 365, 365, 397]))
            row.update(serial_number=_hex(16), fingerprint_sha256=_hex(32), issued_at=issued,
                       not_before=issued - timedelta(minutes=5), not_after=not_after, issuer_cn=ca.name,
                       certificate_pem=pems[i % len(pems)], chain_pem=chains[ca.pk], updated_at=issued)
            roll = rng.random()
            if not_after > NOW:
                row["status"] = "active" if roll < 0.93 else "revoked"
            else:
                row["status"] = "expired" if roll < 0.85 else "revoked" if roll < 0.93 else "archived"
            if row["status"] == "revoked":
                row.update(revoked_at=issued + timedelta(days=rng.randrange(1, 60)), revoked_by_id=t["admin"].pk,
                           revocation_reason="superseded")
            elif row["status"] == "archived":
                row.update(archived_at=not_after + timedelta(days=3), status_before_archive="expired")
        yield row


def bulk_load(env: AppEnv, t: dict, n: int) -> None:
    import psycopg

    from certificates.models import Certificate

    table = Certificate._meta.db_table
    fields = Certificate._meta.concrete_fields
    columns = [f.column for f in fields]
    defaults = {}
    for f in fields:
        if f.has_default():
            value = f.get_default()
            defaults[f.column] = json.dumps(value) if isinstance(value, (dict, list)) else value
        elif f.null:
            defaults[f.column] = None
        else:
            defaults[f.column] = "" if f.get_internal_type() in ("CharField", "TextField") else None
    with psycopg.connect(env.url, autocommit=True) as conn:
        keep = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conindid "
            "WHERE k.conrelid = %s::regclass", [table])}
        indexes = [(name, ddl) for name, ddl in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table]) if name not in keep]
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        started = time.perf_counter()
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # the generator keeps every FK valid
            with conn.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                for row in rows(t, n):
                    copy.write_row([row.get(c, defaults[c]) for c in columns])
        loaded = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, ddl in indexes:
            conn.execute(ddl)
        indexed = time.perf_counter()
        conn.execute(f'VACUUM (ANALYZE) "{table}"')
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))", [table]).fetchone()[0]
    print(f"loaded {n:,} certificates in {loaded - started:.0f} s (COPY), rebuilt {len(indexes)} indexes in "
          f"{indexed - loaded:.0f} s, VACUUM ANALYZE {time.perf_counter() - indexed:.0f} s; table + indexes {size}")


# --- The cases -------------------------------------------------------------------------------------------
def cases(t: dict, rng: random.Random) -> list[tuple[str, str, object]]:
    """(label, token name, params factory) — each call of the factory gives one request's query."""
    demo, payments = t["projects"]["demo"].pk, t["projects"]["payments"].pk
    cas = [ca.pk for group in t["cas"].values() for ca in group]
    rare = lambda: f"host-{rng.randrange(100_000):05d}"  # noqa: E731  ~3 matches
    medium = lambda: f"{rng.randrange(10_000):04d}"  # noqa: E731  ~300 matches
    return [
        ("no filter", "org-admin", lambda: {}),
        ("project_id", "org-admin", lambda: {"project_id": rng.choice([demo, payments])}),
        ("status=active", "org-admin", lambda: {"status": "active"}),
        ("status=pending_approval", "org-admin", lambda: {"status": "pending_approval"}),
        ("ca_id", "org-admin", lambda: {"ca_id": rng.choice(cas)}),
        ("common_name rare (host-NNNNN)", "org-admin", lambda: {"common_name": rare()}),
        ("common_name medium (NNNN)", "org-admin", lambda: {"common_name": medium()}),
        ("common_name frequent (example.net)", "org-admin", lambda: {"common_name": "example.net"}),
        ("expiring_within_days=30", "org-admin", lambda: {"expiring_within_days": rng.choice([7, 30])}),
        ("expiring_within_days, ordering=not_after", "org-admin",
         lambda: {"expiring_within_days": rng.choice([7, 30]), "ordering": "not_after"}),
        ("combined project+status+ca", "org-admin",
         lambda: {"project_id": demo, "status": "active", "ca_id": t["cas"]["demo"][0].pk}),
        ("combined project+status+cn+expiring", "org-admin",
         lambda: {"project_id": demo, "status": "active", "common_name": rng.choice(["host-1", "api-2", "db-3"]),
                  "expiring_within_days": 90}),
        ("ordering=not_after, status=active", "org-admin", lambda: {"status": "active", "ordering": "not_after"}),
        ("project-user: no filter", "project-user", lambda: {}),
        ("project-user: status=active", "project-user", lambda: {"status": "active"}),
        ("superuser: no filter", "superuser", lambda: {}),
        ("page 2", "org-admin", lambda: {"page": 2}),
        ("page 100", "org-admin", lambda: {"page": 100}),
        ("page 1000", "org-admin", lambda: {"page": 1000}),
        ("page 1000, per_page=100", "org-admin", lambda: {"page": 1000, "per_page": 100}),
        ("last page", "org-admin", lambda: {"page": last_page({})}),
        ("status=active, last page", "org-admin", lambda: {"status": "active", "page": last_page({"status": "active"})}),
    ]


@functools.lru_cache
def _exact_count(items: tuple) -> int:
    from certificates.models import Certificate

    return Certificate.objects.filter(**dict(items)).count()


def last_page(filters: dict, per_page: int = 25) -> int:
    """The last page number, from an exact count (the API's ``total`` stops at 10,000)."""
    return max(1, -(-_exact_count(tuple(sorted(filters.items()))) // per_page))


def _query(params: dict) -> str:
    return "/api/v1/certificates" + ("?" + urlencode({k: str(v) for k, v in params.items()}) if params else "")


def measure(port: int, t: dict, repeat: int, explain: bool) -> None:
    rng = random.Random(11)
    conn = HttpConnection("127.0.0.1", port)

    def get(token: str, params: dict) -> tuple[float, dict]:
        raw = http_request("GET", _query(params), token=t["tokens"][token])
        started = time.perf_counter()
        status, body = conn.request(raw)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"{_query(params)} -> {status} {body[:300]!r}")
        return elapsed, json.loads(body)

    print(f"{'case':<41} {'median ms':>9} {'p95 ms':>8} {'total':>10}  plans of the SQL run, in order "
          "(scans used, execution time)")
    for label, token, make in cases(t, rng):
        timings, totals, capped, last_params = [], [], [], {}
        for i in range(repeat + 3):
            params = make()
            elapsed, body = get(token, params)
            if i >= 3:  # the first three warm the caches
                timings.append(elapsed)
                totals.append(body["pagination"]["total"])
                capped.append(body["pagination"].get("total_capped", False))
            last_params = params
        timings.sort()
        p95 = timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))]
        total = f"{int(statistics.median(totals)):,}" + ("+" if all(capped) else " or more" if any(capped) else "")
        print(f"{label:<41} {statistics.median(timings):>9.1f} {p95:>8.1f} {total:>10}  "
              f"{plan_summary(t, token, last_params, explain)}")
    conn.close()


SCAN_KINDS = {"Index Only Scan Backward using ": "IOSB", "Index Only Scan using ": "IOS",
              "Index Scan Backward using ": "IdxB", "Index Scan using ": "Idx", "Bitmap Index Scan on ": "Bmp",
              "Seq Scan on ": "Seq"}


def plan_summary(t: dict, token: str, params: dict, full: bool) -> str:
    """The SQL the API ran for ``params`` (captured in-process), EXPLAIN ANALYZEd."""
    import warnings

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    warnings.filterwarnings("ignore", message="No directory at")  # WhiteNoise: no collected static files here
    client = Client()
    with CaptureQueriesContext(connection) as ctx:
        client.get(_query(params), HTTP_AUTHORIZATION=f"Bearer {t['tokens'][token]}", HTTP_ACCEPT="application/json")
    parts = []
    for query in ctx.captured_queries:
        sql = query["sql"]
        if "certificates_certificate" not in sql or not sql.lstrip().upper().startswith("SELECT"):
            continue
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [r[0] for r in cur.fetchall()]
        if full:
            print("    " + sql[:400] + "\n      " + "\n      ".join(plan))
        nodes = []
        for line in plan:
            text = line.strip().lstrip("->").strip()
            parallel = text.startswith("Parallel ")
            text = text.removeprefix("Parallel ")
            for marker, kind in SCAN_KINDS.items():
                if text.startswith(marker):
                    nodes.append(f"{'P' if parallel else ''}{kind} {text[len(marker):].split(' ')[0]}")
        total_ms = next((line.split(":")[1].strip() for line in plan if line.startswith("Execution Time")), "?")
        parts.append(f"{'+'.join(dict.fromkeys(nodes)) or 'no scan'} {total_ms}")
    return " | ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40, help="timed requests per case (default 40)")
    parser.add_argument("--explain", action="store_true", help="print the full EXPLAIN ANALYZE of every case")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a database kept by an earlier --keep run")
    args = parser.parse_args()

    print(f"MazeVault list benchmark: {args.rows:,} certificates, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; GET /api/v1/certificates through gunicorn, 1 client, {args.repeat} requests "
          f"per case")
    if args.reuse:
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"{DB_NAME}-") as data_dir:
            env = AppEnv(db_name=DB_NAME, data_dir=Path(data_dir))
            saved = Path(os.environ.get("TMPDIR", "/tmp")) / f"{DB_NAME}.json"
            run(env, args, reuse=json.loads(saved.read_text()))
        return
    with bench_database(DB_NAME, keep=args.keep) as env:
        run(env, args, reuse=None)


def run(env: AppEnv, args, reuse: dict | None) -> None:
    if reuse is None:
        t = make_tenants(env)
        bulk_load(env, t, args.rows)
        if args.keep:  # what --reuse needs to find the objects again
            saved = Path(os.environ.get("TMPDIR", "/tmp")) / f"{DB_NAME}.json"
            saved.write_text(json.dumps({"tokens": t["tokens"], "ops": str(t["ops"].pk)}))
    else:
        env.data_dir.mkdir(exist_ok=True)
        t = load_tenants(env, reuse)
    with Gunicorn(env, ServerConfig("gthread", workers=2, threads=2)) as server:
        measure(server.port, t, args.repeat, args.explain)


def load_tenants(env: AppEnv, saved: dict) -> dict:
    # The secret key and KEK of the first run are gone with its data dir; listing needs neither.
    setup_django(env)
    from django.contrib.auth import get_user_model

    from certificates.models import CertificateAuthority
    from mazevault.models import Organization, Project

    org = Organization.objects.get(name="Demo")
    projects = {p.name.lower(): p for p in Project.objects.filter(organization=org)}
    cas = {"demo": list(CertificateAuthority.objects.filter(project=projects["demo"], kind="intermediate")
                        .order_by("created_at")),
           "payments": list(CertificateAuthority.objects.filter(project=projects["payments"])),
           "edge": list(CertificateAuthority.objects.filter(project=projects["edge"]))}
    User = get_user_model()
    return {"org": org, "projects": projects, "cas": cas, "tokens": saved["tokens"],
            "admin": User.objects.get(username="admin"), "ops": User.objects.get(pk=int(saved["ops"]))}


if __name__ == "__main__":
    main()
