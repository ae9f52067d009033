from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from biztel.audit import config_change_record, snapshot
from biztel.models import Account, Role
from biztel.tokens import token_issue


class Command(BaseCommand):
    help = "Issue an API token for an account (created if missing) and print the token alone."

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--role", choices=Role.values, help="Role of the account (set when given).")
        parser.add_argument("--groups", help="Comma-separated groups the account may see (empty: all).")
        parser.add_argument("--name", default="", help="A label for the token.")

    @transaction.atomic
    def handle(self, *args, username, role, groups, name, **options):
        account, created = Account.objects.get_or_create(username=username)
        before = None if created else snapshot(account)
        if created:
            account.set_unusable_password()
        if role is not None:
            account.role = role
        elif created:
            account.role = Role.ADMINISTRATOR
        if groups is not None:
            account.visible_groups = ",".join(g.strip() for g in groups.split(",") if g.strip())
        if not account.is_active:
            raise CommandError(f"account {username} is inactive")
        account.save()
        config_change_record(instance=account, before=before, after=snapshot(account))
        token, plain = token_issue(account=account, name=name)
        config_change_record(instance=token, before=None, after=snapshot(token))
        self.stdout.write(plain)
