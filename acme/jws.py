"""JWS parsing and verification for ACME requests (RFC 8555 section 6.2, RFC 7515, RFC 7638). Pure: no DB.

Only the flattened JSON serialization is accepted ("the JWS MUST use the Flattened JSON
Serialization", RFC 8555 6.2), with exactly one signature in a ``protected`` header that carries
``alg``, ``nonce``, ``url`` and exactly one of ``jwk`` / ``kid``. ``none`` and MAC algorithms are
refused for request signatures ("MUST NOT be none ... MUST NOT be a MAC-based algorithm"); HS256/384/512
are used only for the External Account Binding's inner JWS (RFC 8555 7.3.4).

RSA and ECDSA keys and signatures go through josepy; Ed25519 (RFC 8037 OKP keys, alg EdDSA) is
handled here because josepy has no OKP key type.
"""
from __future__ import annotations

import binascii
import hashlib
import hmac as hmac_lib
import json
from dataclasses import dataclass
from typing import Any

import josepy
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .problems import AcmeProblem

# Request signature algorithms and the key type each needs.
SIGNATURE_ALGS: dict[str, str] = {
    "RS256": "RSA", "RS384": "RSA", "RS512": "RSA", "PS256": "RSA", "PS384": "RSA", "PS512": "RSA",
    "ES256": "EC", "ES384": "EC", "ES512": "EC", "EdDSA": "OKP",
}
# RFC 7518 3.4: each ES algorithm fixes its curve.
_EC_CURVE = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
EAB_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
MIN_RSA_BITS = 2048


def b64decode(value: Any, what: str) -> bytes:
    """base64url without padding (RFC 7515 2); padding a client adds anyway is tolerated."""
    if not isinstance(value, str):
        raise AcmeProblem("malformed", f"{what} must be a base64url string")
    try:
        return josepy.b64.b64decode(value.rstrip("="))
    except (binascii.Error, ValueError, TypeError):
        raise AcmeProblem("malformed", f"{what} is not valid base64url") from None


def b64encode(data: bytes) -> str:
    return josepy.b64.b64encode(data).decode()


@dataclass(frozen=True)
class PublicJwk:
    """A client's public key: the JSON it sent (public members only), the key, its RFC 7638 thumbprint."""

    json: dict[str, Any]
    key: Any
    kty: str

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.json)


_REQUIRED_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 3: SHA-256 over the required members, sorted, no whitespace; base64url."""
    members = {k: jwk[k] for k in _REQUIRED_MEMBERS[jwk["kty"]]}
    return b64encode(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())


def load_jwk(value: Any) -> PublicJwk:
    """Parse a public JWK; refuse private members, unknown key types and weak keys (``badPublicKey``)."""
    if not isinstance(value, dict) or not isinstance(value.get("kty"), str):
        raise AcmeProblem("malformed", "jwk must be a JSON Web Key object")
    kty = value["kty"]
    if kty not in _REQUIRED_MEMBERS:
        raise AcmeProblem("badPublicKey", f"key type {kty} is not supported (RSA, EC and OKP/Ed25519 are)")
    if "d" in value or "p" in value:
        raise AcmeProblem("malformed", "jwk must not contain private key members")
    missing = [m for m in _REQUIRED_MEMBERS[kty] if not isinstance(value.get(m), str)]
    if missing:
        raise AcmeProblem("malformed", f"jwk lacks {', '.join(missing)}")
    public = {m: value[m] for m in _REQUIRED_MEMBERS[kty]}
    if kty == "OKP":
        if value["crv"] != "Ed25519":
            raise AcmeProblem("badPublicKey", "only Ed25519 OKP keys are supported")
        try:
            key = ed25519.Ed25519PublicKey.from_public_bytes(b64decode(value["x"], "jwk.x"))
        except ValueError:
            raise AcmeProblem("badPublicKey", "jwk is not a valid Ed25519 key") from None
        return PublicJwk(public, key, kty)
    try:
        parsed = josepy.JWK.from_json(public)
    except (josepy.errors.DeserializationError, ValueError, TypeError):
        raise AcmeProblem("badPublicKey", "jwk is not a valid key") from None
    key = parsed.key._wrapped if hasattr(parsed.key, "_wrapped") else parsed.key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise AcmeProblem("badPublicKey", f"RSA account keys need at least {MIN_RSA_BITS} bits")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_CURVE.values():
        raise AcmeProblem("badPublicKey", "EC keys must be on P-256, P-384 or P-521")
    return PublicJwk(public, key, kty)


def verify_signature(alg: str, jwk: PublicJwk, signing_input: bytes, signature: bytes) -> bool:
    """Whether ``signature`` over ``signing_input`` verifies with ``jwk`` under ``alg``."""
    if alg not in SIGNATURE_ALGS:
        raise AcmeProblem("badSignatureAlgorithm", f"alg {alg} is not supported",
                          extra={"algorithms": sorted(SIGNATURE_ALGS)})
    if SIGNATURE_ALGS[alg] != jwk.kty or (alg in _EC_CURVE and jwk.key.curve.name != _EC_CURVE[alg]):
        raise AcmeProblem("badSignatureAlgorithm", f"alg {alg} does not match the {jwk.kty} key",
                          extra={"algorithms": sorted(SIGNATURE_ALGS)})
    if alg == "EdDSA":
        try:
            jwk.key.verify(signature, signing_input)
            return True
        except InvalidSignature:
            return False
    return josepy.JWASignature.from_json(alg).verify(jwk.key, signing_input, signature)


@dataclass(frozen=True)
class ParsedJws:
    """A flattened JWS, decoded but not yet verified. ``payload`` is None for POST-as-GET (empty payload)."""

    protected: dict[str, Any]
    protected_b64: str
    payload_b64: str
    payload: Any
    signature: bytes

    @property
    def alg(self) -> str:
        return self.protected["alg"]

    @property
    def nonce(self) -> str:
        return self.protected["nonce"]

    @property
    def url(self) -> str:
        return self.protected["url"]

    @property
    def kid(self) -> str | None:
        return self.protected.get("kid")

    @property
    def jwk(self) -> dict[str, Any] | None:
        return self.protected.get("jwk")

    @property
    def signing_input(self) -> bytes:
        return f"{self.protected_b64}.{self.payload_b64}".encode()

    def verify(self, jwk: PublicJwk) -> None:
        if not verify_signature(self.alg, jwk, self.signing_input, self.signature):
            raise AcmeProblem("malformed", "the JWS signature does not verify")


def _decode_object(value: Any, what: str) -> dict[str, Any]:
    try:
        decoded = json.loads(b64decode(value, what))
    except (ValueError, UnicodeDecodeError):
        raise AcmeProblem("malformed", f"{what} is not JSON") from None
    if not isinstance(decoded, dict):
        raise AcmeProblem("malformed", f"{what} must be a JSON object")
    return decoded


def parse(body: bytes, *, inner: bool = False) -> ParsedJws:
    """Decode a flattened JWS request body and check the protected header's shape (RFC 8555 6.2).

    ``inner``: the inner JWS of a key change (RFC 8555 7.3.5), which "MAY omit the nonce header parameter"
    and must carry ``jwk``."""
    try:
        outer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AcmeProblem("malformed", "the request body is not JSON") from None
    if not isinstance(outer, dict) or "signatures" in outer:
        raise AcmeProblem("malformed", "the JWS must use the flattened JSON serialization")
    if set(outer) - {"protected", "payload", "signature", "header"} or "header" in outer:
        raise AcmeProblem("malformed", "the JWS must carry only protected, payload and signature")
    for member in ("protected", "payload", "signature"):
        if not isinstance(outer.get(member), str):
            raise AcmeProblem("malformed", f"the JWS lacks {member}")
    protected = _decode_object(outer["protected"], "protected")
    alg = protected.get("alg")
    if not isinstance(alg, str) or alg == "none" or alg.startswith("HS"):
        raise AcmeProblem("badSignatureAlgorithm", "alg must name an asymmetric signature algorithm",
                          extra={"algorithms": sorted(SIGNATURE_ALGS)})
    if alg not in SIGNATURE_ALGS:
        raise AcmeProblem("badSignatureAlgorithm", f"alg {alg} is not supported",
                          extra={"algorithms": sorted(SIGNATURE_ALGS)})
    if ("jwk" in protected) == ("kid" in protected):
        raise AcmeProblem("malformed", "the protected header must contain exactly one of jwk and kid")
    if "kid" in protected and not isinstance(protected["kid"], str):
        raise AcmeProblem("malformed", "kid must be a string")
    if not isinstance(protected.get("url"), str):
        raise AcmeProblem("malformed", "the protected header lacks url")
    if inner:
        if "jwk" not in protected:
            raise AcmeProblem("malformed", "the inner JWS must carry the new key as jwk")
    elif not isinstance(protected.get("nonce"), str) or not protected["nonce"]:
        raise AcmeProblem("badNonce", "the protected header lacks nonce")
    if protected.get("crit"):
        raise AcmeProblem("malformed", "no critical header parameters are understood")
    payload: Any = None
    if outer["payload"] != "":
        try:
            payload = json.loads(b64decode(outer["payload"], "payload"))
        except (ValueError, UnicodeDecodeError):
            raise AcmeProblem("malformed", "the payload is not JSON") from None
    return ParsedJws(protected=protected, protected_b64=outer["protected"], payload_b64=outer["payload"],
                     payload=payload, signature=b64decode(outer["signature"], "signature"))


def verify_eab(binding: Any, *, account_jwk: dict[str, Any], url: str, key_id_to_hmac) -> str:
    """Check an externalAccountBinding (RFC 8555 7.3.4); return its key id.

    "The protected header ... MUST contain alg (a MAC-based algorithm), kid (the key identifier
    provided by the CA), url (the same value as the outer JWS)"; it MUST NOT contain a nonce; the payload
    MUST be the account key (the outer JWS's jwk). ``key_id_to_hmac(kid)`` returns the HMAC key or raises.
    """
    if not isinstance(binding, dict):
        raise AcmeProblem("malformed", "externalAccountBinding must be a flattened JWS object")
    for member in ("protected", "payload", "signature"):
        if not isinstance(binding.get(member), str):
            raise AcmeProblem("malformed", f"externalAccountBinding lacks {member}")
    protected = _decode_object(binding["protected"], "externalAccountBinding.protected")
    alg = protected.get("alg")
    if alg not in EAB_ALGS:
        raise AcmeProblem("badSignatureAlgorithm", "externalAccountBinding alg must be HS256, HS384 or HS512",
                          extra={"algorithms": sorted(EAB_ALGS)})
    if "nonce" in protected:
        raise AcmeProblem("malformed", "externalAccountBinding must not carry a nonce")
    if protected.get("url") != url:
        raise AcmeProblem("unauthorized", "externalAccountBinding url differs from the request url")
    kid = protected.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AcmeProblem("malformed", "externalAccountBinding lacks kid")
    inner = _decode_object(binding["payload"], "externalAccountBinding.payload")
    try:
        same_key = thumbprint(inner) == thumbprint(account_jwk)
    except (KeyError, TypeError):
        same_key = False
    if not same_key:
        raise AcmeProblem("malformed", "externalAccountBinding payload must be the account key")
    hmac_key = key_id_to_hmac(kid)
    expected = hmac_lib.new(hmac_key, f"{binding['protected']}.{binding['payload']}".encode(), EAB_ALGS[alg]).digest()
    if not hmac_lib.compare_digest(expected, b64decode(binding["signature"], "externalAccountBinding.signature")):
        raise AcmeProblem("unauthorized", "externalAccountBinding signature does not verify")
    return kid


def key_authorization(token: str, jwk: dict[str, Any]) -> str:
    """RFC 8555 8.1: token || '.' || base64url(JWK_Thumbprint(accountKey))."""
    return f"{token}.{thumbprint(jwk)}"
