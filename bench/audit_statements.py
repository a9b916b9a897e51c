"""SQL statements an audited mutation costs, and how many of them the audit log takes.

In-process (Django's test client over the real URL conf, no HTTP server): a throw-away database
(PostgreSQL ``mv_bench_audit_sql`` by default, ``--sqlite`` for the embedded default), the demo
tenant from ``bootstrap_demo``, a project-scoped ``user`` token, then for each mutation it prints
every statement count: total, those that touch the audit tables, and transaction control (BEGIN /
COMMIT / SAVEPOINT). Each request runs outside any test transaction, so the counts are those of
production, after one warm-up request of the same kind (per-process caches filled).

Run: ``.venv/bin/python bench/audit_statements.py [--sqlite] [--show-sql]``. It prints figures and
asserts only that the answers were the expected ones.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

AUDIT_TABLES = ("mazevault_auditevent", "mazevault_auditchainhead", "mazevault_auditcheckpoint")
TXN = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


def configure(sqlite: bool, data_dir: str) -> str | None:
    """Point this process's Django at a fresh database; return the PostgreSQL name to drop, if any."""
    for key in [k for k in os.environ if k.startswith(("DATABASE_URL", "REDIS_URL", "CELERY_", "MAZEVAULT_"))]:
        del os.environ[key]
    os.environ.update({"MAZEVAULT_DATA_DIR": data_dir, "MAZEVAULT_RATE_LIMIT_API": "", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "mazevault.settings", "CELERY_TASK_ALWAYS_EAGER": "0"})
    if sqlite:
        return None
    from _harness import create_database

    os.environ["DATABASE_URL"] = create_database("mv_bench_audit_sql")
    return "mv_bench_audit_sql"


def classify(sql: str) -> str:
    head = sql.strip().upper()
    if head.startswith(TXN):
        return "txn"
    if any(table in sql for table in AUDIT_TABLES):
        return "audit"
    return "other"


def measure(label: str, call, show: bool) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        call()
    kinds = {"txn": 0, "audit": 0, "other": 0}
    for query in ctx.captured_queries:
        kinds[classify(query["sql"])] += 1
    print(f"  {label:<58} {len(ctx):>3} statements: {kinds['audit']} audit, {kinds['txn']} transaction control, "
          f"{kinds['other']} other")
    if show:
        for query in ctx.captured_queries:
            print(f"      [{classify(query['sql']):>5}] {query['sql'][:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="the embedded default (SQLite) instead of PostgreSQL")
    parser.add_argument("--show-sql", action="store_true", help="print every statement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mv-audit-sql-") as data_dir:
        dropme = configure(args.sqlite, data_dir)
        try:
            run(args)
        finally:
            if dropme:
                from django.db import connections

                connections.close_all()
                from _harness import drop_database

                drop_database(dropme)


def run(args) -> None:
    import io

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from certificates.pki import csr as pki_csr, keys

    call_command("migrate", verbosity=0, interactive=False)
    out = io.StringIO()
    call_command("bootstrap_demo", json=True, stdout=out)
    demo = json.loads(out.getvalue())
    out = io.StringIO()
    call_command("create_token", user="bench-client", role="user", project=demo["project_id"], name="bench",
                 stdout=out)
    token = out.getvalue().strip()
    out = io.StringIO()
    call_command("create_token", user="bench-viewer", role="viewer", project=demo["project_id"], name="viewer",
                 stdout=out)
    viewer = out.getvalue().strip()
    client, denied = APIClient(), APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    denied.credentials(HTTP_AUTHORIZATION=f"Bearer {viewer}")
    key = keys.generate_private_key("ec-p256")
    counter = iter(range(10**6))

    def issue() -> None:
        pem = pki_csr.csr_to_pem(pki_csr.build_csr(key, {"common_name": f"sql-{next(counter)}"}, {}))
        response = client.post("/api/v1/certificates/csr", {
            "project_id": demo["project_id"], "template_id": demo["template_ids"]["client-auth"],
            "csr_source_mode": "uploaded_csr", "csr_pem": pem}, format="json")
        assert response.status_code == 201 and response.json()["status"] == "active", response.content[:300]

    def forbidden() -> None:
        response = denied.get("/api/v1/audit-logs")
        assert response.status_code == 403, response.content[:300]

    def record_one() -> None:
        from mazevault import audit

        audit.record("bench.event", actor="bench", entity=("bench", "1"), details={"n": 1})

    print(f"SQL statements per audited mutation ({connection.vendor}, outside any test transaction, after a warm-up)")
    for label, call in (("POST /api/v1/certificates/csr (auto-approved: 2 events)", issue),
                        ("GET /api/v1/audit-logs as a viewer (403, 1 event)", forbidden),
                        ("audit.record() alone, autocommit (1 event)", record_one)):
        call()  # warm-up: per-process caches, prepared paths
        measure(label, call, args.show_sql)


if __name__ == "__main__":
    main()
