"""Admin for accounts; a new API key's secret is shown once, right after it is saved.

Key creation, rotation and revocation and role changes go through the services, which audit them.
"""

from django.contrib import admin, messages

from glow.accounts.models import ApiKey, Cohort, Department, Organization, Profile
from glow.accounts.services import (
    api_key_create,
    api_key_revoke,
    api_key_rotate,
    profile_role_set,
)


def acting_profile(request) -> Profile | None:
    """The signed-in admin user's Glow profile (a bare superuser has none)."""
    return Profile.objects.filter(user_id=request.user.pk).first()


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

    def save_model(self, request, obj, form, change):
        if not (change and "role" in form.changed_data):
            super().save_model(request, obj, form, change)
            return
        role = obj.role
        obj.role = form.initial["role"]  # the other fields are saved first; the service changes
        super().save_model(request, obj, form, change)  # the role and audits it
        profile_role_set(profile=obj, role=role, actor=acting_profile(request), request=request)


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
    actions = ["revoke", "rotate"]

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
        created = api_key_create(
            profile=obj.profile,
            name=obj.name,
            expires_at=obj.expires_at,
            actor=acting_profile(request),
            request=request,
        )
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
        actor = acting_profile(request)
        keys = list(queryset.filter(revoked_at__isnull=True).select_related("profile__user"))
        for key in keys:
            api_key_revoke(api_key=key, actor=actor, request=request)
        self.message_user(request, f"Revoked {len(keys)} key(s).")

    @admin.action(description="Rotate selected keys (new secrets, old keys revoked)")
    def rotate(self, request, queryset):
        actor = acting_profile(request)
        for key in queryset.filter(revoked_at__isnull=True).select_related("profile__user"):
            created = api_key_rotate(api_key=key, actor=actor, request=request)
            messages.warning(
                request,
                f"Key {key.prefix} is revoked; its replacement (copy it now, it is not shown "
                f"again): {created.plaintext}",
            )
