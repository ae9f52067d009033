import io

import qrcode
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from biztel import twofactor
from biztel.audit import config_change_record, snapshot
from biztel.models import Account


class Command(BaseCommand):
    help = (
        "Give a staff account a new authenticator (TOTP) key and new recovery codes, and print them: "
        "the otpauth:// URL on the first line, its QR code, then the recovery codes, one a line. "
        "Keys and codes the account had before stop working."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--name", default="authenticator", help="A label for the device.")

    @transaction.atomic
    def handle(self, *args, username, name, **options):
        account = Account.objects.filter(username=username).first()
        if account is None:
            raise CommandError(f"no account {username}")
        device = twofactor.totp_enrol(account=account, name=name)
        config_change_record(instance=device, before=None, after=snapshot(device))
        codes = twofactor.recovery_codes_issue(account=account)
        qr = qrcode.QRCode(border=1)
        qr.add_data(device.config_url)
        picture = io.StringIO()
        qr.print_ascii(out=picture)
        self.stdout.write(device.config_url)
        self.stdout.write(picture.getvalue())
        self.stdout.write("Scan the code (or enter the URL's secret) in an authenticator app. Recovery codes, each works once:")
        self.stdout.write("\n".join(codes))
