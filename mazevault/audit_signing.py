"""Signed statements about the audit chain: "the chain had ``length`` events ending in ``chain_hash``".

Pure (no Django): the caller passes the secret. The signing key is an Ed25519 key derived with
HKDF-SHA256 (RFC 5869) from a 32-byte secret that the database never holds (``MAZEVAULT_AUDIT_KEY``,
or the KEK). Ed25519 (RFC 8032) rather than an HMAC so that an exported checkpoint file can be checked
by a third party with the public key alone, without being able to sign.

Invariants:
- The signed message is ``DOMAIN || kind || "\\n" || length || "\\n" || chain_hash || "\\n" || at``
  (ASCII), so a signature for one kind of statement (the moving ``head`` or a kept ``checkpoint``)
  never verifies as the other, and changing any of the three values invalidates it.
- ``key_id`` is derived from the public key only: publishing it reveals nothing about the secret.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DOMAIN = b"mazevault-audit-chain-v1\n"
_HKDF_INFO = b"mazevault audit checkpoint signing key v1"
KINDS = ("head", "checkpoint")


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    key_id: str

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def derive(secret: bytes) -> SigningKey:
    """The Ed25519 key derived from ``secret`` (RFC 5869 HKDF-SHA256, no salt, a fixed info string)."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    return SigningKey(private=private, key_id=key_id(private.public_key()))


def public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(public_bytes(public)).hexdigest()[:16]


def message(kind: str, length: int, chain_hash: str, at: str) -> bytes:
    if kind not in KINDS:
        raise ValueError(f"unknown statement kind {kind!r}")
    return DOMAIN + f"{kind}\n{int(length)}\n{chain_hash}\n{at}".encode("ascii")


def sign(key: SigningKey, kind: str, length: int, chain_hash: str, at: str) -> str:
    """Base64 Ed25519 signature over ``message(kind, length, chain_hash, at)``."""
    return base64.b64encode(key.private.sign(message(kind, length, chain_hash, at))).decode("ascii")


def verify(public_keys: dict[str, Ed25519PublicKey], key_id_: str, signature: str, kind: str, length: int,
           chain_hash: str, at: str) -> bool:
    """True only if ``signature`` is a valid signature by the key ``key_id_`` names, among ``public_keys``."""
    public = public_keys.get(key_id_)
    if public is None or not signature:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        public.verify(raw, message(kind, length, chain_hash, at))
    except (InvalidSignature, ValueError):
        return False
    return True


def load_public(raw_b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(raw_b64, validate=True))
