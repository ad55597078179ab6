"""Sync LMS course rosters (LTI Names and Roles) into their Glow cohorts."""

from django.core.management.base import BaseCommand, CommandError

from glow.core.errors import ApplicationError
from lti import services
from lti.models import CourseLink


class Command(BaseCommand):
    help = "Sync the roster of LMS courses launched into Glow into each course's cohort."

    def add_arguments(self, parser):
        parser.add_argument("--context", help="an LMS context id (default: every course)")

    def handle(self, *args, context=None, **options):
        courses = CourseLink.objects.select_related("context__deployment__registration", "cohort")
        if context:
            courses = courses.filter(context__id_on_platform=context)
        if not courses:
            raise CommandError("No launched LMS course matches.")
        for course in courses:
            try:
                count = services.roster_sync(course=course)
            except ApplicationError as exc:
                raise CommandError(f"{course}: {exc.detail}")
            self.stdout.write(f"{course}: {count} learner(s) in cohort {course.cohort}.")
