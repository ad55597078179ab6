"""`manage.py glow_demo`: demo data, contributed by each app's `demo.seed()`.

It creates what is missing and leaves existing rows alone (an instructor's edits survive `make
run`); `--reset` writes the demo's values back over the demo rows, as it used to every run.
"""

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from glow.core.seeding import demo_run


class Command(BaseCommand):
    help = (
        "Create the demo organizations, people and content that are missing; rows already there "
        "are left as they are (--reset puts the demo's values back). Safe to rerun."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Write the demo's values back over demo rows that were edited since.",
        )

    def handle(self, *args, **options):
        with demo_run(reset=options["reset"]):
            for config in apps.get_app_configs():
                module_name = f"{config.name}.demo"
                if find_spec(module_name) is None:
                    continue
                with transaction.atomic():
                    import_module(module_name).seed(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
