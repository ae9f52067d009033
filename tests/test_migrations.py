from io import StringIO

from django.core.management import call_command


def test_every_model_change_has_its_migration(db):
    # exits non-zero (SystemExit) when a model differs from its migrations
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())
