"""`manage.py createapikey <username> [--name NAME] [--rotate PREFIX]`: prints the new key alone
on its last line; --rotate replaces that user's key PREFIX (same name, old key revoked)."""

from django.core.management.base import BaseCommand, CommandError

from glow.accounts.models import ApiKey, Profile
from glow.accounts.services import api_key_create, api_key_rotate
from glow.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create (or rotate) an API key for a user with a Glow profile; the key is printed once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--rotate", metavar="PREFIX", help="Replace this key of the user and revoke it."
        )

    def handle(self, *args, username: str, name: str, rotate: str | None, **options):
        profile = Profile.objects.filter(user__username=username).select_related("user").first()
        if profile is None:
            raise CommandError(f"No Glow profile for user {username!r}.")
        if rotate:
            old = ApiKey.objects.filter(profile=profile, prefix=rotate).first()
            if old is None:
                raise CommandError(f"User {username!r} has no API key {rotate!r}.")
            try:
                created = api_key_rotate(api_key=old)
            except ApplicationError as exc:
                raise CommandError(exc.detail) from exc
            self.stderr.write(
                f"API key {created.api_key.prefix} replaces {rotate} (now revoked) "
                f"for {username} (shown once):"
            )
        else:
            created = api_key_create(profile=profile, name=name or "created by createapikey")
            self.stderr.write(f"API key {created.api_key.prefix} for {username} (shown once):")
        self.stdout.write(created.plaintext)
