"""Drives MazeVault's ACME server with the Python ``acme`` library (the one certbot uses).

Runs in its own virtualenv (our ``acme`` app shadows the library's import name); the pytest side starts
the live server and the http-01 web root and reads the JSON this prints. Usage:
``python acme_library_flow.py CONFIG.json`` where CONFIG has directory, eab_kid, eab_hmac, webroot,
names, forbidden_name, revoked_eab_kid/revoked_eab_hmac and out (a directory for the issued chain).
Each step prints one JSON object; the last line is {"done": true}. Any unexpected failure raises.
"""
from __future__ import annotations

import datetime
import json
import os
import sys

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from acme import jws as acme_jws
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

USER_AGENT = "mazevault-tests"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def new_client(directory_url: str, key: jose.JWK, alg=jose.ES256) -> client.ClientV2:
    net = client.ClientNetwork(key, alg=alg, user_agent=USER_AGENT, verify_ssl=False)
    directory = client.ClientV2.get_directory(directory_url, net)
    return client.ClientV2(directory, net)


def ec_key() -> jose.JWK:
    return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def register(acme: client.ClientV2, kid: str | None, hmac: str | None, email: str = "ops@acme.internal"):
    eab = None
    if kid is not None:
        eab = messages.ExternalAccountBinding.from_data(account_public_key=acme.net.key.public_key(), kid=kid,
                                                        hmac_key=hmac, directory=acme.directory)
    return acme.new_account(messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True,
                                                               external_account_binding=eab))


def expect_error(fn, *args, **kwargs) -> dict:
    try:
        fn(*args, **kwargs)
    except messages.Error as error:
        return {"type": error.typ, "detail": error.detail}
    except errors.ValidationError as error:
        return {"type": "validation", "detail": str([a.body.challenges for a in error.failed_authzrs])}
    raise AssertionError(f"{getattr(fn, '__name__', fn)} did not fail")


def csr_for(names: list[str], key_pem: bytes) -> bytes:
    return crypto_util.make_csr(key_pem, names)


def solve_http01(acme: client.ClientV2, orderr: messages.OrderResource, webroot: str) -> None:
    for authzr in orderr.authorizations:
        challb = next(c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01))
        response, validation = challb.response_and_validation(acme.net.key)
        path = os.path.join(webroot, ".well-known", "acme-challenge")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, challb.chall.encode("token")), "w") as handle:
            handle.write(validation)
        acme.answer_challenge(challb, response)


def main(config: dict) -> None:
    directory = config["directory"]
    names = config["names"]
    deadline = lambda: datetime.datetime.now() + datetime.timedelta(seconds=60)  # noqa: E731

    # --- negative: no EAB, a wrong HMAC, a revoked credential -------------------------------------------
    anonymous = new_client(directory, ec_key())
    assert anonymous.external_account_required()
    emit(step="no_eab", **expect_error(register, anonymous, None, None))
    wrong = new_client(directory, ec_key())
    bad_hmac = jose.b64.b64encode(os.urandom(32)).decode()
    emit(step="wrong_hmac", **expect_error(register, wrong, config["eab_kid"], bad_hmac))
    revoked = new_client(directory, ec_key())
    emit(step="revoked_credential",
         **expect_error(register, revoked, config["revoked_eab_kid"], config["revoked_eab_hmac"]))

    # --- account, order with several identifiers, http-01, finalize, download ------------------------------
    acme = new_client(directory, ec_key())
    regr = register(acme, config["eab_kid"], config["eab_hmac"])
    emit(step="account", uri=regr.uri, status=regr.body.status)
    cert_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = cert_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    orderr = acme.new_order(csr_for(names, key_pem))
    emit(step="order", uri=orderr.uri, identifiers=[i.value for i in orderr.body.identifiers],
         authorizations=len(orderr.authorizations))
    solve_http01(acme, orderr, config["webroot"])
    orderr = acme.poll_and_finalize(orderr, deadline())
    chain = orderr.fullchain_pem
    with open(os.path.join(config["out"], "fullchain.pem"), "w") as handle:
        handle.write(chain)
    leaf = x509.load_pem_x509_certificate(chain.encode())
    emit(step="issued", status=orderr.body.status.name, serial=leaf.serial_number,
         sans=sorted(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                     .get_values_for_type(x509.DNSName)))

    # --- ARI (RFC 9773): the suggested window comes from the template --------------------------------------
    suggested, _ = acme.renewal_time(chain.encode())
    emit(step="renewal_info", suggested=suggested.isoformat() if suggested else None,
         not_after=leaf.not_valid_after_utc.isoformat())

    # --- negative: a CSR with an extra name, a forbidden identifier, a replayed nonce, a wrong url -----------
    other = acme.new_order(csr_for(names[:1], key_pem))
    solve_http01(acme, other, config["webroot"])  # authorizations are reused, so this one is ready at once
    acme.poll_authorizations(other, deadline())
    extra_csr = csr_for([*names[:1], "extra." + names[0]], key_pem)
    emit(step="extra_name", **expect_error(acme.finalize_order, other.update(csr_pem=extra_csr), deadline()))
    emit(step="forbidden_identifier",
         **expect_error(acme.new_order, csr_for([config["forbidden_name"]], key_pem)))
    net = acme.net
    nonce = net._get_nonce(acme.directory["newOrder"], acme.directory["newNonce"])
    body = messages.NewOrder(identifiers=[messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=names[0])])
    first = net._send_request("POST", acme.directory["newOrder"],
                              data=net._wrap_in_jws(body, nonce, acme.directory["newOrder"]),
                              headers={"Content-Type": "application/jose+json"})
    replay = net._send_request("POST", acme.directory["newOrder"],
                               data=net._wrap_in_jws(body, nonce, acme.directory["newOrder"]),
                               headers={"Content-Type": "application/jose+json"})
    emit(step="replayed_nonce", first=first.status_code, status=replay.status_code, type=replay.json()["type"])
    fresh = jose.b64.b64decode(replay.headers["Replay-Nonce"])
    wrong_url = net._send_request("POST", acme.directory["newOrder"],
                                  data=net._wrap_in_jws(body, fresh, acme.directory["newOrder"] + "x"),
                                  headers={"Content-Type": "application/jose+json"})
    emit(step="wrong_url", status=wrong_url.status_code, type=wrong_url.json()["type"])

    # --- revoke with the account, key roll-over, deactivation ---------------------------------------------
    acme.revoke(leaf, 4)
    emit(step="revoked", again=expect_error(acme.revoke, leaf, 4))
    new_key = ec_key()
    inner = acme_jws.JWS.sign(json.dumps({"account": regr.uri, "oldKey": acme.net.key.public_key().to_json()})
                              .encode(), key=new_key, alg=jose.ES256, nonce=None,
                              url=acme.directory["keyChange"])
    response = acme._post(acme.directory["keyChange"], inner)
    acme.net.key = new_key
    regr = acme.query_registration(regr)
    emit(step="key_change", status=response.status_code, account_status=regr.body.status)
    regr = acme.deactivate_registration(regr)
    emit(step="deactivated", status=regr.body.status)
    emit(step="after_deactivation", **expect_error(acme.new_order, csr_for(names[:1], key_pem)))
    emit(done=True)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        main(json.load(handle))
