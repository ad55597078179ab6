"""`manage.py glow_op_table`: the op tables of docs/architecture.md, regenerated from the registry."""

from django.core.management.base import BaseCommand, CommandError

from glow.core import optable


class Command(BaseCommand):
    help = (
        "Print where each op's code lives (family, op, view, the services and selectors it "
        "calls); --write puts it into docs/architecture.md, --check fails if that is stale."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--write", action="store_true", help="Update docs/architecture.md.")
        group.add_argument(
            "--check", action="store_true", help="Exit 1 if docs/architecture.md is stale."
        )

    def handle(self, *args, **options):
        if not (options["write"] or options["check"]):
            self.stdout.write(optable.tables())
            return
        path = optable.document()
        text = path.read_text()
        if optable.START not in text or optable.END not in text:
            raise CommandError(f"{path} lacks the op-table markers.")
        fresh = optable.rendered(text)
        if options["check"]:
            if fresh != text:
                raise CommandError(f"{path} is stale: run manage.py glow_op_table --write.")
            return
        path.write_text(fresh)
        self.stdout.write(f"Wrote {path}.")
