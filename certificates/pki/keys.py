"""Key generation, classification, strength policy and (de)serialisation.

Invariants:

* Only signing-capable key types the CA can issue for are accepted:
  RSA, ECDSA on NIST P-256/P-384/P-521, Ed25519 and Ed448.  Anything else
  (DSA, X25519/X448, other curves) is rejected with ``UNSUPPORTED_KEY``.
* Generation is restricted to :data:`KEY_TYPES`; RSA always uses the public
  exponent 65537.
* Private key bytes never appear in exception messages or logs.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TypeAlias, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from .errors import PKIError

__all__ = [
    "KEY_TYPES",
    "KeyInfo",
    "PrivateKey",
    "PublicKey",
    "check_key_strength",
    "describe_public_key",
    "generate_private_key",
    "key_type_for",
    "load_private_key",
    "private_key_to_der",
    "private_key_to_pem",
    "public_keys_match",
    "signature_hash_for",
]

PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey

# Any key object cryptography can produce; accepted by the classification
# helpers, which reject the unsupported ones explicitly.
AnyKey: TypeAlias = PrivateKeyTypes | PublicKeyTypes

KEY_TYPES: tuple[str, ...] = ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519")

RSA_PUBLIC_EXPONENT = 65537

_RSA_SIZES: dict[str, int] = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}

# name -> (bits, display curve name, canonical key type, signature hash class)
_EC_CURVES: dict[str, tuple[int, str, str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": (256, "P-256", "ec-p256", hashes.SHA256),
    "secp384r1": (384, "P-384", "ec-p384", hashes.SHA384),
    "secp521r1": (521, "P-521", "ec-p521", hashes.SHA512),
}

_GENERATE_CURVES: dict[str, ec.EllipticCurve] = {
    "ec-p256": ec.SECP256R1(),
    "ec-p384": ec.SECP384R1(),
}


@dataclass(frozen=True)
class KeyInfo:
    """Normalised description of a supported public key.

    Invariant: ``key_type`` is the canonical lower-case identifier
    (``rsa-<bits>``, ``ec-p256``/``ec-p384``/``ec-p521``, ``ed25519``,
    ``ed448``) and ``curve`` is set only for ECDSA keys.
    """

    algorithm: str
    size: int
    curve: str | None
    key_type: str
    display: str


def generate_private_key(key_type: str) -> PrivateKey:
    """Generate a fresh private key of one of :data:`KEY_TYPES`.

    RSA keys use ``e = 65537``.  Unknown types raise ``UNSUPPORTED_KEY``.
    """
    if key_type in _RSA_SIZES:
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=_RSA_SIZES[key_type])
    if key_type in _GENERATE_CURVES:
        return ec.generate_private_key(_GENERATE_CURVES[key_type])
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise PKIError(
        f"Unsupported key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}",
        code="UNSUPPORTED_KEY",
        field="key_type",
        details={"allowed": list(KEY_TYPES)},
    )


def key_type_for(algorithm: str | None, size: int | None) -> str:
    """Map request fields (algorithm, size) onto a member of :data:`KEY_TYPES`.

    Invariant: the return value is always a member of :data:`KEY_TYPES`.
    Matching of ``algorithm`` is case-insensitive; a missing size selects the
    default for the algorithm (RSA-2048, P-256).
    """
    if not isinstance(algorithm, str) or not algorithm.strip():
        raise PKIError("A key algorithm is required", code="UNSUPPORTED_KEY", field="requested_key_algorithm")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise PKIError("Key size must be an integer", code="UNSUPPORTED_KEY", field="requested_key_size")
    algo = algorithm.strip().lower()
    if algo == "rsa":
        bits = 2048 if size is None else size
        key_type = f"rsa-{bits}"
        if key_type not in _RSA_SIZES:
            raise PKIError(
                f"Unsupported RSA key size {bits}; expected 2048, 3072 or 4096",
                code="UNSUPPORTED_KEY",
                field="requested_key_size",
                details={"allowed": sorted(_RSA_SIZES.values())},
            )
        return key_type
    if algo in ("ecdsa", "ec"):
        bits = 256 if size is None else size
        key_type = f"ec-p{bits}"
        if key_type not in _GENERATE_CURVES:
            raise PKIError(
                f"Unsupported ECDSA key size {bits}; expected 256 or 384",
                code="UNSUPPORTED_KEY",
                field="requested_key_size",
                details={"allowed": [256, 384]},
            )
        return key_type
    if algo == "ed25519":
        if size not in (None, 256):
            raise PKIError(
                "Ed25519 keys have a fixed size of 256 bits",
                code="UNSUPPORTED_KEY",
                field="requested_key_size",
                details={"allowed": [256]},
            )
        return "ed25519"
    raise PKIError(
        f"Unsupported key algorithm {algorithm!r}; expected RSA, ECDSA or Ed25519",
        code="UNSUPPORTED_KEY",
        field="requested_key_algorithm",
        details={"allowed": ["RSA", "ECDSA", "Ed25519"]},
    )


def _as_public(key: AnyKey) -> PublicKeyTypes:
    """Return the public half if ``key`` is a private key (every private key class has ``public_key()``)."""
    derive = getattr(key, "public_key", None)
    if callable(derive):
        return cast(PublicKeyTypes, derive())
    return cast(PublicKeyTypes, key)


def describe_public_key(public_key: AnyKey) -> KeyInfo:
    """Classify a supported public key (a private key is described by its public half).

    Unsupported classes (DSA, X25519, EC curves other than P-256/P-384/P-521)
    raise ``UNSUPPORTED_KEY``.
    """
    key = _as_public(public_key)
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        return KeyInfo(algorithm="RSA", size=bits, curve=None, key_type=f"rsa-{bits}", display=f"RSA-{bits}")
    if isinstance(key, ec.EllipticCurvePublicKey):
        spec = _EC_CURVES.get(key.curve.name)
        if spec is None:
            raise PKIError(
                f"Unsupported elliptic curve {key.curve.name}; expected P-256, P-384 or P-521",
                code="UNSUPPORTED_KEY",
                details={"curve": key.curve.name},
            )
        bits, curve, key_type, _ = spec
        return KeyInfo(
            algorithm="ECDSA", size=bits, curve=curve, key_type=key_type, display=f"ECDSA-{curve.replace('-', '')}"
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyInfo(algorithm="Ed25519", size=256, curve=None, key_type="ed25519", display="Ed25519")
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyInfo(algorithm="Ed448", size=456, curve=None, key_type="ed448", display="Ed448")
    raise PKIError(
        f"Unsupported key type {type(key).__name__}",
        code="UNSUPPORTED_KEY",
        details={"key_class": type(key).__name__},
    )


def check_key_strength(public_key: AnyKey, *, min_rsa_bits: int = 2048) -> None:
    """Raise ``WEAK_KEY`` unless the key meets the issuance policy.

    Policy: RSA modulus >= ``min_rsa_bits`` and an odd public exponent
    >= 65537 (small exponents such as 3 are rejected, even exponents are
    not valid RSA); ECDSA only on P-256, P-384 or P-521; Ed25519/Ed448 are
    always acceptable.  Other key classes raise ``UNSUPPORTED_KEY``.
    """
    key = _as_public(public_key)
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < min_rsa_bits:
            raise PKIError(
                f"RSA key of {bits} bits is too weak; at least {min_rsa_bits} bits are required",
                code="WEAK_KEY",
                details={"algorithm": "RSA", "size": bits, "min_size": min_rsa_bits},
            )
        exponent = key.public_numbers().e
        if exponent < RSA_PUBLIC_EXPONENT or exponent % 2 == 0:
            raise PKIError(
                "RSA public exponent must be odd and at least 65537",
                code="WEAK_KEY",
                details={"algorithm": "RSA", "public_exponent": exponent},
            )
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_CURVES:
            raise PKIError(
                f"Elliptic curve {key.curve.name} is not permitted; use P-256, P-384 or P-521",
                code="WEAK_KEY",
                details={"algorithm": "ECDSA", "curve": key.curve.name},
            )
        return
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return
    raise PKIError(
        f"Unsupported key type {type(key).__name__}",
        code="UNSUPPORTED_KEY",
        details={"key_class": type(key).__name__},
    )


def signature_hash_for(private_or_public_key: AnyKey) -> hashes.HashAlgorithm | None:
    """Return the digest to sign with when this key is the signer.

    SHA-256 for every RSA size; for ECDSA the digest matches the curve
    strength (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512); ``None`` for
    EdDSA, which hashes internally (RFC 8410 section 6: the signature
    algorithm identifiers carry no separate hash).
    """
    key = _as_public(private_or_public_key)
    if isinstance(key, rsa.RSAPublicKey):
        return hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePublicKey):
        spec = _EC_CURVES.get(key.curve.name)
        if spec is None:
            raise PKIError(
                f"Unsupported elliptic curve {key.curve.name}",
                code="UNSUPPORTED_KEY",
                details={"curve": key.curve.name},
            )
        return spec[3]()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return None
    raise PKIError(
        f"Unsupported key type {type(key).__name__}",
        code="UNSUPPORTED_KEY",
        details={"key_class": type(key).__name__},
    )


def _encryption_for(password: bytes | None) -> serialization.KeySerializationEncryption:
    if password is None:
        return serialization.NoEncryption()
    if not isinstance(password, bytes) or not password:
        raise PKIError("Password must be non-empty bytes", code="VALIDATION_ERROR", field="password")
    return serialization.BestAvailableEncryption(password)


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """Serialise as PKCS#8 PEM; encrypted with ``BestAvailableEncryption`` when a password is given.

    An empty password is rejected rather than silently producing an
    unencrypted key.
    """
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption_for(password))


def private_key_to_der(key: PrivateKey) -> bytes:
    """Serialise as unencrypted PKCS#8 DER (the plaintext that is sealed at rest)."""
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _deserialize(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, password=password)
    return serialization.load_der_private_key(data, password=password)


def load_private_key(data: bytes | str, password: bytes | None = None) -> PrivateKey:
    """Load a PEM or DER private key (PKCS#8 or traditional OpenSSL format).

    Errors: wrong password, a missing password for an encrypted key, or a
    password supplied for an unencrypted key -> ``WRONG_PASSWORD``;
    unparseable input -> ``INVALID_FORMAT``; a parsed key of an unsupported
    type -> ``UNSUPPORTED_KEY``.  The returned key is always a
    :data:`PrivateKey`.
    """
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError:
            raise PKIError("Private key is not valid PEM", code="INVALID_FORMAT") from None
    if not isinstance(data, bytes) or not data.strip():
        raise PKIError("Private key is empty", code="INVALID_FORMAT")
    data = data.strip() if b"-----BEGIN" in data else data
    if password is not None and (not isinstance(password, bytes) or not password):
        raise PKIError("Password must be non-empty bytes", code="WRONG_PASSWORD", field="password")
    try:
        key = _deserialize(data, password)
    except TypeError:
        if password is None:
            raise PKIError("Private key is encrypted; a password is required", code="WRONG_PASSWORD") from None
        raise PKIError("Private key is not encrypted; no password must be given", code="WRONG_PASSWORD") from None
    except (ValueError, UnsupportedAlgorithm):
        if password is not None and _is_encrypted(data):
            raise PKIError("Incorrect password for private key", code="WRONG_PASSWORD") from None
        raise PKIError("Private key is not a valid PEM or DER encoded key", code="INVALID_FORMAT") from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
    ):
        raise PKIError(f"Unsupported private key type {type(key).__name__}", code="UNSUPPORTED_KEY")
    describe_public_key(key)
    return key


def _is_encrypted(data: bytes) -> bool:
    """True if ``data`` parses as an encrypted key (detected by the missing-password error)."""
    try:
        _deserialize(data, None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return False


def public_keys_match(private_key: AnyKey, public_key: AnyKey) -> bool:
    """True iff both arguments carry the same public key (compared as SubjectPublicKeyInfo DER).

    Either argument may be a private or a public key; keys that cannot be
    serialised as SubjectPublicKeyInfo never match.
    """
    try:
        left = _spki_der(private_key)
        right = _spki_der(public_key)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return False
    return hmac.compare_digest(left, right)


def _spki_der(key: AnyKey) -> bytes:
    return _as_public(key).public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
