"""Trunks' digest passwords are sealed (apps/core/sealed.py) instead of stored in the clear:
each stored password is sealed on the way."""

from typing import Any

from django.db import migrations, models

PURPOSE = "spool.pstn.trunk-password"  # apps.pstn.models.PASSWORD_PURPOSE, as of this migration


def seal_passwords(apps: Any, schema_editor: Any) -> None:
    from apps.core.sealed import seal

    trunks = apps.get_model("pstn", "SipTrunk")
    for trunk in trunks.objects.exclude(digest_password=""):
        trunk.sealed_digest_password = seal(PURPOSE, trunk.digest_password)
        trunk.save(update_fields=["sealed_digest_password"])


def unseal_passwords(apps: Any, schema_editor: Any) -> None:
    from apps.core.sealed import unseal

    trunks = apps.get_model("pstn", "SipTrunk")
    for trunk in trunks.objects.exclude(sealed_digest_password=""):
        trunk.digest_password = unseal(PURPOSE, trunk.sealed_digest_password)
        trunk.save(update_fields=["digest_password"])


class Migration(migrations.Migration):
    dependencies = [("pstn", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="siptrunk",
            name="sealed_digest_password",
            field=models.TextField(blank=True),
        ),
        migrations.RunPython(seal_passwords, unseal_passwords),
        migrations.RemoveField(model_name="siptrunk", name="digest_password"),
    ]
