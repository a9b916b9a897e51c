"""The audit sealer (docs/audit.md): events get a chain position from the sealer, the head and
periodic checkpoints are signed.

Events written before this migration were chained at insert time in ``seq`` order, so their
position is their rank by ``seq``; the head they were chained onto is signed as it stands (a head
that did not match its chain keeps not matching, and ``verify_audit`` says so).
"""
from datetime import timezone

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone as dj_timezone

from mazevault import audit_signing


def number_and_sign(apps, schema_editor):
    alias = schema_editor.connection.alias
    Event = apps.get_model("mazevault", "AuditEvent")
    Head = apps.get_model("mazevault", "AuditChainHead")
    position, last_seq = 0, 0
    while True:
        rows = list(Event.objects.using(alias).filter(seq__gt=last_seq).order_by("seq").only("seq")[:5000])
        if not rows:
            break
        for row in rows:
            position += 1
            row.position = position
        Event.objects.using(alias).bulk_update(rows, ["position"])
        last_seq = rows[-1].seq
    head, _ = Head.objects.using(alias).get_or_create(pk=1)
    if head.count:
        key = audit_signing.derive(settings.MAZEVAULT_AUDIT_KEY or settings.MAZEVAULT_KEK)
        now = dj_timezone.now()
        head.sealed_at, head.key_id = now, key.key_id
        # The same text as mazevault.audit.stamp(), which this migration must not import (it uses the
        # current models, not the historical ones).
        head.signature = audit_signing.sign(key, "head", head.count, head.last_hash,
                                            now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        head.save(using=alias)


class Migration(migrations.Migration):

    dependencies = [
        ('mazevault', '0004_idempotency_principal_lease'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuditCheckpoint',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('length', models.BigIntegerField(unique=True)),
                ('chain_hash', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField()),
                ('key_id', models.CharField(max_length=16)),
                ('signature', models.CharField(max_length=128)),
            ],
            options={
                'ordering': ('length',),
            },
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='key_id',
            field=models.CharField(blank=True, default='', max_length=16),
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='last_checkpoint_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='sealed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='auditchainhead',
            name='signature',
            field=models.CharField(blank=True, default='', max_length=128),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='position',
            field=models.BigIntegerField(blank=True, editable=False, null=True, unique=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='chain_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='prev_hash',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.RunPython(number_and_sign, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(condition=models.Q(('position__isnull', True)), fields=['seq'], name='audit_unsealed_idx'),
        ),
    ]
