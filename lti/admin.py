"""Admin: bind a platform registration to an organization, follow score passbacks, sync rosters."""

from __future__ import annotations

from django.contrib import admin, messages
from lti_tool.admin import LtiRegistrationAdmin
from lti_tool.models import LtiRegistration

from glow.core.errors import ApplicationError
from lti import services
from lti.models import CourseLink, PassbackStatus, RegistrationBinding, ScorePassback


class RegistrationBindingInline(admin.StackedInline):
    model = RegistrationBinding
    can_delete = False
    verbose_name = "Glow organization"
    verbose_name_plural = "Glow organization (launches sign people into it)"


admin.site.unregister(LtiRegistration)


@admin.register(LtiRegistration)
class GlowLtiRegistrationAdmin(LtiRegistrationAdmin):
    inlines = [RegistrationBindingInline, *LtiRegistrationAdmin.inlines]


@admin.register(ScorePassback)
class ScorePassbackAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "label",
        "learner",
        "score",
        "status",
        "tries",
        "next_try_at",
        "last_error_short",
    ]
    list_filter = ["status"]
    list_select_related = ["launched__attempt__profile__user"]
    readonly_fields = [f.name for f in ScorePassback._meta.fields]
    actions = ["send_again"]

    @admin.display(description="learner")
    def learner(self, obj):
        return obj.launched.attempt.profile

    @admin.display(description="last error")
    def last_error_short(self, obj):
        return obj.last_error[:120]

    @admin.action(description="Send the selected scores again now")
    def send_again(self, request, queryset):
        count = services.passback_retry(
            passback_ids=list(
                queryset.exclude(status=PassbackStatus.SENT).values_list("pk", flat=True)
            )
        )
        self.message_user(request, f"{count} score(s) queued for the LMS.")

    def has_add_permission(self, request):
        return False


@admin.register(CourseLink)
class CourseLinkAdmin(admin.ModelAdmin):
    list_display = ["context", "cohort", "synced_at", "synced_count"]
    list_select_related = ["context", "cohort"]
    actions = ["sync_roster"]

    @admin.action(description="Sync the LMS roster into the cohort (Names and Roles)")
    def sync_roster(self, request, queryset):
        for course in queryset:
            try:
                count = services.roster_sync(course=course)
            except ApplicationError as exc:
                self.message_user(request, f"{course}: {exc.detail}", messages.ERROR)
            except Exception as exc:  # the LMS answered badly or not at all
                self.message_user(request, f"{course}: the LMS failed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{course}: {count} learner(s) in {course.cohort}.")
