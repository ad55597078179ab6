"""Admin for the catalog: authoring pages with inlines, autocomplete, and archive actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet, Sum

from glow.accounts.models import Profile
from glow.catalog import models as m
from glow.core.registry import registry
from glow.core.routers import op_allows
from glow.core.services import artifact_archive

ARTIFACT_READONLY = ["version", "created_by", "created_at", "updated_at", "archived_at"]
# Related models an instructor's admin pages must not autocomplete across organizations.
UNSCOPED_AUTOCOMPLETE = {"organization", "department", "cohort"}


def admin_actor(request) -> Profile | None:
    """The signed-in user's Glow profile, read once per request."""
    if not hasattr(request, "_glow_actor"):
        request._glow_actor = (
            Profile.objects.filter(user_id=request.user.pk).select_related("user").first()
            if request.user.is_authenticated
            else None
        )
    return request._glow_actor


class FamilyPermissions:
    """The admin asks the API's own declaration of its `publish` op (`op_allows`: the family's
    write roles, as draft, publish and archive declare them), instead of Django's per-model permissions (which no instructor held, so every
    catalog page answered 403 to a role the API let publish). Staff roles may view; deleting is
    left to superusers (the API archives instead). Inlines ask their parent's family."""

    family_name: str | None = None

    def family(self):
        return (
            registry.get(self.family_name) if self.family_name else registry.for_model(self.model)
        )

    def may_view(self, request) -> bool:
        if request.user.is_superuser:
            return True
        actor = admin_actor(request)
        return actor is not None and actor.is_staff_role

    def may_write(self, request) -> bool:
        if request.user.is_superuser:
            return True
        actor = admin_actor(request)
        family = self.family()
        return actor is not None and family is not None and op_allows(family, "publish", actor)

    def has_module_permission(self, request):
        return self.may_view(request)

    def has_view_permission(self, request, obj=None):
        return self.may_view(request)

    def has_add_permission(self, request, *args):
        return self.may_write(request)

    def has_change_permission(self, request, obj=None):
        return self.may_write(request)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class InlinePermissions(FamilyPermissions):
    def has_delete_permission(self, request, obj=None):
        return self.may_write(request)  # removing a row of the parent is an edit of the parent


def organization_scoped(db_field, request, kwargs: dict) -> dict:
    """A non-superuser's choices of related rows stay inside their organization."""
    if request.user.is_superuser:
        return kwargs
    actor = admin_actor(request)
    related = db_field.related_model
    if any(f.name == "organization" for f in related._meta.fields):
        kwargs["queryset"] = related._default_manager.filter(
            organization_id=actor.organization_id if actor else None
        )
    return kwargs


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


class ArtifactAdmin(FamilyPermissions, admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        # Staff of one organization write only in it: the row's organization is theirs.
        return fields if request.user.is_superuser else [*fields, "organization"]

    def get_autocomplete_fields(self, request):
        fields = super().get_autocomplete_fields(request)
        if request.user.is_superuser:
            return fields
        return [name for name in fields if name not in UNSCOPED_AUTOCOMPLETE]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(
            db_field, request, **organization_scoped(db_field, request, kwargs)
        )

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return super().formfield_for_manytomany(
            db_field, request, **organization_scoped(db_field, request, kwargs)
        )

    def save_model(self, request, obj, form, change):
        actor = admin_actor(request)
        if not change and obj.created_by_id is None:
            obj.created_by = actor
        if not change and not request.user.is_superuser and actor is not None:
            obj.organization_id = actor.organization_id
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


class LinesField(forms.CharField):
    """A list of short strings edited one per line (traits), not as JSON."""

    widget = forms.Textarea(attrs={"rows": 5, "cols": 40})

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]


class PersonaAdminForm(ArtifactAdminForm):
    traits = LinesField(required=False, help_text="One trait per line, e.g. anxious.")


@admin.register(m.Persona)
class PersonaAdmin(DepartmentOwnedAdmin):
    form = PersonaAdminForm
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
    autocomplete_fields = ["organization", "department", "persona", "documents", "input_fields"]


class StandardInline(InlinePermissions, admin.TabularInline):
    family_name = "rubric"
    model = m.Standard
    fields = ["position", "name", "description", "points"]
    extra = 1


@admin.register(m.StandardGroup)
class StandardGroupAdmin(FamilyPermissions, admin.ModelAdmin):
    """A rubric's group with its standards inline (the rubric page links here per group)."""

    family_name = "rubric"
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
class StandardAdmin(FamilyPermissions, admin.ModelAdmin):
    family_name = "rubric"
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


class StandardGroupInline(InlinePermissions, admin.TabularInline):
    family_name = "rubric"
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


class SimulationScenarioInline(InlinePermissions, admin.TabularInline):
    family_name = "simulation"
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


@admin.register(m.AIModel)
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
    autocomplete_fields = ["organization", "input_fields"]


@admin.register(m.InputField)
class InputFieldAdmin(ArtifactAdmin):
    list_display = ["title", "name", "type", "required", "organization", "archived", "version"]
    list_filter = [*ArtifactAdmin.list_filter, "type", "required"]
    search_fields = ["title", "description", "name"]


@admin.register(m.ParameterSet)
class ParameterSetAdmin(ArtifactAdmin):
    list_display = [
        "title",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "organization",
        "archived",
        "version",
    ]


@admin.register(m.Agent)
class AgentAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "default_model", "department", "archived", "version", "updated_at"]
    list_select_related = ["organization", "department", "default_model"]
    search_fields = ["title", "description", "system_prompt"]
    autocomplete_fields = ["organization", "department", "default_model", "parameter_set", "tools"]


@admin.register(m.Eval)
class EvalAdmin(DepartmentOwnedAdmin):
    list_display = ["title", "rubric", "turns", "department", "archived", "version"]
    list_select_related = ["organization", "department", "rubric"]
    search_fields = ["title", "description", "rubric__title"]
    autocomplete_fields = ["organization", "department", "rubric", "scenarios", "input_fields"]
