"""Complete ACME issuances per second (new order → http-01 valid → finalize → download), MazeVault vs pebble.

Both servers validate http-01 for real against the same local responder (this process; pebble's
``httpPort`` and our MAZEVAULT_ACME_HTTP01_PORT point at it), and resolve names through the same
pebble-challtestsrv DNS server (A 127.0.0.1 for every name). The client polls without sleeping.
MazeVault: gunicorn on PostgreSQL (database ``mv_bench_acme``, dropped afterwards), the stock
``web-server`` template, names under ``.internal`` (auto-approved, so finalize answers with the issued
certificate), validation tasks run eagerly in the web process (no broker in the bench). Pebble (Go, in
memory): PEBBLE_VA_NOSLEEP=1, no nonce rejection, no authorization reuse. Then certbot (stock client)
in a loop against each server (``--certbot N``; 0 skips it).

Prints issuances/s at 1 and 4 clients, p50/p99 of one issuance, CPU per issuance (CpuMeter: server,
PostgreSQL, client) and the ratio to pebble. Needs Debian's pebble package and PostgreSQL; certbot comes
from the tests' client venv (var/acme-clients, ``make acme-clients``).
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import josepy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import ROOT, CpuMeter, Gunicorn, ServerConfig, bench_database, free_port, process_cpu  # noqa: E402

TOKENS: dict[str, str] = {}


class Responder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        body = TOKENS.get(self.path.rsplit("/", 1)[-1], "").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def b64(data: bytes) -> str:
    return josepy.b64.b64encode(data).decode()


class Client:
    """A minimal RFC 8555 client over one keep-alive connection: ES256 JWS, nonces from every answer."""

    def __init__(self, directory_url: str, *, eab: tuple[str, str] | None = None, insecure: bool = False) -> None:
        scheme, rest = directory_url.split("://", 1)
        hostport, _, _ = rest.partition("/")
        self.origin = f"{scheme}://{hostport}"
        host, port = hostport.split(":")
        if scheme == "https":
            # pebble's listener has a throw-away self-signed certificate (insecure=True).
            context = ssl._create_unverified_context() if insecure else ssl.create_default_context()
            self.conn = http.client.HTTPSConnection(host, int(port), context=context)
        else:
            self.conn = http.client.HTTPConnection(host, int(port))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = josepy.jwk.JWKEC(key=self.key.public_key())
        self.thumb = b64(self.jwk.thumbprint())
        self.directory = self.get(directory_url)
        self.nonce = self.head(self.directory["newNonce"])
        self.kid = None
        payload = {"termsOfServiceAgreed": True}
        if eab:
            url = self.directory["newAccount"]
            protected = b64(json.dumps({"alg": "HS256", "kid": eab[0], "url": url}).encode())
            body = b64(json.dumps(self.jwk.to_json()).encode())
            mac = josepy.jwa.HS256.sign(josepy.b64.b64decode(eab[1]), f"{protected}.{body}".encode())
            payload["externalAccountBinding"] = {"protected": protected, "payload": body, "signature": b64(mac)}
        status, headers, _ = self.post(self.directory["newAccount"], payload)
        assert status == 201, status
        self.kid = headers["Location"]

    def _path(self, url: str) -> str:
        return url[len(self.origin):] if url.startswith(self.origin) else url

    def get(self, url: str) -> dict:
        self.conn.request("GET", self._path(url))
        response = self.conn.getresponse()
        return json.loads(response.read())

    def head(self, url: str) -> str:
        self.conn.request("HEAD", self._path(url))
        response = self.conn.getresponse()
        response.read()
        return response.headers["Replay-Nonce"]

    def post(self, url: str, payload) -> tuple[int, dict, bytes]:
        protected = {"alg": "ES256", "nonce": self.nonce, "url": url}
        protected.update({"kid": self.kid} if self.kid else {"jwk": self.jwk.to_json()})
        p = b64(json.dumps(protected).encode())
        body = "" if payload is None else b64(json.dumps(payload).encode())
        signature = josepy.jwa.ES256.sign(self.key, f"{p}.{body}".encode())
        self.conn.request("POST", self._path(url), body=json.dumps({"protected": p, "payload": body,
                                                                     "signature": b64(signature)}),
                          headers={"Content-Type": "application/jose+json"})
        response = self.conn.getresponse()
        data = response.read()
        self.nonce = response.headers.get("Replay-Nonce") or self.head(self.directory["newNonce"])
        if response.status >= 400:
            raise RuntimeError(f"{url}: {response.status} {data[:300]!r}")
        return response.status, dict(response.headers), data

    def issue(self, name: str, csr_der: bytes) -> None:
        _, headers, body = self.post(self.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]})
        order_url, order = headers["Location"], json.loads(body)
        authz_url = order["authorizations"][0]
        authz = json.loads(self.post(authz_url, None)[2])
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        TOKENS[challenge["token"]] = f"{challenge['token']}.{self.thumb}"
        self.post(challenge["url"], {})
        while authz["status"] != "valid":
            authz = json.loads(self.post(authz_url, None)[2])
            if authz["status"] == "invalid":
                raise RuntimeError(f"validation failed: {authz}")
        order = json.loads(self.post(order["finalize"], {"csr": b64(csr_der)})[2])
        while order["status"] != "valid":
            order = json.loads(self.post(order_url, None)[2])
            if order["status"] == "invalid":
                raise RuntimeError(f"order failed: {order}")
        _, _, pem = self.post(order["certificate"], None)
        assert pem.count(b"BEGIN CERTIFICATE") >= 2


def csrs(names: list[str]) -> list[bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    out = []
    for name in names:
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(key, hashes.SHA256()))
        out.append(csr.public_bytes(serialization.Encoding.DER))
    return out


def run_level(make_client, clients: int, per_client: int, label: str) -> tuple[float, list[float]]:
    workers = [make_client() for _ in range(clients)]
    jobs = []
    for c in range(clients):
        names = [f"i{n}.c{c}.{label}.{time.monotonic_ns()}.bench.internal" for n in range(per_client)]
        jobs.append(list(zip(names, csrs(names))))
    latencies: list[float] = []
    errors: list[str] = []

    def work(client: Client, todo) -> None:
        for name, der in todo:
            started = time.perf_counter()
            try:
                client.issue(name, der)
            except Exception as exc:  # reported below
                errors.append(str(exc))
                return
            latencies.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=work, args=(w, j)) for w, j in zip(workers, jobs)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} failed issuances, first: {errors[0]}")
    return len(latencies) / wall, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def start_challtestsrv() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(["pebble-challtestsrv", "-dns01", f"127.0.0.1:{port}", "-http01", "", "-https01", "",
                             "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}", "-defaultIPv6", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, port


def start_pebble(tmp: Path, http_port: int, dns_port: int) -> tuple[subprocess.Popen, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(key, hashes.SHA256()))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    port = free_port()
    (tmp / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{port}", "managementListenAddress": f"127.0.0.1:{free_port()}",
        "certificate": str(tmp / "cert.pem"), "privateKey": str(tmp / "key.pem"), "httpPort": http_port,
        "tlsPort": free_port(), "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    proc = subprocess.Popen(["pebble", "-config", str(tmp / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}",
                             "-strict=false"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    directory = f"https://127.0.0.1:{port}/dir"
    for _ in range(100):
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=1)
            conn.request("GET", "/dir")
            if conn.getresponse().status == 200:
                return proc, directory
        except OSError:
            time.sleep(0.1)
    raise SystemExit("pebble did not start")


def certbot_loop(certbot: Path, directory: str, n: int, tmp: Path, http_port: int, eab: tuple[str, str] | None,
                 insecure: bool) -> float:
    """Orders per second of stock certbot (one process per certificate, as cron/systemd timers run it)."""
    base = [str(certbot), "certonly", "--standalone", "--non-interactive", "--agree-tos", "-m", "bench@bench.internal",
            "--server", directory, "--http-01-port", str(http_port), "--http-01-address", "127.0.0.1",
            "--preferred-challenges", "http", "--key-type", "ecdsa", "--config-dir", str(tmp / "c"),
            "--work-dir", str(tmp / "w"), "--logs-dir", str(tmp / "l")]
    if eab:
        base += ["--eab-kid", eab[0], "--eab-hmac-key", eab[1]]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}
    if insecure:
        base.append("--no-verify-ssl")
    started = time.perf_counter()
    for i in range(n):
        run = subprocess.run([*base, "-d", f"cb{i}.{time.monotonic_ns()}.bench.internal"], capture_output=True,
                             text=True, env=env)
        if run.returncode != 0:
            raise SystemExit(f"certbot failed: {run.stdout}\n{run.stderr}")
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-client", type=int, default=25, help="issuances per client and level")
    parser.add_argument("--certbot", type=int, default=5, help="certbot runs per server (0: skip)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if not shutil.which("pebble"):
        raise SystemExit("pebble is not installed (apt-get install pebble)")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(absolute rates are noisy under contention: compare the ratio and CPU per issuance)")
    responder = ThreadingHTTPServer(("127.0.0.1", 0), Responder)
    threading.Thread(target=responder.serve_forever, daemon=True).start()
    http_port = responder.server_address[1]
    dns_proc, dns_port = start_challtestsrv()
    levels = (1, 4)
    results: dict[str, dict[int, tuple[float, list[float]]]] = {"mazevault": {}, "pebble": {}}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            # --- pebble ---
            pebble, pebble_dir = start_pebble(tmp, http_port, dns_port)
            try:
                run_level(lambda: Client(pebble_dir, insecure=True), 1, 3, "warm")
                for clients in levels:
                    before = process_cpu(pebble.pid)
                    rate, lat = run_level(lambda: Client(pebble_dir, insecure=True), clients, args.per_client,
                                          f"p{clients}")
                    cpu = (process_cpu(pebble.pid) - before) * 1000 / len(lat)
                    results["pebble"][clients] = (rate, lat)
                    print(f"pebble     {clients} client(s): {rate:6.1f} issuances/s  p50 {pct(lat, 50):6.1f} ms  "
                          f"p99 {pct(lat, 99):6.1f} ms  server CPU {cpu:.2f} ms/issuance")
                pebble_certbot = None
                certbot = ROOT / "var" / "acme-clients" / "bin" / "certbot"
                if args.certbot and certbot.exists():
                    certbot_port = free_port()
                    # pebble validates on its configured httpPort: certbot's standalone server must sit there.
                    pebble.terminate()
                    pebble.wait()
                    pebble, pebble_dir = start_pebble(tmp, certbot_port, dns_port)
                    pebble_certbot = certbot_loop(certbot, pebble_dir, args.certbot, tmp / "cbp", certbot_port,
                                                  None, insecure=True)
                    print(f"pebble     certbot loop: {pebble_certbot:5.2f} orders/s")
            finally:
                pebble.terminate()
                pebble.wait()
            # --- MazeVault ---
            extra = {"MAZEVAULT_ACME_HTTP01_PORT": str(http_port), "CELERY_TASK_ALWAYS_EAGER": "1",
                     "MAZEVAULT_ACME_DNS_RESOLVERS": f"127.0.0.1:{dns_port}", "MAZEVAULT_ACME_VALIDATION_ATTEMPTS": "1"}
            with bench_database("mv_bench_acme", keep=args.keep, extra_env=extra) as env:
                demo = json.loads(env.manage("bootstrap_demo", "--json"))
                server = Gunicorn(env, ServerConfig("sync", workers=3))
                server_url = env.extra["MAZEVAULT_PUBLIC_URL"] = f"http://127.0.0.1:{server.port}"
                with server:
                    cred = _credential(server_url, demo)
                    directory = f"{server_url}/api/acme/directory"
                    make = lambda: Client(directory, eab=cred)  # noqa: E731
                    run_level(make, 3, 2, "warm")
                    for clients in levels:
                        with CpuMeter(server) as meter:
                            rate, lat = run_level(make, clients, args.per_client, f"m{clients}")
                        results["mazevault"][clients] = (rate, lat)
                        ratio = rate / results["pebble"][clients][0]
                        print(f"mazevault  {clients} client(s): {rate:6.1f} issuances/s  p50 {pct(lat, 50):6.1f} ms  "
                              f"p99 {pct(lat, 99):6.1f} ms  {ratio:.2f}x pebble  "
                              f"{meter.summary(len(lat)).replace('CPU/request', 'CPU/issuance')}")
                certbot = ROOT / "var" / "acme-clients" / "bin" / "certbot"
                if args.certbot and certbot.exists():
                    # certbot --standalone answers http-01 itself: the validator is pointed at its port.
                    cb_port = free_port()
                    env.extra["MAZEVAULT_ACME_HTTP01_PORT"] = str(cb_port)
                    server = Gunicorn(env, ServerConfig("sync", workers=3))
                    server_url = env.extra["MAZEVAULT_PUBLIC_URL"] = f"http://127.0.0.1:{server.port}"
                    with server:
                        rate = certbot_loop(certbot, f"{server_url}/api/acme/directory", args.certbot, tmp / "cbm",
                                            cb_port, _credential(server_url, demo), insecure=False)
                    line = f"mazevault  certbot loop: {rate:5.2f} orders/s"
                    if pebble_certbot:
                        line += f"  {rate / pebble_certbot:.2f}x pebble"
                    print(line)
    finally:
        dns_proc.terminate()
        responder.shutdown()


def _credential(server_url: str, demo: dict) -> tuple[str, str]:
    conn = http.client.HTTPConnection(server_url.split("//")[1])
    conn.request("POST", f"/api/v1/organizations/{demo['organization_id']}/acme-credentials",
                 body=json.dumps({"project_id": demo["project_id"],
                                  "default_template_id": demo["template_ids"]["web-server"]}),
                 headers={"Authorization": f"Bearer {demo['token']}", "Content-Type": "application/json"})
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 201, body
    return body["eab_key_id"], body["eab_hmac_key"]


if __name__ == "__main__":
    main()
