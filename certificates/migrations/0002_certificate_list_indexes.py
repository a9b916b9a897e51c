"""Indexes for the certificate list at scale (bench/list_scale.py: 1,000,000 rows).

- One btree per list filter, ending in the list order (``-requested_at``; the ``-id`` tie-break
  is added by an incremental sort): ``project_id`` alone and ``status`` alone had none.
- The single-column indexes Django adds for the organization, project and ca foreign keys go: the
  composite indexes that start with those columns serve the same lookups, and every issuance
  (an INSERT and an UPDATE of the row) no longer maintains three extra indexes.
- ``common_name`` substring search (``icontains``, which Django renders on PostgreSQL as
  ``UPPER("common_name"::text) LIKE UPPER(%s)``) gets a pg_trgm GIN index on that very expression.
  PostgreSQL only: on SQLite (the embedded default) that step does nothing.
"""
import django.db.models.deletion
from django.db import migrations, models

TRIGRAM_INDEX = "cert_common_name_trgm_idx"


def create_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("certificates", "Certificate")._meta.db_table)
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON {table} "
                          f"USING gin ((UPPER(common_name::text)) gin_trgm_ops)")


def drop_trigram_index(apps, schema_editor):
    # The extension stays: other objects may use it.
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("certificates", "0001_initial"),
        ("mazevault", "0002_chain_head_and_cache_table"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="certificate",
            options={"ordering": ("-requested_at", "-id")},
        ),
        migrations.AlterField(
            model_name="certificate",
            name="ca",
            field=models.ForeignKey(blank=True, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.PROTECT, related_name="certificates",
                                    to="certificates.certificateauthority"),
        ),
        migrations.AlterField(
            model_name="certificate",
            name="organization",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="certificates", to="mazevault.organization"),
        ),
        migrations.AlterField(
            model_name="certificate",
            name="project",
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="certificates", to="mazevault.project"),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["project", "-requested_at"], name="cert_project_requested_idx"),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["status", "-requested_at"], name="cert_status_requested_idx"),
        ),
        migrations.RunPython(create_trigram_index, drop_trigram_index, elidable=False),
    ]
