"""Where a request's server CPU goes: cProfile over the request path, in one process.

It builds a benchmark database like ``issue_rest.py`` (``migrate``, ``bootstrap_demo``, a
project-scoped token), then, inside this process, sends requests through the whole Django stack
(middleware, DRF, views, services, serializers) with Django's WSGI request handler, warmed up first,
and prints the functions with the most cumulative and own time. The profiler counts CPU time (waits on the database and Redis do not count); its numbers are inflated;
read them as proportions.

Run: ``.venv/bin/python bench/profile_request.py [issue|get] [-n 500] [--redis-url redis://…/4]``.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import bench_database  # noqa: E402
from issue_rest import bootstrap, make_csrs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["issue", "get", "project", "health"], nargs="?", default="issue")
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--db-prefix", default=os.environ.get("BENCH_DB_PREFIX", "mv_bench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--save", metavar="FILE", help="also write the raw profile (pstats) to FILE")
    args = parser.parse_args()
    extra = {"MAZEVAULT_RATE_LIMIT_API": "10000000/min"}
    if args.redis_url:
        extra["REDIS_URL"] = args.redis_url
    with bench_database(f"{args.db_prefix}_profile", extra_env=extra) as env:
        demo = bootstrap(env, "ec-p256")
        os.environ.update(env.environ())
        os.environ["DJANGO_SETTINGS_MODULE"] = "mazevault.settings"
        import django

        django.setup()
        from django.test import Client

        client = Client(HTTP_AUTHORIZATION=f"Bearer {demo['token']}", HTTP_ACCEPT="application/json")
        csrs = [pem.decode() for pem in make_csrs(args.n + 50, "profile")]

        def issue(pem: str):
            body = {"project_id": demo["project_id"], "template_id": demo["template_ids"]["client-auth"],
                    "csr_source_mode": "uploaded_csr", "csr_pem": pem}
            response = client.post("/api/v1/certificates/csr", json.dumps(body), content_type="application/json")
            assert response.status_code == 201, response.content[:300]
            return response

        first = issue(csrs.pop())
        url = {"get": f"/api/v1/certificates/{first.json()['id']}", "project": f"/api/v1/projects/{demo['project_id']}",
               "health": "/api/v1/health/live"}.get(args.what, "")

        def one(i: int) -> None:
            if args.what == "issue":
                issue(csrs[i])
            else:
                response = client.get(url)
                assert response.status_code == 200, response.content[:300]

        for _ in range(49):
            issue(csrs.pop()) if args.what == "issue" else one(0)
        # Without the profiler first: the CPU a request costs this process (the test client's own
        # share included, a few tenths of a millisecond).
        started = time.process_time()
        for i in range(args.n // 2):
            one(i)
        plain = (time.process_time() - started) * 1000 / (args.n // 2)
        print(f"{args.what}: {plain:.2f} ms CPU per request without the profiler (this process: server side "
              f"and the test client)")
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall time: waits on I/O do not count
        started = time.process_time()
        profiler.enable()
        for i in range(args.n // 2, args.n):
            one(i)
        profiler.disable()
        cpu = (time.process_time() - started) * 1000 / (args.n - args.n // 2)
        if args.save:
            profiler.dump_stats(args.save)
        print(f"{args.what}: {args.n} requests, {cpu:.2f} ms CPU per request under the profiler")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(args.top)
            print(out.getvalue())
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
