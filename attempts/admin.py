"""Admin of attempts, scoped like the API: read-only chats, transcript and grades; actions call services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from attempts import exports, lifecycle, selectors, tasks
from attempts.models import Attempt, Chat, Grade, Message
from glow.core.tasks import enqueue
from system.admin import ScopedReadOnlyAdmin
from system.staff import staff_actor

# The admin page shows a chat's transcript up to here; the export has all of it.
TRANSCRIPT_LIMIT = 300


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ChatInline(ReadOnlyInline):
    model = Chat
    fields = ["position", "scenario", "status", "started_at", "ended_at", "message_count", "grade"]
    readonly_fields = fields
    ordering = ["position"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("scenario", "grade")


class GradeInline(ReadOnlyInline):
    model = Grade
    fk_name = "attempt"
    fields = ["chat", "score", "points", "total_points", "passed", "source", "created_at"]
    readonly_fields = fields
    ordering = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("chat")


@admin.register(Attempt)
class AttemptAdmin(ScopedReadOnlyAdmin):
    list_display = [
        "title",
        "profile",
        "simulation",
        "status",
        "score",
        "passed",
        "practice",
        "archived",
        "started_at",
    ]
    list_filter = ["status", "practice", "archived", "infinite_mode", "department", "started_at"]
    list_select_related = ["profile__user", "simulation", "department"]
    search_fields = ["title"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    inlines = [ChatInline, GradeInline]
    actions = ["archive", "unarchive", "regrade", "export"]
    exclude = ["idempotency_key"]

    scope = staticmethod(selectors.attempt_queryset)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Attempt._meta.fields if field.name != "idempotency_key"] + [
            "transcript"
        ]

    @admin.display(description="Transcript")
    def transcript(self, obj: Attempt):
        parts = []
        for chat in selectors.chats_of(obj):
            rows = (
                Message.objects.filter(chat=chat)
                .order_by("seq")
                .values_list("role", "content", "stopped")[:TRANSCRIPT_LIMIT]
            )
            speaker = {"user": obj.profile.name, "assistant": chat.scenario.persona.title}
            lines = format_html_join(
                "",
                "<p><strong>{}</strong>: {}{}</p>",
                (
                    (speaker.get(role, role), content, " (stopped)" if stopped else "")
                    for role, content, stopped in rows
                ),
            )
            parts.append(
                format_html(
                    "<h3>Chat {}: {} ({})</h3>{}",
                    chat.position + 1,
                    chat.scenario.title,
                    chat.status,
                    lines,
                )
            )
        return format_html_join("", "{}", ((part,) for part in parts)) or "No messages."

    def _actor(self, request):
        actor = staff_actor(request)
        if actor is None:
            self.message_user(request, "Your account has no staff profile.", messages.ERROR)
        return actor

    @admin.action(description="Archive selected attempts")
    def archive(self, request, queryset):
        count, _ = lifecycle.attempt_archive(selection=queryset, archived=True)
        self.message_user(request, f"Archived {count} attempt(s).")

    @admin.action(description="Unarchive selected attempts")
    def unarchive(self, request, queryset):
        count, _ = lifecycle.attempt_archive(selection=queryset, archived=False)
        self.message_user(request, f"Unarchived {count} attempt(s).")

    @admin.action(description="Regrade the ended chats of selected attempts")
    def regrade(self, request, queryset):
        actor = self._actor(request)
        if actor is None:
            return
        ids = list(queryset.values_list("pk", flat=True))
        for attempt_id in ids:
            enqueue(tasks.attempt_regrade, str(attempt_id), str(actor.pk))
        self.message_user(request, f"Regrading {len(ids)} attempt(s) in the background.")

    @admin.action(description="Export selected attempts (ZIP)")
    def export(self, request, queryset):
        actor = self._actor(request)
        if actor is None:
            return
        result = exports.attempt_export(actor=actor, attempts=queryset, view="admin")
        url = reverse("media", args=[result.upload.pk])
        self.message_user(
            request,
            format_html(
                'Exported {} attempt(s), {} message(s): <a href="{}">{}</a>',
                result.row_count,
                result.message_count,
                url,
                result.upload.file_name,
            ),
        )
