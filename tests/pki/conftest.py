"""Session-scoped key and CA fixtures for the pure PKI tests.

Key generation (RSA-4096 in particular) is slow, so every key type is
generated exactly once per session and the test CA hierarchy is built once:
an RSA-4096 root (pathLen 1) and an ECDSA P-384 intermediate (pathLen 0).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

# With the default "prepend" import mode pytest puts only this directory on
# sys.path; make the project root importable when nothing else (pytest-django,
# an installed package, pytest's ``pythonpath`` option) has done so.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from certificates.pki.builder import CAProfile, sign_ca  # noqa: E402
from certificates.pki.keys import KEY_TYPES, PrivateKey, generate_private_key  # noqa: E402
from certificates.pki.names import build_name  # noqa: E402

ROOT_CRL_URL = "http://crl.mazevault.test/root.crl"
ROOT_CA_ISSUERS_URL = "http://pki.mazevault.test/root.cer"


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def generated_keys() -> dict[str, PrivateKey]:
    """One freshly generated key per entry of KEY_TYPES (RSA-4096 generated only here)."""
    return {key_type: generate_private_key(key_type) for key_type in KEY_TYPES}


@pytest.fixture(scope="session")
def _ca_hierarchy(
    generated_keys: dict[str, PrivateKey], now: datetime
) -> tuple[PrivateKey, x509.Certificate, PrivateKey, x509.Certificate]:
    root_key = generated_keys["rsa-4096"]
    root_cert = sign_ca(
        CAProfile(
            subject=build_name({"common_name": "MazeVault Test Root CA", "organization": "MazeVault", "country": "CZ"}),
            public_key=root_key.public_key(),
            not_before=now - timedelta(hours=1),
            not_after=now + timedelta(days=3650),
            path_length=1,
        ),
        issuer_cert=None,
        issuer_key=root_key,
    )
    inter_key = generated_keys["ec-p384"]
    inter_cert = sign_ca(
        CAProfile(
            subject=build_name(
                {"common_name": "MazeVault Test Issuing CA", "organization": "MazeVault", "country": "CZ"}
            ),
            public_key=inter_key.public_key(),
            not_before=now - timedelta(hours=1),
            not_after=now + timedelta(days=1825),
            path_length=0,
            crl_urls=(ROOT_CRL_URL,),
            ca_issuers_urls=(ROOT_CA_ISSUERS_URL,),
        ),
        issuer_cert=root_cert,
        issuer_key=root_key,
    )
    return root_key, root_cert, inter_key, inter_cert


@pytest.fixture(scope="session")
def root_key(_ca_hierarchy: tuple[PrivateKey, x509.Certificate, PrivateKey, x509.Certificate]) -> PrivateKey:
    """RSA-4096 root CA key."""
    return _ca_hierarchy[0]


@pytest.fixture(scope="session")
def root_cert(_ca_hierarchy: tuple[PrivateKey, x509.Certificate, PrivateKey, x509.Certificate]) -> x509.Certificate:
    """Self-signed root, pathLenConstraint 1, no CDP/AIA."""
    return _ca_hierarchy[1]


@pytest.fixture(scope="session")
def inter_key(_ca_hierarchy: tuple[PrivateKey, x509.Certificate, PrivateKey, x509.Certificate]) -> PrivateKey:
    """ECDSA P-384 issuing CA key."""
    return _ca_hierarchy[2]


@pytest.fixture(scope="session")
def inter_cert(_ca_hierarchy: tuple[PrivateKey, x509.Certificate, PrivateKey, x509.Certificate]) -> x509.Certificate:
    """Issuing CA signed by the root, pathLenConstraint 0, CDP and caIssuers pointing at the root."""
    return _ca_hierarchy[3]
