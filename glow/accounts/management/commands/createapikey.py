"""`manage.py createapikey <username> [--name NAME]`: prints the new key alone on its last line."""

from django.core.management.base import BaseCommand, CommandError

from glow.accounts.models import Profile
from glow.accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a user with a Glow profile; the key is printed once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="")

    def handle(self, *args, username: str, name: str, **options):
        profile = Profile.objects.filter(user__username=username).select_related("user").first()
        if profile is None:
            raise CommandError(f"No Glow profile for user {username!r}.")
        created = api_key_create(profile=profile, name=name or "created by createapikey")
        self.stderr.write(f"API key {created.api_key.prefix} for {username} (shown once):")
        self.stdout.write(created.plaintext)
