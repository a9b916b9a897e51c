"""The sealed hash chain and ``manage.py verify_audit``: what a database writer can and cannot hide.

Each tamper below is done the way an attacker with write access to the database alone would do
it (plain UPDATE/DELETE through the ORM, no key); verify_audit must name it.
"""
from __future__ import annotations

import base64
import hashlib
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from mazevault import audit, audit_signing
from mazevault.models import AuditChainHead, AuditCheckpoint, AuditEvent
from tests.factories import issued


def run_verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def log(tenant):
    issued(tenant.client(), tenant, cn="chain-1")
    issued(tenant.client(), tenant, cn="chain-2")
    audit.seal()
    return list(AuditEvent.objects.order_by("position"))


def test_seal_links_every_event_to_its_predecessor_in_position_order(log):
    assert [e.position for e in log] == list(range(1, len(log) + 1))
    assert [e.seq for e in log] == sorted(e.seq for e in log)  # one writer at a time here: seq order
    assert log[0].prev_hash == audit.GENESIS
    for prev, event in zip(log, log[1:]):
        assert event.prev_hash == prev.chain_hash
        expected = hashlib.sha256(prev.chain_hash.encode() + audit.canonical(event)).hexdigest()
        assert event.chain_hash == expected
    content = json.loads(audit.canonical(log[-1]))
    assert content["action"] == log[-1].action and content["id"] == str(log[-1].id)
    head = AuditChainHead.objects.get(pk=1)
    assert (head.last_hash, head.count) == (log[-1].chain_hash, len(log))
    assert head.key_id == audit.signing_key().key_id and head.signature


def test_events_are_unsealed_until_the_sealer_runs_and_sealing_twice_changes_nothing(tenant):
    fresh = audit.record("test.event", actor="t", entity=("thing", "1"))
    fresh.refresh_from_db()
    assert (fresh.position, fresh.prev_hash, fresh.chain_hash) == (None, None, None)
    assert audit.seal() >= 1
    fresh.refresh_from_db()
    assert fresh.position == AuditChainHead.objects.get().count and len(fresh.chain_hash) == 64
    before = list(AuditEvent.objects.values_list("seq", "position", "chain_hash"))
    assert audit.seal() == 0
    assert list(AuditEvent.objects.values_list("seq", "position", "chain_hash")) == before


def test_verify_audit_passes_on_an_intact_log(log):
    out = run_verify()
    assert out.startswith(f"audit chain intact: {len(log)} sealed events; signed head at {len(log)}")
    assert "1 checkpoints verified" in out and "0 events not sealed yet" in out


def test_verify_audit_reports_unsealed_events_without_failing_and_seals_them_when_asked(log):
    audit.record("test.pending", actor="t")
    assert "1 events not sealed yet" in run_verify()
    out = run_verify("--seal")
    assert "sealed 1 pending events" in out and f"{len(log) + 1} sealed events" in out


@pytest.mark.parametrize("tamper", ["details", "action", "actor_name", "created_at"])
def test_verify_audit_names_an_edited_event(log, tamper):
    victim = log[len(log) // 2]
    changes = {"details": {"forged": True}, "action": "cert.forged", "actor_name": "mallory",
               "created_at": victim.created_at.replace(year=2001)}[tamper]
    AuditEvent.objects.filter(seq=victim.seq).update(**{tamper: changes})
    with pytest.raises(CommandError, match=rf"broken at event seq={victim.seq}\b"):
        run_verify()


def test_verify_audit_detects_a_deleted_event(log):
    victim = log[3]
    AuditEvent.objects.filter(seq=victim.seq).delete()
    with pytest.raises(CommandError, match=rf"positions 4\.\.4 are missing \(deleted events\) before seq={log[4].seq}"):
        run_verify()


def test_verify_audit_detects_the_newest_events_truncated_away(log):
    AuditEvent.objects.filter(position__gt=len(log) - 3).delete()
    with pytest.raises(CommandError, match=rf"ends at position {len(log) - 3} but the signed head says {len(log)}"):
        run_verify()


def _rewrite_from(log: list[AuditEvent], index: int) -> str:
    """Edit log[index] and recompute every later link, as someone with the database but no key can."""
    prev = log[index].prev_hash
    for event in log[index:]:
        if event is log[index]:
            event.details = {"forged": True}
        event.prev_hash, event.chain_hash = prev, audit.chain(prev, event)
        prev = event.chain_hash
        AuditEvent.objects.filter(seq=event.seq).update(details=event.details, prev_hash=event.prev_hash,
                                                        chain_hash=event.chain_hash)
    return prev


def test_a_consistently_rewritten_chain_fails_on_the_head_signature(log):
    last = _rewrite_from(log, 2)
    AuditChainHead.objects.filter(pk=1).update(last_hash=last)  # the links all hold now
    assert audit.verify_chain() == (len(log), None)
    with pytest.raises(CommandError) as caught:
        run_verify()
    assert "head's signature does not verify" in str(caught.value)
    assert "no longer matches the checkpoint at length" in str(caught.value)  # the first seal's checkpoint


def test_a_head_signed_with_another_key_is_detected(log):
    last = _rewrite_from(log, 1)
    head = AuditChainHead.objects.get(pk=1)
    mallory = audit_signing.derive(b"m" * 32)
    head.last_hash, head.key_id = last, mallory.key_id
    head.signature = audit_signing.sign(mallory, "head", head.count, last, audit.stamp(head.sealed_at))
    head.save()
    AuditCheckpoint.objects.all().delete()  # and hide the checkpoint that would also tell
    with pytest.raises(CommandError, match="head's signature does not verify"):
        run_verify()


def test_a_forged_checkpoint_is_detected(log):
    mallory = audit_signing.derive(b"m" * 32)
    at = audit.stamp(timezone.now())
    AuditCheckpoint.objects.create(length=len(log) - 1, chain_hash=log[-2].chain_hash, created_at=timezone.now(),
                                   key_id=audit.signing_key().key_id,
                                   signature=audit_signing.sign(mallory, "checkpoint", len(log) - 1,
                                                                log[-2].chain_hash, at))
    with pytest.raises(CommandError, match=rf"checkpoint at length {len(log) - 1} .* no valid signature"):
        run_verify()


def test_a_head_signature_is_not_accepted_as_a_checkpoint(log):
    head = AuditChainHead.objects.get(pk=1)
    AuditCheckpoint.objects.all().delete()
    AuditCheckpoint.objects.create(length=head.count, chain_hash=head.last_hash, created_at=head.sealed_at,
                                   key_id=head.key_id, signature=head.signature)
    with pytest.raises(CommandError, match="no valid signature"):
        run_verify()


def test_the_sealer_refuses_to_extend_a_chain_whose_newest_events_were_unsealed_and_edited(log):
    # Clearing position/hash of the newest events would make the sealer chain the edited content
    # again and sign it, were it to trust the head without checking it.
    AuditEvent.objects.filter(position__gt=len(log) - 2).update(position=None, prev_hash=None, chain_hash=None,
                                                                details={"forged": True})
    with pytest.raises(audit.ChainHeadMismatch, match="does not end where the signed head says"):
        audit.seal()
    with pytest.raises(CommandError, match="sealer refuses to extend the chain"):
        run_verify("--seal")
    with pytest.raises(CommandError, match="newest events were removed"):
        run_verify()


def test_export_prints_signed_checkpoints_that_verify_with_the_public_key_alone(log):
    audit.record("test.after", actor="t")
    exported = json.loads(run_verify("--export"))
    assert exported["format"] == audit.EXPORT_FORMAT
    lengths = [c["length"] for c in exported["checkpoints"]]
    assert lengths == [len(log), len(log) + 1]  # the sealer's, and the one --export keeps for now
    for cp in exported["checkpoints"]:
        public = audit_signing.load_public(exported["public_keys"][cp["key_id"]])
        public.verify(base64.b64decode(cp["signature"]), audit_signing.message(
            "checkpoint", cp["length"], cp["chain_hash"], cp["created_at"]))
    assert not any(k in json.dumps(exported) for k in ("private", "secret"))


def test_verify_against_an_export_detects_a_rollback_the_database_alone_cannot_show(log, tmp_path):
    export_file = tmp_path / "checkpoints.json"
    export_file.write_text(run_verify("--export"))
    saved_head = AuditChainHead.objects.values().get(pk=1)
    saved_checkpoints = list(AuditCheckpoint.objects.values())
    for n in range(3):
        audit.record("test.later", actor="t", details={"n": n})
    exported_later = tmp_path / "later.json"
    exported_later.write_text(run_verify("--export"))
    assert "1 exported checkpoints matched" in run_verify("--checkpoints", str(export_file))

    # Roll the database back to the first export: drop the newer events and put back the head and
    # checkpoints as they were (all genuinely signed). The database alone is consistent again.
    AuditEvent.objects.filter(position__gt=len(log)).delete()
    AuditCheckpoint.objects.all().delete()
    AuditCheckpoint.objects.bulk_create(AuditCheckpoint(**row) for row in saved_checkpoints)
    AuditChainHead.objects.filter(pk=1).update(**{k: v for k, v in saved_head.items() if k != "id"})
    assert run_verify().startswith("audit chain intact")
    with pytest.raises(CommandError, match=rf"exported checkpoint at length {len(log) + 3} .* events were removed"):
        run_verify("--checkpoints", str(exported_later))


def test_verify_against_an_export_detects_a_deleted_checkpoint_row(log, tmp_path):
    export_file = tmp_path / "checkpoints.json"
    export_file.write_text(run_verify("--export"))
    AuditCheckpoint.objects.all().delete()
    with pytest.raises(CommandError, match="missing from the database"):
        run_verify("--checkpoints", str(export_file))


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"), ('{"format": "other"}', "not a mazevault-audit-checkpoints/1 export"),
    ('{"format": "mazevault-audit-checkpoints/1", "checkpoints": [{"length": 1}]}', "checkpoint #0 lacks"),
])
def test_a_bad_checkpoints_file_is_a_clear_error(db, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message):
        run_verify("--checkpoints", str(path))
    with pytest.raises(CommandError, match="cannot read"):
        run_verify("--checkpoints", str(tmp_path / "missing.json"))


def test_checkpoints_keep_verifying_after_the_audit_key_is_set_and_rotated(log, settings):
    old_kek = settings.MAZEVAULT_KEK
    settings.MAZEVAULT_AUDIT_KEY = b"a" * 32  # from now on sign with a dedicated key; the KEK's still verify
    audit.record("test.rotated", actor="t")
    audit.seal()
    assert AuditChainHead.objects.get().key_id == audit_signing.derive(b"a" * 32).key_id
    assert run_verify().startswith("audit chain intact")
    settings.MAZEVAULT_AUDIT_KEY, settings.MAZEVAULT_OLD_AUDIT_KEYS = b"b" * 32, [b"a" * 32]
    settings.MAZEVAULT_KEK, settings.MAZEVAULT_OLD_KEKS = b"k" * 32, [old_kek]
    assert run_verify().startswith("audit chain intact")
    settings.MAZEVAULT_OLD_KEKS = []  # the key behind the first checkpoint is gone: say so
    with pytest.raises(CommandError, match="no valid signature"):
        run_verify()


def test_a_checkpoint_is_kept_at_most_every_interval(log, settings):
    settings.MAZEVAULT_AUDIT_CHECKPOINT_SECONDS = 3600
    assert AuditCheckpoint.objects.count() == 1
    audit.record("test.one", actor="t")
    audit.seal()
    assert AuditCheckpoint.objects.count() == 1
    AuditChainHead.objects.update(last_checkpoint_at=timezone.now() - timezone.timedelta(hours=2))
    audit.record("test.two", actor="t")
    audit.seal()
    newest = AuditCheckpoint.objects.order_by("-length").first()
    assert (AuditCheckpoint.objects.count(), newest.length) == (2, AuditChainHead.objects.get().count)


def test_verify_audit_on_an_empty_log(db):
    assert run_verify().strip() == "audit chain intact: 0 sealed events; 0 checkpoints verified; " \
                                   "0 events not sealed yet"
    assert json.loads(run_verify("--export"))["checkpoints"] == []


def test_the_signing_secret_is_nowhere_in_the_database(log, settings):
    secret = settings.MAZEVAULT_AUDIT_KEY or settings.MAZEVAULT_KEK
    seed = audit_signing.derive(secret).private.private_bytes_raw()
    dumped = json.dumps([list(AuditChainHead.objects.values()), list(AuditCheckpoint.objects.values())],
                        default=str)
    for value in (secret, seed):
        assert value.hex() not in dumped and base64.b64encode(value).decode() not in dumped
