"""Generate or rotate Glow's LTI key pair (served at /lti/jwks/)."""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from lti_tool.models import Key


class Command(BaseCommand):
    help = (
        "Make sure Glow has an LTI signing key; --rotate adds a new one (used from now on) and "
        "retires keys older than --retire-after days from the JWKS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rotate", action="store_true")
        parser.add_argument("--retire-after", type=int, default=7)

    @transaction.atomic
    def handle(self, *args, rotate=False, retire_after=7, **options):
        if Key.objects.active().exists() and not rotate:
            self.stdout.write(f"Active key: {Key.objects.active().latest()}")
            return
        key = Key.objects.generate()
        retired = 0
        if rotate:
            cutoff = timezone.now() - timedelta(days=retire_after)
            retired = (
                Key.objects.active()
                .filter(datetime_created__lt=cutoff)
                .exclude(pk=key.pk)
                .update(is_active=False)
            )
        self.stdout.write(f"New key: {key} ({retired} retired from the JWKS).")
