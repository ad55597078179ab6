"""Read-only admin of the books, scoped like the API, each row linked to its staff drill-down."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils.html import format_html

from system import selectors
from system.models import Event, Group, Run, Session, TimelineEvent
from system.staff import staff_actor


class IdInputFilter(admin.SimpleListFilter):
    """A text box instead of a list: sessions number in the hundreds of thousands."""

    template = "admin/system/input_filter.html"
    field_path = ""

    def lookups(self, request, model_admin):
        # One dummy choice keeps the filter displayed; the template draws a text box instead.
        return [("", "")]

    def choices(self, changelist):
        everything = next(super().choices(changelist))
        everything["query_parts"] = [
            (key, value)
            for key, values in changelist.get_filters_params().items()
            if key != self.parameter_name
            for value in values
        ]
        yield everything

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        try:
            return queryset.filter(**{self.field_path: uuid.UUID(value)})
        except ValueError:
            return queryset.none()


class SessionFilter(IdInputFilter):
    title = "session id"
    parameter_name = "session"
    field_path = "session_id"


class ProfileFilter(IdInputFilter):
    """By profile id, or by username / display name."""

    title = "person (id or name)"
    parameter_name = "person"
    field_path = "profile_id"
    name_paths = ("profile__user__username__iexact", "profile__display_name__icontains")

    def queryset(self, request, queryset):
        value = (self.value() or "").strip()
        if not value:
            return queryset
        try:
            return queryset.filter(**{self.field_path: uuid.UUID(value)})
        except ValueError:
            query = Q()
            for path in self.name_paths:
                query |= Q(**{path: value})
            return queryset.filter(query)


class ActorFilter(ProfileFilter):
    field_path = "actor_id"
    name_paths = ("actor__user__username__iexact", "actor__display_name__icontains")


class EventSessionFilter(SessionFilter):
    field_path = "group__session_id"


class ScopedReadOnlyAdmin(admin.ModelAdmin):
    """Staff read what `scope(actor=)` lets them see through the API; nobody adds, edits or
    deletes here (services write these rows). Superusers without a staff profile see all."""

    scope = None  # staticmethod(selector(actor=) -> QuerySet), set by each admin

    def has_module_permission(self, request):
        return request.user.is_superuser or staff_actor(request) is not None

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        actor = staff_actor(request)
        if actor is not None:
            return queryset.filter(pk__in=self.scope(actor=actor).values("pk"))
        return queryset if request.user.is_superuser else queryset.none()


class BooksAdmin(ScopedReadOnlyAdmin):
    """Nothing here is edited by hand: the books are written by services only."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    scope = staticmethod(selectors.session_queryset)

    def get_fields(self, request, obj=None):
        fields = [name for name in super().get_fields(request, obj) if name != "staff_page"]
        return ["staff_page", *fields] if "staff_page" in self.readonly_fields else fields


def _link(url: str, text: str):
    return format_html('<a href="{}">{}</a>', url, text)


@admin.register(Session)
class SessionAdmin(BooksAdmin):
    list_display = [
        "created_at",
        "profile",
        "client_kind",
        "active",
        "group_count",
        "run_count",
        "total_tokens",
        "total_cost",
        "last_seen_at",
        "staff_page",
    ]
    list_filter = [ProfileFilter, "client_kind", "active", "created_at"]
    list_select_related = ["profile__user"]
    date_hierarchy = "created_at"
    readonly_fields = ["staff_page"]

    @admin.display(description="Drill-down")
    def staff_page(self, obj):
        return _link(reverse("staff-session", args=[obj.pk]), "Open session page")


@admin.register(Group)
class GroupAdmin(BooksAdmin):
    list_display = [
        "name",
        "family",
        "profile",
        "created_at",
        "run_count",
        "total_tokens",
        "total_cost",
        "staff_page",
    ]
    list_filter = [SessionFilter, ProfileFilter, "family", "created_at"]
    list_select_related = ["profile__user"]
    readonly_fields = ["staff_page"]
    scope = staticmethod(selectors.group_queryset)

    @admin.display(description="Drill-down")
    def staff_page(self, obj):
        return _link(reverse("staff-group", args=[obj.pk]), "Open group page")


@admin.register(Run)
class RunAdmin(BooksAdmin):
    list_display = [
        "created_at",
        "kind",
        "model",
        "status",
        "total_tokens",
        "cost",
        "latency_ms",
        "profile",
        "staff_page",
    ]
    list_filter = [
        SessionFilter,
        ProfileFilter,
        "status",
        ("model", admin.RelatedOnlyFieldListFilter),
        "kind",
        "created_at",
    ]
    list_select_related = ["model", "profile__user"]
    readonly_fields = ["staff_page"]
    scope = staticmethod(selectors.run_queryset)

    @admin.display(description="Drill-down")
    def staff_page(self, obj):
        url = reverse("staff-group", args=[obj.group_id])
        return _link(f"{url}#run-{obj.pk}", "Open in its group page")


@admin.register(Event)
class EventAdmin(BooksAdmin):
    list_display = ["id", "event_type", "seq", "run", "created_at", "staff_page"]
    list_filter = [EventSessionFilter, "event_type", "created_at"]
    list_select_related = ["run"]
    readonly_fields = ["staff_page"]

    @staticmethod
    def scope(*, actor):
        return Event.objects.filter(group__in=selectors.group_queryset(actor=actor))

    @admin.display(description="Drill-down")
    def staff_page(self, obj):
        url = reverse("staff-group", args=[obj.group_id])
        return _link(f"{url}#run-{obj.run_id}", "Open in its group page")


@admin.register(TimelineEvent)
class TimelineEventAdmin(BooksAdmin):
    list_display = ["created_at", "event_type", "entity_name", "actor", "extra_1", "staff_page"]
    list_filter = [SessionFilter, ActorFilter, "event_type", "created_at"]
    list_select_related = ["actor__user"]
    readonly_fields = ["staff_page"]

    @staticmethod
    def scope(*, actor):
        return TimelineEvent.objects.filter(
            organization_id=actor.organization_id,
            actor__in=selectors.visible_profiles(actor=actor),
        )

    @admin.display(description="Drill-down")
    def staff_page(self, obj):
        if not obj.session_id:
            return "—"
        return _link(reverse("staff-session", args=[obj.session_id]), "Open its session page")
