from django.core.management import call_command
from django.db import migrations


def forwards(apps, schema_editor):
    apps.get_model("mazevault", "AuditChainHead").objects.get_or_create(pk=1)
    # The embedded rate-limit counters live in the database cache; its table comes with migrate.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("mazevault", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
