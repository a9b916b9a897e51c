"""Keys held in the database, sealed with envelope encryption (AES-256-GCM, per-key data key
wrapped by ``MAZEVAULT_KEK``). The associated data is the StoredKey id, so a sealed blob copied
to another row does not open.

CA keys are decrypted once per process and kept in memory (``_SIGNERS``): a signature never pays
for decryption or key parsing. Keys are immutable once stored, so the cache never goes stale.
"""
from __future__ import annotations

import logging
import threading
import uuid
from typing import Any
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from django.conf import settings

from certificates.pki import envelope, keys
from certificates.pki.errors import PKIError
from mazevault.errors import Conflict

from ..errors import KeyUnavailable
from ..models import StoredKey
from . import health

logger = logging.getLogger(__name__)


def _keks() -> dict[str, bytes]:
    all_keks = [settings.MAZEVAULT_KEK, *settings.MAZEVAULT_OLD_KEKS]
    return {envelope.kek_id_for(kek): kek for kek in all_keks}


def store_private_key(private_key, *, key_type: str | None = None) -> StoredKey:
    """Seal and save a private key; the plaintext exists only in this process's memory."""
    key_id = uuid.uuid4()
    kek = settings.MAZEVAULT_KEK
    der = keys.private_key_to_der(private_key)
    public_der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return StoredKey.objects.create(
        id=key_id,
        storage=StoredKey.Storage.LOCAL,
        key_type=key_type or keys.describe_public_key(private_key.public_key()).key_type,
        sealed=envelope.seal(der, kek=kek, kek_id=envelope.kek_id_for(kek), aad=str(key_id).encode()),
        kek_id=envelope.kek_id_for(kek),
        public_key_der=public_der,
    )


def load_private_key(stored: StoredKey):
    """The private key of ``stored``, decrypted in memory.

    Raises ``Conflict`` (409) for a key in external custody, which this release cannot use, and
    ``KeyUnavailable`` (503) when no configured KEK opens it: a server fault, logged with the key's
    id and KEK id (never key material) and reported by health (``keystore`` component).
    """
    if stored.storage != StoredKey.Storage.LOCAL:
        raise Conflict("This private key is held in an external secret manager; this release signs and "
                       "exports only keys held in its own encrypted store.",
                       details={"reason": "key_held_externally", "key_id": str(stored.pk)})
    if not stored.sealed:
        logger.error("stored key %s has no sealed material", stored.pk)
        health.note_failure("key_material_missing")
        raise KeyUnavailable()
    try:
        der = envelope.open_sealed(bytes(stored.sealed), keks=_keks(), aad=str(stored.id).encode())
    except PKIError:
        known = stored.kek_id in _keks()
        logger.error("stored key %s (KEK id %s, %s) could not be decrypted", stored.pk, stored.kek_id or "?",
                     "configured" if known else "not among the configured KEKs")
        health.note_failure("decrypt_failed")
        raise KeyUnavailable() from None
    return keys.load_private_key(der)


@dataclass(frozen=True)
class DatabaseSigner:
    key_id: str
    _key: object

    def private_key(self):
        return self._key


_SIGNERS: dict[str, DatabaseSigner] = {}
_LOCK = threading.Lock()


def get_signer(stored: StoredKey) -> DatabaseSigner:
    """The process-wide signer for a stored CA key (decrypted on first use only)."""
    key_id = str(stored.pk)
    signer = _SIGNERS.get(key_id)
    if signer is None:
        with _LOCK:
            signer = _SIGNERS.get(key_id)
            if signer is None:
                signer = DatabaseSigner(key_id=key_id, _key=load_private_key(stored))
                _SIGNERS[key_id] = signer
    return signer


def get_signer_by_id(key_id: Any) -> DatabaseSigner:
    """``get_signer`` for a key id: the sealed key is read from the database only on first use."""
    signer = _SIGNERS.get(str(key_id))
    if signer is not None:
        return signer
    return get_signer(StoredKey.objects.get(pk=key_id))
