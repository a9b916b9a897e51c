"""The hash-chained audit log and ``manage.py verify_audit``."""
from __future__ import annotations

import hashlib
import json

import pytest
from django.core.management import CommandError, call_command

from mazevault import audit
from mazevault.models import AuditChainHead, AuditEvent
from tests.factories import issued


def run_verify() -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


@pytest.fixture
def log(tenant):
    issued(tenant.client(), tenant, cn="chain-1")
    issued(tenant.client(), tenant, cn="chain-2")
    return list(AuditEvent.objects.order_by("seq"))


def test_chain_links_every_event_to_its_predecessor(log):
    assert log[0].prev_hash == audit.GENESIS
    for prev, event in zip(log, log[1:]):
        assert event.prev_hash == prev.chain_hash
        expected = hashlib.sha256(prev.chain_hash.encode() + audit.canonical(event)).hexdigest()
        assert event.chain_hash == expected
    content = json.loads(audit.canonical(log[-1]))
    assert content["action"] == log[-1].action and content["id"] == str(log[-1].id)
    head = AuditChainHead.objects.get(pk=1)
    assert (head.last_hash, head.count) == (log[-1].chain_hash, len(log))


def test_verify_audit_passes_on_an_intact_log(log):
    assert run_verify().strip() == f"audit chain intact: {len(log)} events"


@pytest.mark.parametrize("tamper", ["details", "action", "actor_name", "created_at"])
def test_verify_audit_names_the_tampered_event(log, tamper):
    victim = log[len(log) // 2]
    changes = {"details": {"forged": True}, "action": "cert.forged", "actor_name": "mallory",
               "created_at": victim.created_at.replace(year=2001)}[tamper]
    AuditEvent.objects.filter(seq=victim.seq).update(**{tamper: changes})
    with pytest.raises(CommandError, match=rf"seq={victim.seq}\b"):
        run_verify()


def test_verify_audit_detects_a_deleted_event(log):
    victim = log[3]
    AuditEvent.objects.filter(seq=victim.seq).delete()
    with pytest.raises(CommandError, match=rf"seq={log[4].seq}\b"):
        run_verify()


def test_rehashing_one_event_breaks_the_next_link(log):
    victim = log[2]
    victim.details = {"forged": True}
    forged_hash = audit.chain(victim.prev_hash, victim)
    AuditEvent.objects.filter(seq=victim.seq).update(details=victim.details, chain_hash=forged_hash)
    with pytest.raises(CommandError, match=rf"seq={log[3].seq}\b"):
        run_verify()


def test_verify_audit_on_an_empty_log(db):
    assert run_verify().strip() == "audit chain intact: 0 events"
