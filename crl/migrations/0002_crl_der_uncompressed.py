"""Store CRL DER uncompressed (PostgreSQL TOAST ``EXTERNAL``): signed DER barely compresses, and
compressing a 50 MB CRL on every publication costs more than the bytes it would save."""
from django.db import migrations


def external_storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute('ALTER TABLE "crl_crl" ALTER COLUMN "der" SET STORAGE EXTERNAL')


class Migration(migrations.Migration):
    dependencies = [("crl", "0001_crls")]

    operations = [migrations.RunPython(external_storage, migrations.RunPython.noop)]
