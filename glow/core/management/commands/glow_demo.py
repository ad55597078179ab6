"""`manage.py glow_demo`: idempotent demo data, contributed by each app's `demo.seed()`."""

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create (or bring up to date) the demo organizations, people and content. Safe to rerun."

    def handle(self, *args, **options):
        for config in apps.get_app_configs():
            module_name = f"{config.name}.demo"
            if find_spec(module_name) is None:
                continue
            with transaction.atomic():
                import_module(module_name).seed(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
