"""Admin for accounts; a new API key's secret is shown once, right after it is saved."""

from django.contrib import admin, messages
from django.utils import timezone

from glow.accounts.models import ApiKey, Cohort, Department, Organization, Profile
from glow.accounts.services import api_key_create


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "organization"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name"]


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "department"]
    list_filter = ["organization", "department"]
    list_select_related = ["organization", "department"]
    search_fields = ["name"]
    autocomplete_fields = ["members", "department"]


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "organization", "role"]
    list_filter = ["organization", "role"]
    list_select_related = ["user", "organization"]
    search_fields = ["display_name", "user__username", "user__email"]
    autocomplete_fields = ["user", "departments"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "profile",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    list_select_related = ["profile__user"]
    search_fields = ["prefix", "name", "profile__user__username"]
    autocomplete_fields = ["profile"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["profile", "name", "expires_at"]
        return [
            "profile",
            "name",
            "prefix",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["profile", "prefix", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = api_key_create(profile=obj.profile, name=obj.name, expires_at=obj.expires_at)
        obj.pk = created.api_key.pk
        obj.prefix = created.api_key.prefix
        obj.hashed_key = created.api_key.hashed_key
        obj._state.adding = False
        messages.warning(
            request,
            f"New API key (copy it now, it is not shown again): {created.plaintext}",
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")
