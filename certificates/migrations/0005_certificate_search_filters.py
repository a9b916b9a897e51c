"""List filters people search by: serial number, SHA-256 fingerprint, source and SAN (issue 6).

- ``serial_number`` and ``fingerprint_sha256`` get plain btree indexes (exact lookups of the
  canonical colon-hex forms the filters normalise their input to); ``source`` gets a list index
  ending in the list order, like the other filters.
- ``san_search`` is a stored generated column: the SAN JSON list as lower-case text, computed by
  the database on every insert and update, so no write path (issuance, import, a bulk insert) can
  leave it stale. On PostgreSQL a pg_trgm GIN index on it serves both the exact filter
  (``LIKE '%"value"%'``) and the substring filter (``LIKE '%part%'``); on SQLite (the embedded
  default) that step does nothing and the filters scan.
"""
import django.db.models.functions.comparison
import django.db.models.functions.text
from django.db import migrations, models

TRIGRAM_INDEX = "cert_san_search_trgm_idx"


def create_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name(apps.get_model("certificates", "Certificate")._meta.db_table)
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON {table} USING gin (san_search gin_trgm_ops)")


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ("certificates", "0004_revocation_history"),
    ]

    operations = [
        migrations.AddField(
            model_name="certificate",
            name="san_search",
            field=models.GeneratedField(db_persist=True, expression=django.db.models.functions.text.Lower(
                django.db.models.functions.comparison.Cast("san", output_field=models.TextField())),
                output_field=models.TextField()),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["serial_number"], name="cert_serial_idx"),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["fingerprint_sha256"], name="cert_fingerprint_idx"),
        ),
        migrations.AddIndex(
            model_name="certificate",
            index=models.Index(fields=["source", "-requested_at", "-id"], name="cert_source_order_idx"),
        ),
        migrations.RunPython(create_trigram_index, drop_trigram_index, elidable=False),
    ]
