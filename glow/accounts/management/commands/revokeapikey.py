"""`manage.py revokeapikey <prefix>`: the key answers 401 from then on."""

from django.core.management.base import BaseCommand, CommandError

from glow.accounts.models import ApiKey
from glow.accounts.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its prefix (the 8 characters after glow_)."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, prefix: str, **options):
        api_key = ApiKey.objects.select_related("profile__user").filter(prefix=prefix).first()
        if api_key is None:
            raise CommandError(f"No API key {prefix!r}.")
        if api_key.revoked_at is not None:
            self.stdout.write(f"API key {prefix} was already revoked at {api_key.revoked_at}.")
            return
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked API key {prefix} of {api_key.profile.user.get_username()}.")
