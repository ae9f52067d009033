import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Make what the embedded single-machine install keeps in BIZTEL_VAR_DIR: its secret key, "
        "once (deploy/run-local.sh runs this before anything else)."
    )

    def handle(self, *args, **options):
        if os.environ.get("SECRET_KEY"):
            return
        path = settings.VAR_DIR / "secret_key"
        if path.exists():
            return
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        # Created private: the key must never be readable by another user, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50))
        self.stdout.write(f"made a secret key in {path}")
