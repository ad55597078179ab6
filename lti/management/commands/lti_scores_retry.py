"""Send every due score passback again (run from cron when no Celery worker retries them)."""

from django.core.management.base import BaseCommand

from lti import services


class Command(BaseCommand):
    help = "Send due (pending or failed) LTI score passbacks to their LMS now."

    def add_arguments(self, parser):
        parser.add_argument("--include-given-up", action="store_true")

    def handle(self, *args, include_given_up=False, **options):
        due = services.passbacks_due(include_given_up=include_given_up)
        sent = failed = 0
        for pk in list(due.values_list("pk", flat=True)):
            if services.passback_send(passback_id=pk) is None:
                sent += 1
            else:
                failed += 1
        self.stdout.write(f"{sent} sent or settled, {failed} failed (will retry).")
