"""RFC 8555 request bodies: parse and validate payloads into typed values. Pure: no DB.

Unknown fields are ignored ("clients and servers MUST ignore fields they do not understand", RFC 8555
7.1 by way of the JSON object rules); known fields of the wrong type are ``malformed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .jws import b64decode
from .problems import AcmeProblem


def _object(payload: Any, what: str) -> dict[str, Any]:
    if payload is None:
        raise AcmeProblem("malformed", f"{what} needs a JSON object payload (not POST-as-GET)")
    if not isinstance(payload, dict):
        raise AcmeProblem("malformed", f"the {what} payload must be a JSON object")
    return payload


def _optional_bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise AcmeProblem("malformed", f"{name} must be a boolean")
    return value


def _contact(body: dict[str, Any]) -> list[str] | None:
    if "contact" not in body:
        return None
    value = body["contact"]
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise AcmeProblem("malformed", "contact must be an array of URLs")
    return value


@dataclass(frozen=True)
class NewAccount:
    contact: list[str] | None
    terms_of_service_agreed: bool
    only_return_existing: bool
    external_account_binding: Any


def new_account(payload: Any) -> NewAccount:
    body = _object(payload, "newAccount")
    return NewAccount(contact=_contact(body), terms_of_service_agreed=_optional_bool(body, "termsOfServiceAgreed"),
                      only_return_existing=_optional_bool(body, "onlyReturnExisting"),
                      external_account_binding=body.get("externalAccountBinding"))


@dataclass(frozen=True)
class AccountUpdate:
    contact: list[str] | None
    deactivate: bool


def account_update(payload: Any) -> AccountUpdate | None:
    """None: POST-as-GET of the account (or an empty update)."""
    if payload is None:
        return None
    body = _object(payload, "account update")
    status = body.get("status")
    if status is not None and status != "deactivated":
        raise AcmeProblem("malformed", "an account can only be updated to status deactivated")
    return AccountUpdate(contact=_contact(body), deactivate=status == "deactivated")


@dataclass(frozen=True)
class Identifier:
    type: str
    value: str


def _timestamp(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AcmeProblem("malformed", f"{name} must be an RFC 3339 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AcmeProblem("malformed", f"{name} must be an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise AcmeProblem("malformed", f"{name} needs a time zone")
    return parsed


@dataclass(frozen=True)
class NewOrder:
    identifiers: list[Identifier]
    not_before: datetime | None
    not_after: datetime | None
    profile: str
    replaces: str


MAX_IDENTIFIERS = 100


def new_order(payload: Any) -> NewOrder:
    body = _object(payload, "newOrder")
    raw = body.get("identifiers")
    if not isinstance(raw, list) or not raw:
        raise AcmeProblem("malformed", "identifiers must be a non-empty array")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"an order may name at most {MAX_IDENTIFIERS} identifiers")
    identifiers = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or not isinstance(item.get("value"), str):
            raise AcmeProblem("malformed", "each identifier needs a string type and value")
        identifiers.append(Identifier(item["type"], item["value"]))
    profile = body.get("profile", "")
    if not isinstance(profile, str):
        raise AcmeProblem("malformed", "profile must be a string")
    replaces = body.get("replaces", "")
    if not isinstance(replaces, str):
        raise AcmeProblem("malformed", "replaces must be a string")
    return NewOrder(identifiers=identifiers, not_before=_timestamp(body, "notBefore"),
                    not_after=_timestamp(body, "notAfter"), profile=profile, replaces=replaces)


def finalize(payload: Any) -> bytes:
    """The CSR's DER (RFC 8555 7.4: "csr (required, string): A CSR encoding the parameters ... base64url")."""
    body = _object(payload, "finalize")
    if "csr" not in body:
        raise AcmeProblem("malformed", "finalize needs csr")
    der = b64decode(body["csr"], "csr")
    if not der:
        raise AcmeProblem("badCSR", "the CSR is empty")
    return der


@dataclass(frozen=True)
class Revocation:
    certificate_der: bytes
    reason: int | None


def revocation(payload: Any) -> Revocation:
    body = _object(payload, "revokeCert")
    der = b64decode(body.get("certificate"), "certificate")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, int) or isinstance(reason, bool)):
        raise AcmeProblem("malformed", "reason must be an integer")
    return Revocation(certificate_der=der, reason=reason)


def authorization_update(payload: Any) -> bool:
    """True when the client deactivates the authorization (RFC 8555 7.5.2); False for POST-as-GET."""
    if payload is None:
        return False
    body = _object(payload, "authorization update")
    if body.get("status") != "deactivated":
        raise AcmeProblem("malformed", "an authorization can only be updated to status deactivated")
    return True


def key_change_inner(payload: Any) -> dict[str, Any]:
    """RFC 8555 7.3.5: the inner JWS's payload is {"account": URL, "oldKey": JWK}."""
    body = _object(payload, "keyChange inner payload")
    if not isinstance(body.get("account"), str) or not isinstance(body.get("oldKey"), dict):
        raise AcmeProblem("malformed", "the keyChange inner payload needs account and oldKey")
    return body
