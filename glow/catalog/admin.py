"""Admin for the catalog: authoring pages with inlines, autocomplete, and archive actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet, Sum

from glow.catalog import models as m
from glow.core.services import artifact_archive

ARTIFACT_READONLY = ["version", "created_by", "created_at", "updated_at", "archived_at"]


def outsiders(value, organization_id) -> bool:
    """Does a cleaned value (a row, or many) reference another organization's row?"""
    rows = value if isinstance(value, QuerySet | list | tuple) else [value]
    return any(getattr(row, "organization_id", organization_id) != organization_id for row in rows)


class ArtifactAdminForm(forms.ModelForm):
    """References stay inside the row's organization, as the API's writes enforce."""

    def clean(self):
        cleaned = super().clean()
        organization = cleaned.get("organization")
        organization_id = organization.pk if organization else self.instance.organization_id
        for name, value in list(cleaned.items()):
            if name != "organization" and organization_id and outsiders(value, organization_id):
                self.add_error(name, "Pick one from the row's own organization.")
        return cleaned


class ArtifactAdmin(admin.ModelAdmin):
    """What every artifact page shares; subclasses add their columns, filters and inlines."""

    form = ArtifactAdminForm
    list_display = ["title", "organization", "archived", "version", "updated_at"]
    list_filter = ["archived", "organization"]
    list_select_related = ["organization"]
    search_fields = ["title", "description"]
    autocomplete_fields = ["organization"]
    readonly_fields = ARTIFACT_READONLY
    date_hierarchy = "created_at"
    actions = ["archive_selected", "unarchive_selected"]
    list_per_page = 50

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        profile = getattr(request.user, "profile", None)
        # Staff of one organization never see (or autocomplete) another organization's rows.
        return queryset.filter(organization_id=profile.organization_id if profile else None)

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = getattr(request.user, "profile", None)
        super().save_model(request, obj, form, change)

    @admin.action(description="Archive selected rows")
    def archive_selected(self, request, queryset):
        count = artifact_archive(selection=queryset, archived=True)
        self.message_user(request, f"Archived {count} row(s).")

    @admin.action(description="Unarchive selected rows")
    def unarchive_selected(self, request, queryset):
        count = artifact_archive(selection=queryset, archived=False)
        self.message_user(request, f"Unarchived {count} row(s).")


class DepartmentOwnedAdmin(ArtifactAdmin):
    list_display = ["title", "department", "organization", "archived", "version", "updated_at"]
    list_filter = ["archived", "organization", "department"]
    list_select_related = ["organization", "department"]
    autocomplete_fields = ["organization", "department"]


@admin.register(m.Persona)
class PersonaAdmin(DepartmentOwnedAdmin):
    list_display = [
        "title",
        "intensity",
        "voice",
        "department",
        "archived",
        "version",
        "updated_at",
    ]
    list_filter = [*DepartmentOwnedAdmin.list_filter, "intensity"]
    search_fields = ["title", "description", "voice"]


@admin.register(m.Document)
class DocumentAdmin(DepartmentOwnedAdmin):
    search_fields = ["title", "description", "text"]


@admin.register(m.Scenario)
class ScenarioAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "persona", "modality", "department", "archived", "version"]
    list_filter = [*DepartmentOwnedAdmin.list_filter, "modality"]
    list_select_related = ["organization", "department", "persona"]
    search_fields = ["title", "description", "context", "persona__title"]
    autocomplete_fields = ["organization", "department", "persona", "documents"]


class StandardInline(admin.TabularInline):
    model = m.Standard
    fields = ["position", "name", "description", "points"]
    extra = 1


@admin.register(m.StandardGroup)
class StandardGroupAdmin(admin.ModelAdmin):
    """A rubric's group with its standards inline (the rubric page links here per group)."""

    list_display = ["name", "rubric", "position", "points"]
    list_select_related = ["rubric"]
    list_filter = ["rubric__organization"]
    search_fields = ["name", "rubric__title"]
    autocomplete_fields = ["rubric"]
    inlines = [StandardInline]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).annotate(points_total=Sum("standards__points"))
        if request.user.is_superuser:
            return queryset
        profile = getattr(request.user, "profile", None)
        return queryset.filter(rubric__organization_id=profile.organization_id if profile else None)

    @admin.display(description="points", ordering="points_total")
    def points(self, group) -> int:
        return group.points_total or 0


@admin.register(m.Standard)
class StandardAdmin(admin.ModelAdmin):
    list_display = ["name", "group", "points", "position"]
    list_select_related = ["group__rubric"]
    list_filter = ["group__rubric__organization"]
    search_fields = ["name", "description", "group__name", "group__rubric__title"]
    autocomplete_fields = ["group"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        profile = getattr(request.user, "profile", None)
        return queryset.filter(
            group__rubric__organization_id=profile.organization_id if profile else None
        )


class StandardGroupInline(admin.TabularInline):
    model = m.StandardGroup
    fields = ["position", "name"]
    show_change_link = True  # standards are edited on the group's page
    extra = 1


@admin.register(m.Rubric)
class RubricAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "points", "department", "archived", "version", "updated_at"]
    inlines = [StandardGroupInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(points_total=Sum("groups__standards__points"))

    @admin.display(description="total points", ordering="points_total")
    def points(self, rubric) -> int:
        return rubric.points_total or 0


class SimulationScenarioForm(forms.ModelForm):
    def clean(self):
        cleaned = super().clean()
        organization_id = self.instance.simulation.organization_id
        scenario = cleaned.get("scenario")
        if scenario and organization_id and outsiders(scenario, organization_id):
            self.add_error("scenario", "Pick one from the simulation's own organization.")
        return cleaned


class SimulationScenarioInline(admin.TabularInline):
    model = m.SimulationScenario
    form = SimulationScenarioForm
    fields = ["position", "scenario"]
    autocomplete_fields = ["scenario"]
    ordering = ["position"]
    extra = 1


@admin.register(m.Simulation)
class SimulationAdmin(DepartmentOwnedAdmin):
    list_display = [
        "title",
        "rubric",
        "scenario_count",
        "time_limit_minutes",
        "pass_threshold",
        "department",
        "archived",
        "version",
    ]
    list_select_related = ["organization", "department", "rubric"]
    search_fields = ["title", "description", "rubric__title"]
    autocomplete_fields = ["organization", "department", "rubric"]
    inlines = [SimulationScenarioInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(scenarios_total=Count("simulation_scenarios"))

    @admin.display(description="scenarios", ordering="scenarios_total")
    def scenario_count(self, simulation) -> int:
        return simulation.scenarios_total


@admin.register(m.Home)
class HomeAdmin(DepartmentOwnedAdmin):
    list_display = [
        "title",
        "simulation",
        "cohort",
        "available_at",
        "due_at",
        "department",
        "archived",
        "version",
    ]
    list_filter = [*DepartmentOwnedAdmin.list_filter, "cohort"]
    list_select_related = ["organization", "department", "simulation", "cohort"]
    search_fields = ["title", "description", "simulation__title", "cohort__name"]
    autocomplete_fields = ["organization", "department", "simulation", "cohort"]


@admin.register(m.Practice)
class PracticeAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "simulation", "cohort", "department", "archived", "version"]
    list_filter = [*DepartmentOwnedAdmin.list_filter, "cohort"]
    list_select_related = ["organization", "department", "simulation", "cohort"]
    search_fields = ["title", "description", "simulation__title", "cohort__name"]
    autocomplete_fields = ["organization", "department", "simulation", "cohort"]


@admin.register(m.Model)
class LanguageModelAdmin(ArtifactAdmin):
    list_display = [
        "title",
        "provider",
        "provider_model",
        "input_price_per_million",
        "output_price_per_million",
        "archived",
        "version",
    ]
    list_filter = [*ArtifactAdmin.list_filter, "provider"]
    search_fields = ["title", "description", "provider_model"]


@admin.register(m.Tool)
class ToolAdmin(ArtifactAdmin):
    list_display = ["title", "name", "organization", "archived", "version"]
    search_fields = ["title", "description", "name"]


@admin.register(m.Agent)
class AgentAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "default_model", "department", "archived", "version", "updated_at"]
    list_select_related = ["organization", "department", "default_model"]
    search_fields = ["title", "description", "system_prompt"]
    autocomplete_fields = ["organization", "department", "default_model", "tools"]


@admin.register(m.Eval)
class EvalAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "rubric", "turns", "department", "archived", "version"]
    list_select_related = ["organization", "department", "rubric"]
    search_fields = ["title", "description", "rubric__title"]
    autocomplete_fields = ["organization", "department", "rubric", "scenarios"]
