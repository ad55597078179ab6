"""Admin for tests and invocations: traces inline and read-only; secrets show labels, never values."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from tests_app import crypto
from tests_app.models import Feedback, Invocation, SecretKey, Test, TestGrade, ToolCall


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class InvocationInline(ReadOnlyInline):
    model = Invocation
    fields = ["position", "title", "status", "total_tokens", "cost", "error"]
    readonly_fields = fields
    ordering = ["position"]


@admin.register(Test)
class TestAdmin(admin.ModelAdmin):
    list_display = ["title", "organization", "eval", "status", "concurrency", "created_at"]
    list_filter = ["status", "archived", "organization"]
    list_select_related = ["organization", "eval"]
    search_fields = ["title", "eval__title"]
    readonly_fields = [
        "organization",
        "eval",
        "department",
        "status",
        "started_by",
        "created_by",
        "group",
        "axes",
        "completed_at",
        "idempotency_key",
        "version",
        "created_at",
        "updated_at",
    ]
    fields = ["title", "description", "concurrency", "archived", *readonly_fields]
    inlines = [InvocationInline]

    def has_add_permission(self, request) -> bool:
        return False  # tests start through test/start, which fans out and runs the cells


class ToolCallInline(ReadOnlyInline):
    model = ToolCall
    fields = ["position", "turn", "name", "arguments", "result"]
    readonly_fields = fields
    show_change_link = False


class GradeInline(admin.StackedInline):
    model = TestGrade
    extra = 0
    can_delete = False
    fields = ["score", "total_points", "full", "source", "groups", "feedback", "graded_by"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invocation)
class InvocationAdmin(admin.ModelAdmin):
    list_display = ["title", "test", "status", "total_tokens", "cost", "finished_at"]
    list_filter = ["status", "organization"]
    list_select_related = ["test", "model", "scenario", "agent"]
    search_fields = ["title", "test__title"]
    exclude = ["transcript"]
    readonly_fields = [
        "organization",
        "test",
        "title",
        "model",
        "scenario",
        "agent",
        "position",
        "status",
        "conversation",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "error",
        "key_ids",
        "run_id",
        "worker_token",
        "started_at",
        "finished_at",
        "created_at",
    ]
    fields = readonly_fields
    inlines = [ToolCallInline, GradeInline]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Transcript")
    def conversation(self, obj: Invocation) -> str:
        if not obj.transcript:
            return "—"
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li><strong>{}</strong> (turn {}): {}</li>",
                (
                    (message.get("role"), message.get("turn"), message.get("content"))
                    for message in obj.transcript
                ),
            ),
        )


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["grade", "tool_call", "standard_group", "score", "author", "updated_at"]
    list_select_related = ["grade", "tool_call", "standard_group", "author__user"]
    readonly_fields = ["organization", "grade", "tool_call", "standard_group", "author"]


class SecretKeyForm(forms.ModelForm):
    """The value is encrypted on save and never shown again."""

    value = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False)

    class Meta:
        model = SecretKey
        fields = ["organization", "label"]

    def save(self, commit=True):
        key = super().save(commit=False)
        key.ciphertext = crypto.encrypt(self.cleaned_data["value"], aad=key.aad)
        if commit:
            key.save()
        return key


@admin.register(SecretKey)
class SecretKeyAdmin(admin.ModelAdmin):
    list_display = ["label", "organization", "created_by", "created_at"]
    list_select_related = ["organization", "created_by__user"]
    search_fields = ["label"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SecretKeyForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["organization", "ciphertext_length", "created_by"] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "label", "value"]
        return ["label", "organization", "ciphertext_length", "created_by"]

    @admin.display(description="Encrypted bytes")
    def ciphertext_length(self, obj: SecretKey) -> int:
        return len(obj.ciphertext)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = getattr(request.user, "profile", None)
        super().save_model(request, obj, form, change)
