"""Make the audit table append-only in the database itself, and create the chain head."""

from django.db import migrations

from ildtrial.edc.audit import triggers


def forwards(apps, schema_editor):
    triggers.install(schema_editor.connection)
    apps.get_model("audit", "AuditHead").objects.get_or_create(pk=1)


def backwards(apps, schema_editor):
    triggers.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
