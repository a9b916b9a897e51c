"""Envelope encryption for private keys at rest.

Each secret is encrypted with its own fresh 256-bit data-encryption key
(DEK) under AES-256-GCM; the DEK is itself encrypted ("wrapped") with
AES-256-GCM under a 256-bit key-encryption key (KEK).  Blob layout::

    offset  size        field
    0       3           magic b"MV1"
    3       1           n = length of kek_id
    4       n           kek_id (ASCII) - selects the KEK on open (rotation)
    4+n     12          wrap nonce
    16+n    48          wrapped DEK (32-byte key + 16-byte GCM tag)
    64+n    12          data nonce
    76+n    rest        ciphertext + 16-byte GCM tag

Associated data: both GCM layers authenticate
``b"MV1" | layer label | len(kek_id) | kek_id | aad`` where the layer label
is ``b"K"`` for the DEK wrap and ``b"D"`` for the data, and ``aad`` is the
caller's context (e.g. the key's database id).  Invariants:

* tampering with any byte of the blob, presenting it under a different
  ``aad`` (e.g. copying it to another row), or relabelling it with another
  kek_id makes :func:`open_sealed` fail;
* every failure to open is the same opaque ``KEY_DECRYPT_FAILED`` error,
  so callers cannot be used as a decryption oracle;
* nonces are 96-bit random values; each DEK encrypts exactly one message,
  and each wrap nonce is used once per KEK, far below GCM's random-nonce
  limit.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import PKIError

__all__ = ["kek_id_for", "open_sealed", "seal"]

MAGIC = b"MV1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_WRAPPED_DEK_BYTES = KEY_BYTES + TAG_BYTES
_LAYER_WRAP = b"K"
_LAYER_DATA = b"D"


def kek_id_for(kek: bytes) -> str:
    """Short stable identifier of a KEK: first 8 hex chars of SHA-256(b"mazevault-kek-id" + kek).

    Invariant: reveals nothing useful about the KEK (one-way, truncated,
    domain-separated).
    """
    return hashlib.sha256(b"mazevault-kek-id" + kek).hexdigest()[:8]


def _associated_data(layer: bytes, kek_id: bytes, aad: bytes) -> bytes:
    # kek_id is length-prefixed and aad is last, so the encoding is injective.
    return MAGIC + layer + bytes([len(kek_id)]) + kek_id + aad


def _encode_kek_id(kek_id: str) -> bytes:
    if not isinstance(kek_id, str) or not kek_id:
        raise PKIError("kek_id must be a non-empty ASCII string", code="VALIDATION_ERROR", field="kek_id")
    try:
        encoded = kek_id.encode("ascii")
    except UnicodeEncodeError:
        raise PKIError("kek_id must be ASCII", code="VALIDATION_ERROR", field="kek_id") from None
    if len(encoded) > 255:
        raise PKIError("kek_id must be at most 255 characters", code="VALIDATION_ERROR", field="kek_id")
    return encoded


def seal(plaintext: bytes, *, kek: bytes, kek_id: str, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` under a fresh DEK wrapped by ``kek``; returns the blob described above."""
    if not isinstance(kek, bytes) or len(kek) != KEY_BYTES:
        raise PKIError("KEK must be exactly 32 bytes", code="VALIDATION_ERROR", field="kek")
    if not isinstance(aad, bytes):
        raise PKIError("aad must be bytes", code="VALIDATION_ERROR", field="aad")
    if not isinstance(plaintext, bytes):
        raise PKIError("plaintext must be bytes", code="VALIDATION_ERROR", field="plaintext")
    kek_id_bytes = _encode_kek_id(kek_id)
    dek = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    wrap_nonce = os.urandom(NONCE_BYTES)
    data_nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(kek).encrypt(wrap_nonce, dek, _associated_data(_LAYER_WRAP, kek_id_bytes, aad))
    ciphertext = AESGCM(dek).encrypt(data_nonce, plaintext, _associated_data(_LAYER_DATA, kek_id_bytes, aad))
    return b"".join((MAGIC, bytes([len(kek_id_bytes)]), kek_id_bytes, wrap_nonce, wrapped, data_nonce, ciphertext))


def _decrypt_failed() -> PKIError:
    return PKIError("Unable to decrypt stored key material", code="KEY_DECRYPT_FAILED")


def open_sealed(blob: bytes, *, keks: Mapping[str, bytes], aad: bytes) -> bytes:
    """Decrypt a blob produced by :func:`seal`, choosing the KEK by the embedded kek_id.

    Any failure (malformed blob, unknown kek_id, wrong KEK, wrong ``aad``,
    tampering) raises ``KEY_DECRYPT_FAILED`` without further detail.
    """
    if not isinstance(blob, bytes | bytearray | memoryview) or not isinstance(aad, bytes):
        raise _decrypt_failed()
    data = bytes(blob)
    if len(data) < len(MAGIC) + 1 or not data.startswith(MAGIC):
        raise _decrypt_failed()
    offset = len(MAGIC)
    id_length = data[offset]
    offset += 1
    kek_id_bytes = data[offset : offset + id_length]
    offset += id_length
    minimum = offset + NONCE_BYTES + _WRAPPED_DEK_BYTES + NONCE_BYTES + TAG_BYTES
    if id_length == 0 or len(data) < minimum:
        raise _decrypt_failed()
    try:
        kek = keks.get(kek_id_bytes.decode("ascii"))
    except UnicodeDecodeError:
        raise _decrypt_failed() from None
    if not isinstance(kek, bytes) or len(kek) != KEY_BYTES:
        raise _decrypt_failed()
    wrap_nonce = data[offset : offset + NONCE_BYTES]
    offset += NONCE_BYTES
    wrapped = data[offset : offset + _WRAPPED_DEK_BYTES]
    offset += _WRAPPED_DEK_BYTES
    data_nonce = data[offset : offset + NONCE_BYTES]
    offset += NONCE_BYTES
    ciphertext = data[offset:]
    try:
        dek = AESGCM(kek).decrypt(wrap_nonce, wrapped, _associated_data(_LAYER_WRAP, kek_id_bytes, aad))
        return AESGCM(dek).decrypt(data_nonce, ciphertext, _associated_data(_LAYER_DATA, kek_id_bytes, aad))
    except (InvalidTag, ValueError):
        raise _decrypt_failed() from None
