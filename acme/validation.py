"""Challenge validation: http-01 (RFC 8555 8.3), dns-01 (8.4), tls-alpn-01 (RFC 8737). No DB.

Every function either returns (the challenge is satisfied) or raises ``ValidationFailure`` with the
ACME error type to record. The validator connects wherever a client's DNS points it, a server-side
request forgery risk, so every address is checked against ``allowed()`` before a connection is made:
with MAZEVAULT_ACME_VALIDATION_NETWORKS set only those networks; otherwise anything but link-local and
cloud-metadata addresses. Lookups use dnspython against MAZEVAULT_ACME_DNS_RESOLVERS when set (note:
dnspython never reads /etc/hosts), the system resolver otherwise.
"""
from __future__ import annotations

import hashlib
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.nameserver
import dns.resolver
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from .jws import b64encode

# RFC 8737 3: id-pe-acmeIdentifier.
ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ALPN_PROTOCOL = "acme-tls/1"
# Link-local covers AWS/GCP/Azure/OpenStack metadata (169.254.169.254); the others are the IPv6 and
# Alibaba Cloud metadata endpoints.
_NEVER_BY_DEFAULT = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8", "::/128",
    "224.0.0.0/4", "ff00::/8", "255.255.255.255/32"))
MAX_BODY = 8192  # a key authorization is ~90 bytes; RFC 8555 8.3 bodies are tiny


class ValidationFailure(Exception):
    def __init__(self, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.type = type_
        self.detail = detail


@dataclass(frozen=True)
class Config:
    caa_identities: Sequence[str] = ()
    resolvers: Sequence[str] = ()
    networks: Sequence[str] = ()
    timeout: float = 10.0
    http01_port: int = 80
    tlsalpn01_port: int = 443


def allowed(address: str, networks: Sequence[str]) -> bool:
    ip = ipaddress.ip_address(address)
    if networks:
        return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)
    return not any(ip in n for n in _NEVER_BY_DEFAULT if n.version == ip.version)


def _resolver(config: Config) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    servers = []
    for entry in config.resolvers:
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        servers.append(dns.nameserver.Do53Nameserver(host or entry, int(port) if port else 53))
    resolver.nameservers = servers
    resolver.lifetime = resolver.timeout = config.timeout
    return resolver


def resolve(name: str, config: Config) -> list[str]:
    """A and AAAA addresses of ``name`` (IPv6 first, RFC 8555 8.3 lets either be tried)."""
    try:
        ipaddress.ip_address(name)
        return [name]
    except ValueError:
        pass
    addresses: list[str] = []
    if config.resolvers:
        resolver = _resolver(config)
        for rdtype in ("AAAA", "A"):
            try:
                addresses += [r.address for r in resolver.resolve(name, rdtype)]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                continue
            except dns.exception.DNSException as exc:
                raise ValidationFailure("dns", f"DNS lookup of {name} failed: {type(exc).__name__}") from None
    else:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            infos = []
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise ValidationFailure("dns", f"{name} has no A or AAAA record")
    return addresses


def _targets(name: str, config: Config) -> list[str]:
    addresses = resolve(name, config)
    permitted = [a for a in addresses if allowed(a, config.networks)]
    if not permitted:
        raise ValidationFailure("connection", f"{name} resolves only to addresses the validator may not connect to")
    return permitted


def http01(name: str, token: str, key_authorization: str, config: Config) -> None:
    """GET http://<name>:<port>/.well-known/acme-challenge/<token> must answer the key authorization.

    RFC 8555 8.3: "the server ... MUST verify that the body of the response is a well-formed key
    authorization"; trailing whitespace is tolerated. Redirects are not followed.
    """
    last: ValidationFailure | None = None
    host = f"[{name}]" if ":" in name else name
    for address in _targets(name, config):
        connection = http.client.HTTPConnection(address, config.http01_port, timeout=config.timeout)
        try:
            connection.request("GET", f"/.well-known/acme-challenge/{token}",
                               headers={"Host": f"{host}:{config.http01_port}" if config.http01_port != 80 else host,
                                        "User-Agent": "MazeVault-ACME-validator", "Accept": "*/*"})
            response = connection.getresponse()
            body = response.read(MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as exc:
            last = ValidationFailure("connection", f"fetching the http-01 resource from {address} failed: "
                                                   f"{type(exc).__name__}")
            continue
        finally:
            connection.close()
        if response.status != 200:
            raise ValidationFailure("unauthorized", f"the http-01 resource answered HTTP {response.status}")
        if len(body) > MAX_BODY or body.decode("ascii", "replace").rstrip() != key_authorization:
            raise ValidationFailure("incorrectResponse", "the http-01 resource does not hold the key authorization")
        return
    raise last or ValidationFailure("connection", f"no address of {name} answered")


def dns01_digest(key_authorization: str) -> str:
    """RFC 8555 8.4: the TXT record holds base64url(SHA-256(key authorization))."""
    return b64encode(hashlib.sha256(key_authorization.encode()).digest())


def dns01(name: str, key_authorization: str, config: Config) -> None:
    """A TXT record at _acme-challenge.<name> (wildcard: of the base name) must carry the digest."""
    base = name[2:] if name.startswith("*.") else name
    expected = dns01_digest(key_authorization)
    query = f"_acme-challenge.{base}"
    resolver = _resolver(config) if config.resolvers else dns.resolver.Resolver()
    resolver.lifetime = resolver.timeout = config.timeout
    try:
        answer = resolver.resolve(query, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise ValidationFailure("dns", f"no TXT record at {query}") from None
    except dns.exception.DNSException as exc:
        raise ValidationFailure("dns", f"DNS lookup of {query} failed: {type(exc).__name__}") from None
    values = {b"".join(r.strings).decode("ascii", "replace") for r in answer}
    if expected not in values:
        raise ValidationFailure("incorrectResponse", f"no TXT record at {query} holds the key authorization digest")


def tls_alpn01(name: str, key_authorization: str, config: Config) -> None:
    """RFC 8737 3: a TLS handshake with SNI <name> and ALPN acme-tls/1 must present a certificate whose
    only SAN is <name> and whose critical acmeIdentifier extension holds SHA-256(key authorization)."""
    expected = hashlib.sha256(key_authorization.encode()).digest()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is self-signed by design (RFC 8737 3)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 4: "MUST ... TLS 1.2 or higher"
    context.set_alpn_protocols([ALPN_PROTOCOL])
    last: ValidationFailure | None = None
    for address in _targets(name, config):
        try:
            with socket.create_connection((address, config.tlsalpn01_port), timeout=config.timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=name) as tls:
                protocol = tls.selected_alpn_protocol()
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            last = ValidationFailure("tls", f"the TLS handshake with {address} failed: {type(exc).__name__}")
            continue
        if protocol != ALPN_PROTOCOL:
            raise ValidationFailure("tls", "the server did not negotiate the acme-tls/1 protocol")
        try:
            cert = x509.load_der_x509_certificate(der)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
        except (ValueError, x509.ExtensionNotFound):
            raise ValidationFailure("incorrectResponse", "the certificate lacks the SAN or acmeIdentifier extension") from None
        names = sans.get_values_for_type(x509.DNSName)
        if names != [name] or len(list(sans)) != 1:
            raise ValidationFailure("incorrectResponse", "the certificate must name exactly the identifier")
        value = extension.value.value if isinstance(extension.value, x509.UnrecognizedExtension) else b""
        if not extension.critical or value != b"\x04\x20" + expected:
            raise ValidationFailure("incorrectResponse", "the acmeIdentifier extension does not hold the key authorization digest")
        return
    raise last or ValidationFailure("connection", f"no address of {name} answered")


def _caa_records(name: str, config: Config) -> list:
    resolver = _resolver(config) if config.resolvers else dns.resolver.Resolver()
    resolver.lifetime = resolver.timeout = config.timeout
    try:
        return list(resolver.resolve(name, "CAA"))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        # RFC 8659 5.4 (via RFC 8555 / CA/B practice): a failed lookup is not permission to issue.
        raise ValidationFailure("dns", f"CAA lookup of {name} failed: {type(exc).__name__}") from None


def caa(name: str, config: Config) -> None:
    """RFC 8659 3: the relevant CAA RRset is the first non-empty one walking from the name towards the root;
    when there is one, an ``issue`` (``issuewild`` for wildcards, falling back to ``issue``) property must name
    one of ``config.caa_identities``. A critical property with an unknown tag forbids issuance. IP
    addresses have no CAA (RFC 8738 7)."""
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    wildcard = name.startswith("*.")
    labels = (name[2:] if wildcard else name).rstrip(".").split(".")
    records: list = []
    for index in range(len(labels)):
        records = _caa_records(".".join(labels[index:]) + ".", config)
        if records:
            break
    if not records:
        return
    for record in records:
        tag = record.tag.decode("ascii", "replace").lower()
        if record.flags & 0x80 and tag not in ("issue", "issuewild", "iodef"):
            raise ValidationFailure("caa", f"CAA for {name} carries a critical property {tag!r} this CA does not understand")
    wanted = "issuewild" if wildcard and any(r.tag.decode().lower() == "issuewild" for r in records) else "issue"
    identities = {i.lower() for i in config.caa_identities}
    for record in records:
        if record.tag.decode("ascii", "replace").lower() != wanted:
            continue
        issuer = record.value.decode("ascii", "replace").split(";", 1)[0].strip().lower()
        if issuer and issuer in identities:
            return
    raise ValidationFailure("caa", f"CAA records for {name} do not authorize this CA ({', '.join(sorted(identities))})")
