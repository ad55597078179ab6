"""Request and response shapes of the system ops (seed 003), read from the selectors' objects."""

from __future__ import annotations

import re

from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from glow.core.serializers import MAX_INT, RuledSerializer, StoredJSONField, at_least_one

DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


@extend_schema_field(
    {"oneOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
)
class DateOrDateTimeField(serializers.Field):
    """`2026-11-01` (a whole day) or a full ISO 8601 datetime."""

    default_error_messages = {"invalid": "Use a date (YYYY-MM-DD) or an ISO 8601 datetime."}

    def to_internal_value(self, data):
        if isinstance(data, str):
            # A bare date must stay a date (a whole day), not become midnight.
            parse = parse_date if DATE_ONLY.fullmatch(data.strip()) else parse_datetime
            try:
                value = parse(data.strip())
            except ValueError:
                value = None
            if value is not None:
                return value
        self.fail("invalid")

    def to_representation(self, value):
        return value.isoformat()


def _optional(field_class, **kwargs):
    return field_class(required=False, allow_null=True, **kwargs)


# -- requests -----------------------------------------------------------------------------------


class SessionRequest(serializers.Serializer):
    session_id = _optional(
        serializers.UUIDField, help_text="Omitted: the caller's current session."
    )
    id = _optional(serializers.UUIDField, help_text="Same as session_id.")
    event_types = _optional(
        serializers.ListField,
        child=serializers.CharField(max_length=60),
        max_length=100,
        help_text='Only timeline items of these types (e.g. "attempt.archived", "run.failed").',
    )


class SessionsRequest(serializers.Serializer):
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    page_offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_INT)
    page = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_INT, help_text="0-based."
    )
    sort_order = serializers.ChoiceField(choices=["asc", "desc"], required=False, default="desc")
    profile_ids = _optional(serializers.ListField, child=serializers.UUIDField())
    start_date = DateOrDateTimeField(required=False, allow_null=True)
    end_date = DateOrDateTimeField(required=False, allow_null=True, help_text="Inclusive day.")
    active = _optional(serializers.BooleanField)


class GroupRequest(serializers.Serializer):
    group_id = serializers.UUIDField()
    include_detail = serializers.BooleanField(required=False, default=False)


class ActivityRequest(serializers.Serializer):
    start_date = DateOrDateTimeField(required=False, allow_null=True)
    end_date = DateOrDateTimeField(required=False, allow_null=True)
    profile_ids = _optional(serializers.ListField, child=serializers.UUIDField())


class ExportRequest(RuledSerializer):
    target_session_id = _optional(serializers.UUIDField)
    session_id = _optional(serializers.UUIDField, help_text="Same as target_session_id.")
    given_rules = (
        at_least_one("target_session_id", "session_id", message="Give target_session_id."),
    )

    def validate(self, attrs):
        session_id = attrs.get("target_session_id") or attrs.get("session_id")
        if session_id is None:
            raise serializers.ValidationError({"target_session_id": ["This field is required."]})
        attrs["target_session_id"] = session_id
        return attrs


class RefreshRequest(serializers.Serializer):
    session_id = _optional(serializers.UUIDField, help_text="Omitted: every visible session.")


# -- responses ----------------------------------------------------------------------------------


class SessionGroupOut(serializers.Serializer):
    """ArtifactSessionGroup."""

    group_id = serializers.UUIDField(source="pk")
    group_name = serializers.CharField(source="name")
    family = serializers.CharField()
    artifact_id = serializers.UUIDField(allow_null=True)
    first_run_at = serializers.DateTimeField(allow_null=True)
    last_run_at = serializers.DateTimeField(allow_null=True)
    run_count = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    total_cost = serializers.CharField(help_text="Dollars, as a decimal string.")


class TimelineItemOut(serializers.Serializer):
    """SessionTimelineItem."""

    event_type = serializers.CharField()
    entity_id = serializers.CharField(allow_blank=True)
    entity_name = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    extra_1 = serializers.CharField(allow_blank=True)
    extra_2 = serializers.CharField(allow_blank=True)


class SessionDetailOut(serializers.Serializer):
    """GetSessionDetailResponse, from a selectors.SessionDetail."""

    session_exists = serializers.SerializerMethodField()
    actor_name = serializers.SerializerMethodField()
    session_id = serializers.UUIDField(source="session.pk")
    profile_id = serializers.UUIDField(source="session.profile_id")
    profile_name = serializers.CharField(source="session.profile.name")
    session_created_at = serializers.DateTimeField(source="session.created_at")
    last_seen_at = serializers.DateTimeField(source="session.last_seen_at")
    active = serializers.BooleanField(source="session.active")
    client_kind = serializers.CharField(source="session.client_kind")
    run_count = serializers.IntegerField(source="session.run_count")
    total_tokens = serializers.IntegerField(source="session.total_tokens")
    total_cost = serializers.CharField(source="session.total_cost")
    groups = SessionGroupOut(many=True)
    timeline = TimelineItemOut(many=True)

    def get_session_exists(self, detail) -> bool:
        return True

    def get_actor_name(self, detail) -> str:
        return self.context["actor"].name


class SessionRowOut(serializers.Serializer):
    session_id = serializers.UUIDField(source="pk")
    profile_id = serializers.UUIDField()
    profile_name = serializers.CharField(source="profile.name")
    session_created_at = serializers.DateTimeField(source="created_at")
    last_seen_at = serializers.DateTimeField()
    active = serializers.BooleanField()
    client_kind = serializers.CharField()
    group_count = serializers.IntegerField()
    run_count = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    total_cost = serializers.CharField()


class SessionsResponse(serializers.Serializer):
    actor_name = serializers.CharField()
    sessions = SessionRowOut(many=True)
    total_count = serializers.IntegerField()
    page_size = serializers.IntegerField()
    page_offset = serializers.IntegerField()


class EventOut(serializers.Serializer):
    seq = serializers.IntegerField()
    event_type = serializers.CharField()
    payload = StoredJSONField(serializers.DictField())
    created_at = serializers.DateTimeField()


class RunOut(serializers.Serializer):
    run_id = serializers.UUIDField(source="pk")
    kind = serializers.CharField()
    family = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    model_id = serializers.UUIDField(allow_null=True)
    model_name = serializers.SerializerMethodField()
    provider = serializers.CharField(allow_blank=True)
    provider_model = serializers.CharField(allow_blank=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.CharField(help_text="Dollars, as a decimal string.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    cancel_requested = serializers.BooleanField()
    client_run_id = serializers.CharField(allow_blank=True)
    mcp = serializers.BooleanField()
    artifact_id = serializers.UUIDField(allow_null=True)

    def get_model_name(self, run) -> str:
        return run.model.title if run.model_id else run.provider_model


class RunDetailOut(RunOut):
    """A run; with include_detail, also its messages, output and events (absent otherwise)."""

    messages = serializers.JSONField(required=False)
    output = serializers.CharField(allow_blank=True, required=False)
    events = EventOut(many=True, source="ordered_events", required=False)


class GroupResponse(serializers.Serializer):
    actor_name = serializers.SerializerMethodField()
    group_id = serializers.UUIDField(source="group.pk")
    group_name = serializers.CharField(source="group.name")
    family = serializers.CharField(source="group.family")
    artifact_id = serializers.UUIDField(source="group.artifact_id", allow_null=True)
    session_id = serializers.UUIDField(source="group.session_id")
    profile_id = serializers.UUIDField(source="group.profile_id")
    profile_name = serializers.CharField(source="group.profile.name")
    created_at = serializers.DateTimeField(source="group.created_at")
    first_run_at = serializers.DateTimeField(source="group.first_run_at", allow_null=True)
    last_run_at = serializers.DateTimeField(source="group.last_run_at", allow_null=True)
    run_count = serializers.IntegerField(source="group.run_count")
    total_tokens = serializers.IntegerField(source="group.total_tokens")
    total_cost = serializers.CharField(source="group.total_cost")
    runs = RunOut(many=True)

    def get_actor_name(self, data) -> str:
        return self.context["actor"].name


class GroupDetailResponse(GroupResponse):
    """With include_detail: each run's messages, output and events too."""

    runs = RunDetailOut(many=True)


class ActivityTotals(serializers.Serializer):
    session_count = serializers.IntegerField()
    run_count = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    total_cost = serializers.CharField()


class ActivityProfileOut(ActivityTotals):
    profile_id = serializers.UUIDField()
    profile_name = serializers.CharField()
    last_seen_at = serializers.DateTimeField(allow_null=True)


class ActivityDayOut(ActivityTotals):
    date = serializers.DateField(source="day")


class ActivityResponse(ActivityTotals):
    actor_name = serializers.SerializerMethodField()
    start_date = serializers.DateTimeField(source="start")
    end_date = serializers.DateTimeField(source="end", help_text="Exclusive.")
    attempt_count = serializers.IntegerField()
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="Counts other apps contribute, by name."
    )
    profile_count = serializers.IntegerField()
    profiles = ActivityProfileOut(many=True)
    days = ActivityDayOut(many=True)

    def get_actor_name(self, activity) -> str:
        return self.context["actor"].name
