"""The four stock templates (product docs: Web Server, Client Auth, Code Signing, Email S/MIME)."""
from __future__ import annotations

from typing import Any

ALL_LEAF_KEYS = ["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"]
COUNTRY = {"pattern": "[A-Z]{2}"}

STOCK_TEMPLATES: dict[str, dict[str, Any]] = {
    "web-server": {
        "description": "TLS server certificates (serverAuth).",
        "key_algorithms": ALL_LEAF_KEYS, "default_key_type": "ec-p256",
        "validity_days": 365, "min_validity_days": 1, "max_validity_days": 397,
        "subject_policy": {"common_name": {}, "organization": {}, "organizational_unit": {}, "locality": {},
                           "state": {}, "country": COUNTRY},
        "san_types": ["dns_names", "ip_addresses"], "require_san": True, "allow_wildcards": True,
        "key_usage": ["digitalSignature", "keyEncipherment"], "extended_key_usage": ["serverAuth"],
        "auto_approve": False, "acme_profile": "web-server",
    },
    "client-auth": {
        "description": "TLS client authentication (clientAuth); auto-approved.",
        "key_algorithms": [*ALL_LEAF_KEYS, "ed25519"], "default_key_type": "ec-p256",
        "validity_days": 365, "min_validity_days": 1, "max_validity_days": 397,
        "subject_policy": {"common_name": {"required": True}, "organization": {}, "organizational_unit": {},
                           "country": COUNTRY},
        "san_types": ["dns_names", "email_addresses", "uris"], "copy_cn_to_san": False,
        "key_usage": ["digitalSignature"], "extended_key_usage": ["clientAuth"],
        "auto_approve": True, "acme_profile": "client-auth",
    },
    "code-signing": {
        "description": "Code signing (codeSigning).",
        "key_algorithms": ["rsa-3072", "rsa-4096", "ec-p256", "ec-p384"], "default_key_type": "ec-p384",
        "min_rsa_key_size": 3072,
        "validity_days": 730, "min_validity_days": 1, "max_validity_days": 1095,
        "subject_policy": {"common_name": {"required": True}, "organization": {"required": True},
                           "organizational_unit": {}, "locality": {}, "state": {}, "country": COUNTRY},
        "san_types": [], "copy_cn_to_san": False,
        "key_usage": ["digitalSignature"], "extended_key_usage": ["codeSigning"],
        "auto_approve": False,
    },
    "email": {
        "description": "S/MIME (emailProtection).",
        "key_algorithms": ALL_LEAF_KEYS, "default_key_type": "rsa-2048",
        "validity_days": 365, "min_validity_days": 1, "max_validity_days": 825,
        "subject_policy": {"common_name": {"required": True}, "email_address": {}, "organization": {}},
        "san_types": ["email_addresses"], "require_san": True, "copy_cn_to_san": False,
        "key_usage": ["digitalSignature", "keyEncipherment"], "extended_key_usage": ["emailProtection"],
        "auto_approve": False,
    },
}
