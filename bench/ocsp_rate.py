"""OCSP responses per second: a cached good status (no nonce) and a freshly signed one (with a nonce),
through gunicorn on PostgreSQL, against cryptography's bare OCSPResponseBuilder signing rate.

What it does, from nothing (PostgreSQL on 127.0.0.1 is the only prerequisite):

1. the bare ceiling: one process, one thread: parse the DER request, build the SingleResponse by
   hash, add the nonce and the responder certificate, sign with a P-256 key (what the responder
   does per fresh answer), with cryptography alone;
2. a fresh database (``mv_bench_ocsp``), ``migrate``, ``bootstrap_demo`` (P-256 CAs), gunicorn with
   2 workers (the project's gunicorn.conf.py; ``--worker-class``/``--workers`` to change), one
   certificate issued through the API;
3. POST /api/v1/ocsp with pre-built bodies over keep-alive connections: the same nonce-less request
   again and again (served from the pre-signed cache after the first), then distinct requests each
   with its own nonce (each freshly signed). Every answer is checked to be HTTP 200; samples are
   parsed (status good, nonce echoed, the cached bytes identical);
4. the OCSP rate limit is off by default (one load generator is one client address; a per-client
   limit would refuse it): ``--rate-limit 100000000/min`` measures with the counter on (with
   ``--redis URL``, in Redis as in production);
5. drops its database (``--keep`` keeps it).

Run: ``.venv/bin/python bench/ocsp_rate.py`` (``--help`` for the knobs). CPU per response (server,
PostgreSQL, client) is printed: on a shared 2-core machine it is the steadier figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cryptography  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from _harness import CpuMeter, Gunicorn, HttpConnection, ServerConfig, bench_database, http_request, run_load  # noqa: E402

AIM_CACHED, AIM_FRESH = 1500.0, 800.0


def ocsp_post(body: bytes) -> bytes:
    head = ("POST /api/v1/ocsp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/ocsp-request\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def build_request(leaf: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


# --- the bare ceiling --------------------------------------------------------------------------------
def bare_rate(n: int, rounds: int = 3) -> float:
    """Responses per second for parse -> build by hash -> nonce + certs -> sign (P-256), one thread."""
    ca_key, responder_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bare CA")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256()))
    responder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                 .public_key(responder_key.public_key()).serial_number(2).not_valid_before(now)
                 .not_valid_after(now + timedelta(days=7))
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
                 .add_extension(x509.OCSPNoCheck(), critical=False).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(responder_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    bodies = [build_request(leaf, ca, os.urandom(16)) for _ in range(n)]
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for body in bodies:
            request = ocsp.load_der_ocsp_request(body)
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            this_update = datetime.now(timezone.utc).replace(microsecond=0)
            (ocsp.OCSPResponseBuilder()
             .add_response_by_hash(issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
                                   serial_number=request.serial_number, algorithm=request.hash_algorithm,
                                   cert_status=ocsp.OCSPCertStatus.GOOD, this_update=this_update,
                                   next_update=this_update + timedelta(hours=12), revocation_time=None,
                                   revocation_reason=None)
             .responder_id(ocsp.OCSPResponderEncoding.HASH, responder).certificates([responder])
             .add_extension(x509.OCSPNonce(nonce), critical=False)
             .sign(responder_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        best = max(best, n / (time.perf_counter() - started))
    return best


# --- through the service -------------------------------------------------------------------------------
def issue_one(port: int, demo: dict) -> tuple[x509.Certificate, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocsp-bench.example.com")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    conn = HttpConnection("127.0.0.1", port)
    status, body = conn.request(http_request("POST", "/api/v1/certificates/csr", token=demo["token"], body={
        "project_id": demo["project_id"], "template_id": demo["template_ids"]["client-auth"],
        "csr_source_mode": "uploaded_csr", "csr_pem": csr}))
    if status != 201:
        raise SystemExit(f"issuance failed: {status} {body[:300]!r}")
    cert_id = json.loads(body)["id"]
    status, body = conn.request(http_request("GET", f"/api/v1/certificates/{cert_id}", token=demo["token"]))
    conn.close()
    full = json.loads(body)
    return (x509.load_pem_x509_certificate(full["certificate_pem"].encode()),
            x509.load_pem_x509_certificates(full["chain_pem"].encode())[0])


def check_sample(port: int, raw: bytes, nonce: bytes | None) -> bytes:
    status, body = HttpConnection("127.0.0.1", port).request(raw)
    if status != 200:
        raise SystemExit(f"OCSP answered HTTP {status}")
    parsed = ocsp.load_der_ocsp_response(body)
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL or \
            parsed.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise SystemExit(f"unexpected OCSP answer {parsed.response_status}")
    if nonce is not None and parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce != nonce:
        raise SystemExit("nonce not echoed")
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000, help="requests per measurement (default 6000)")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive client connections (default 4)")
    parser.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate-limit", default="", help="MAZEVAULT_RATE_LIMIT_OCSP for the server (default off)")
    parser.add_argument("--redis", default="", help="REDIS_URL for the server (rate-limit counter), e.g. "
                                                    "redis://127.0.0.1:6379/3")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    config = ServerConfig(args.worker_class, args.workers, 1)

    print(f"MazeVault OCSP benchmark: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at start), "
          f"Python {platform.python_version()}, cryptography {cryptography.__version__}")
    bare = bare_rate(3000)
    print(f"bare ceiling (cryptography only, 1 process; parse -> build by hash -> nonce + cert -> sign, P-256): "
          f"{bare:8.1f} responses/s")

    extra = {"MAZEVAULT_RATE_LIMIT_OCSP": args.rate_limit}
    if args.redis:
        extra["REDIS_URL"] = args.redis
    with bench_database("mv_bench_ocsp", keep=args.keep, extra_env=extra) as env:
        demo = json.loads(env.manage("bootstrap_demo", "--json"))
        with Gunicorn(env, config) as server:
            leaf, issuer = issue_one(server.port, demo)
            cached_body = ocsp_post(build_request(leaf, issuer, None))
            nonces = [os.urandom(16) for _ in range(args.requests + 400)]
            fresh_bodies = [ocsp_post(build_request(leaf, issuer, n)) for n in nonces]
            first = check_sample(server.port, cached_body, None)
            if check_sample(server.port, cached_body, None) != first:
                raise SystemExit("the nonce-less answer was not served from the cache")
            check_sample(server.port, fresh_bodies[-1], nonces[-1])
            # Warm every worker: DB connection, CA index, responder key.
            run_load(server.port, [cached_body] * 200 + fresh_bodies[-400:-1], args.clients, expect=200)

            print(f"POST /api/v1/ocsp, gunicorn {config}, PostgreSQL, {args.clients} keep-alive clients, "
                  f"{args.requests} requests each; rate limit {args.rate_limit or 'off'}"
                  f"{' (Redis counter)' if args.redis and args.rate_limit else ''}")
            print(f"{'answer':<28} {'resp/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8}")
            figures = {}
            for label, requests in (("cached good (no nonce)", [cached_body] * args.requests),
                                    ("fresh signature (nonce)", fresh_bodies[:args.requests])):
                with CpuMeter(server) as meter:
                    result = run_load(server.port, requests, args.clients, expect=200)
                if result.errors:
                    raise SystemExit(f"{label}: {len(result.errors)} unexpected answers: {result.errors[:3]}")
                figures[label] = result.rate
                print(f"{label:<28} {result.rate:>9.1f} {result.pct(50):>8.2f} {result.pct(99):>8.2f} "
                      f"{100 * result.rate / bare:>7.1f}%   {meter.summary(result.n)}")
    cached, fresh = figures["cached good (no nonce)"], figures["fresh signature (nonce)"]
    print("aims:")
    print(f"  cached >= {AIM_CACHED:.0f}/s: {cached:.1f} -> {'MET' if cached >= AIM_CACHED else 'NOT MET'}")
    print(f"  fresh  >= {AIM_FRESH:.0f}/s: {fresh:.1f} -> {'MET' if fresh >= AIM_FRESH else 'NOT MET'}")


if __name__ == "__main__":
    main()
