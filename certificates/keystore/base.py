"""The signer interface. A CA signs through a ``Signer`` so that an HSM (PKCS#11) or a cloud key
can replace the database-held key without touching issuance code."""
from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes


class Signer(Protocol):
    key_id: str

    def private_key(self) -> CertificateIssuerPrivateKeyTypes:
        """The key object ``cryptography`` signs with (an HSM backend returns a proxy key)."""
        ...
