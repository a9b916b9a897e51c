"""Does a burst of audited 403s from one tenant slow issuance for another?

Every refusal is audited (``rbac.permission.denied``), so a client hammering an endpoint it may not
use writes one audit event per request. If appending an event serialised all writers (one chain
row locked until COMMIT), that burst would queue every other tenant's issuance behind it.

What it does (PostgreSQL on 127.0.0.1 is the only prerequisite):

1. a fresh database ``mv_bench_audit_burst``, ``migrate``, ``bootstrap_demo`` (organisation "Demo")
   and a second organisation "Noisy" whose ``viewer`` token has no ``audit:read``;
2. gunicorn (sync workers, enough of them that every client has one) on it;
3. phase "alone": the Demo token issues certificates (auto-approved ``client-auth``) with
   ``--clients`` keep-alive clients; phase "burst": the same while ``--burst-clients`` clients of
   Noisy send ``GET /api/v1/audit-logs`` (403, audited) as fast as answers come;
4. meanwhile a sampler polls ``pg_stat_activity`` every few milliseconds and counts how often a
   backend of the service waited on a heavyweight lock (``wait_event_type = 'Lock'``): the
   mechanism, independent of CPU contention;
5. afterwards: ``verify_audit`` (sealing first) walks the chain; drops the database (``--keep`` keeps it).

On a 2-core machine shared with other work the rates are noisy and the burst competes for CPU
anyway: read the lock-wait samples and the CPU per request (CpuMeter), not absolute rates.
Run: ``.venv/bin/python bench/audit_burst.py [--requests N]``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ADMIN_URL, CpuMeter, Gunicorn, HttpConnection, ServerConfig, bench_database, http_request, run_load  # noqa: E402
from issue_rest import bootstrap, make_csrs  # noqa: E402

NOISY = """
import json
from django.contrib.auth import get_user_model
from mazevault import services
org = services.create_organization(name="Noisy", actor="bench")
project = services.create_project(organization=org, name="Noisy", environment="development", actor="bench")
user = get_user_model().objects.create_user(username="noisy")
services.assign_role(user=user, role="viewer", project=project, actor="bench")
_, raw = services.create_token(user=user, name="noisy", actor="bench", duration="1d")
print(raw)
"""


class LockSampler(threading.Thread):
    """Poll pg_stat_activity; count samples where a backend of ``db`` waited on a lock."""

    def __init__(self, db: str, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.db, self.interval = db, interval
        self.samples = self.waiting = self.waiters = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            while not self.stop.is_set():
                n = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                 "AND wait_event_type = 'Lock'", [self.db]).fetchone()[0]
                self.samples += 1
                self.waiting += bool(n)
                self.waiters += n
                time.sleep(self.interval)

    def summary(self) -> str:
        return (f"lock waits: {self.waiting} of {self.samples} samples ({100 * self.waiting / max(1, self.samples):.1f}%)"
                f" had a backend waiting on a lock, {self.waiters / max(1, self.samples):.2f} waiting on average")


def burst(port: int, raw: bytes, clients: int, stop: threading.Event, counts: list[int]) -> list[threading.Thread]:
    def worker(slot: int) -> None:
        conn = HttpConnection("127.0.0.1", port)
        while not stop.is_set():
            status, _ = conn.request(raw)
            if status != 403:
                raise SystemExit(f"the burst expected 403, got {status}")
            counts[slot] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=600, help="issuances per phase (default 600)")
    parser.add_argument("--clients", type=int, default=2, help="issuing clients (default 2)")
    parser.add_argument("--burst-clients", type=int, default=4, help="clients sending 403s (default 4)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    config = ServerConfig("sync", workers=args.clients + args.burst_clients)
    print(f"audit burst benchmark: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at start), "
          f"gunicorn {config}, PostgreSQL, {args.requests} issuances per phase at {args.clients} clients, "
          f"{args.burst_clients} clients sending audited 403s in the burst phase")
    with bench_database("mv_bench_audit_burst", keep=args.keep) as env:
        demo = bootstrap(env, "ec-p256")
        noisy_token = env.manage("shell", "-c", NOISY).strip().splitlines()[-1]
        deny = http_request("GET", "/api/v1/audit-logs", token=noisy_token)

        def bodies(csrs):
            return [http_request("POST", "/api/v1/certificates/csr", token=demo["token"], body={
                "project_id": demo["project_id"], "template_id": demo["template_ids"]["client-auth"],
                "csr_source_mode": "uploaded_csr", "csr_pem": pem.decode()}) for pem in csrs]

        warm, alone, loud = (bodies(make_csrs(n, p)) for n, p in
                             ((30 * config.workers, "warm"), (args.requests, "alone"), (args.requests, "burst")))
        with Gunicorn(env, config) as server:
            run_load(server.port, warm, config.workers, expect=201)
            run_load(server.port, [deny] * (20 * config.workers), config.workers, expect=403)
            rows = []
            for phase, requests in (("alone", alone), ("burst", loud)):
                stop, counts = threading.Event(), [0] * args.burst_clients
                sampler = LockSampler(env.db_name)
                sampler.start()
                with CpuMeter(server) as meter:
                    threads = burst(server.port, deny, args.burst_clients, stop, counts) if phase == "burst" else []
                    result = run_load(server.port, requests, args.clients, expect=201)
                    stop.set()
                    for thread in threads:
                        thread.join()
                sampler.stop.set()
                sampler.join()
                if result.errors:
                    raise SystemExit(f"{phase}: {result.errors[:3]}")
                rows.append((phase, result, meter, sum(counts), sampler))
        for phase, result, meter, denied, sampler in rows:
            total = result.n + denied
            print(f"  {phase:<6} issuance {result.rate:7.1f} certs/s  p50 {result.pct(50):6.2f} ms  "
                  f"p99 {result.pct(99):7.2f} ms   403s answered: {denied} "
                  f"({denied / result.wall_s:.1f}/s)")
            print(f"         {meter.summary(total)} over {total} requests")
            print(f"         {sampler.summary()}")
        a, b = rows[0][1], rows[1][1]
        print(f"  issuance under the burst: {100 * b.rate / a.rate:.0f}% of the rate alone, "
              f"p99 x{b.pct(99) / a.pct(99):.2f}")
        print("check  " + env.manage("verify_audit", "--seal").strip().replace("\n", " | "))


if __name__ == "__main__":
    main()
