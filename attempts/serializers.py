"""Request and response shapes of the attempt ops (seeds 000 and 001; DESIGN section 3)."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from attempts.models import GRADE_ENTRY_KINDS, Attempt
from glow.core.exports import ExportResponse
from glow.core.serializers import (
    JSONObjectField,
    MapField,
    OutputModelSerializer,
    RuledSerializer,
    StrictUUIDField,
    at_least_one,
    exactly_one,
)

MAX_MESSAGE_CHARS = 20_000
MAX_ENTRIES = 100


class EntryList(serializers.ListField):
    """A list of entry objects; a plain string item is read as {"content": item}."""

    def __init__(self, child, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault("max_length", MAX_ENTRIES)
        super().__init__(child=child, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list):
            data = [{"content": item} if isinstance(item, str) else item for item in data]
        return [dict(item) for item in super().to_internal_value(data)]


def _text(max_length: int = 5000, **kwargs):
    return serializers.CharField(max_length=max_length, **kwargs)


def _optional(max_length: int = 5000):
    return serializers.CharField(
        max_length=max_length, required=False, allow_blank=True, allow_null=True
    )


class AttemptGradeFeedbackEntry(serializers.Serializer):
    content = _text()
    standard_id = _optional(100)


class AttemptGradeStrengthEntry(serializers.Serializer):
    content = _text()
    standard_id = _optional(100)


class AttemptGradeImprovementEntry(serializers.Serializer):
    content = _text()
    standard_id = _optional(100)
    suggestion = _optional()


class AttemptGradeAnalysisEntry(serializers.Serializer):
    title = _optional(300)
    content = _text()
    group_id = _optional(100)


class AttemptGradeHighlightEntry(serializers.Serializer):
    quote = _text()
    comment = _optional()
    message_id = _optional(100)


class AttemptGradeReplacementEntry(serializers.Serializer):
    original = _text()
    replacement = _text()
    reason = _optional()
    message_id = _optional(100)


class AttemptHintEntry(serializers.Serializer):
    type = serializers.CharField(max_length=40, default="suggestion")
    content = _text()


class AttemptContentEntry(serializers.Serializer):
    type = serializers.CharField(max_length=40, default="text")
    content = _optional(MAX_MESSAGE_CHARS)
    data = JSONObjectField(required=False, allow_null=True)


ENTRY_KINDS = dict(
    zip(
        GRADE_ENTRY_KINDS,
        (
            AttemptGradeFeedbackEntry,
            AttemptGradeStrengthEntry,
            AttemptGradeImprovementEntry,
            AttemptGradeAnalysisEntry,
            AttemptGradeHighlightEntry,
            AttemptGradeReplacementEntry,
        ),
        strict=True,
    )
)


def grade_fields() -> dict:
    """What an agent client may send instead of asking the AI to grade."""
    return {
        "score": serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=100, help_text="Percent."
        ),
        "passed": serializers.BooleanField(required=False, allow_null=True),
        "time_taken": serializers.IntegerField(
            required=False, allow_null=True, min_value=0, help_text="Seconds."
        ),
        **{name: EntryList(child=entry()) for name, entry in ENTRY_KINDS.items()},
    }


def _request(name: str, fields: dict, validate=None, rules=()) -> type:
    attrs = dict(fields)
    if validate is not None:
        attrs["validate"] = validate
    if rules:
        attrs["given_rules"] = rules
    return type(name, (RuledSerializer if rules else serializers.Serializer,), attrs)


def _attempt_id(required: bool = True):
    return StrictUUIDField(required=required)


# -- requests ---------------------------------------------------------------------------------


def _one_attempt(self, attrs):
    attrs["attempt_id"] = attrs.get("attempt_id") or attrs.get("id")
    if attrs["attempt_id"] is None:
        raise serializers.ValidationError({"attempt_id": ["This field is required."]})
    return attrs


class AttemptStartRequest(RuledSerializer):
    home_id = StrictUUIDField(required=False, allow_null=True)
    practice_id = StrictUUIDField(required=False, allow_null=True)
    infinite_mode = serializers.BooleanField(required=False, default=False)

    given_rules = (exactly_one("home_id", "practice_id"),)


AttemptGetRequest = _request(
    "AttemptGetRequest",
    {
        "attempt_id": _attempt_id(False),
        "id": StrictUUIDField(required=False, help_text="Same as attempt_id."),
        "chat_id": StrictUUIDField(
            required=False, allow_null=True, help_text="Default: the current chat."
        ),
    },
    _one_attempt,
    rules=(at_least_one("attempt_id", "id", message="Give attempt_id."),),
)

AttemptNextRequest = _request(
    "AttemptNextRequest",
    {
        "attempt_id": _attempt_id(),
        "draft_id": StrictUUIDField(
            required=False, allow_null=True, help_text="Accepted for compatibility; unused."
        ),
    },
)

AttemptMessageRequest = _request(
    "AttemptMessageRequest",
    {
        "attempt_id": _attempt_id(),
        "chat_id": StrictUUIDField(),
        "message": serializers.CharField(max_length=MAX_MESSAGE_CHARS, trim_whitespace=True),
        "parent_message_id": StrictUUIDField(required=False, allow_null=True),
        "assistant_content": serializers.CharField(
            max_length=MAX_MESSAGE_CHARS, required=False, allow_null=True, allow_blank=True
        ),
        "hints": EntryList(child=AttemptHintEntry()),
        "contents": EntryList(child=AttemptContentEntry()),
    },
)

AttemptEndRequest = _request(
    "AttemptEndRequest",
    {
        "attempt_id": _attempt_id(),
        "chat_id": StrictUUIDField(),
        "grade": serializers.BooleanField(required=False, default=False),
        **grade_fields(),
    },
)

AttemptEndAllRequest = _request("AttemptEndAllRequest", {"attempt_id": _attempt_id()})

AttemptGradeRequest = _request(
    "AttemptGradeRequest",
    {
        "attempt_id": _attempt_id(),
        "chat_id": StrictUUIDField(
            required=False, allow_null=True, help_text="Default: the current chat."
        ),
        "resource_types": serializers.ListField(
            child=serializers.ChoiceField(choices=sorted(ENTRY_KINDS)),
            required=False,
            allow_null=True,
            help_text="Regenerate only these entry lists; the others are kept.",
        ),
        "user_instructions": serializers.ListField(
            child=serializers.CharField(max_length=2000),
            required=False,
            allow_null=True,
            max_length=20,
        ),
        **grade_fields(),
    },
)

AttemptCompleteRequest = _request(
    "AttemptCompleteRequest",
    {
        "attempt_id": _attempt_id(),
        "message": serializers.CharField(
            max_length=2000, required=False, allow_blank=True, allow_null=True
        ),
    },
)


class AttemptStopRequest(RuledSerializer):
    chat_id = StrictUUIDField(required=False, allow_null=True)
    group_id = StrictUUIDField(required=False, allow_null=True)
    attempt_id = StrictUUIDField(required=False, allow_null=True)

    given_rules = (at_least_one("chat_id", "group_id"),)


AttemptResponseRequest = _request(
    "AttemptResponseRequest",
    {
        "chat_id": StrictUUIDField(),
        "question_id": serializers.CharField(max_length=100),
        "option_ids": serializers.ListField(
            child=serializers.CharField(max_length=100), max_length=50
        ),
    },
)


class AttemptUsePreviousRequest(serializers.Serializer):
    attempt_id = StrictUUIDField()
    # A key that is not a chat of this attempt (a UUID or not) is refused by the op, naming it.
    previous_chat_map = MapField(
        child=StrictUUIDField(),
        allow_empty=False,
        max_length=200,
        help_text="This attempt's chat id -> the earlier attempt's chat id to copy the grade from.",
    )


def _attempt_or_group(self, attrs):
    attrs["attempt_id"] = attrs.get("attempt_id") or attrs.get("id")
    if not (attrs["attempt_id"] or attrs.get("group_id")):
        raise serializers.ValidationError({"attempt_id": ["Give attempt_id or group_id."]})
    return attrs


AttemptGroupRequest = _request(
    "AttemptGroupRequest",
    {
        "attempt_id": _attempt_id(False),
        "id": StrictUUIDField(required=False),
        "group_id": StrictUUIDField(required=False, allow_null=True),
    },
    _attempt_or_group,
    rules=(at_least_one("attempt_id", "id", "group_id", message="Give attempt_id or group_id."),),
)


# -- responses --------------------------------------------------------------------------------


class AttemptStartResponse(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    chat_entry_id = serializers.UUIDField(allow_null=True)
    attempt_chat_id = serializers.UUIDField(allow_null=True)
    chat_ids = serializers.ListField(child=serializers.UUIDField())
    group_id = serializers.UUIDField(allow_null=True)


class AttemptNextResponse(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    chat_id = serializers.UUIDField()


class AttemptMessageResponse(serializers.Serializer):
    chat_id = serializers.UUIDField()
    user_message_id = serializers.UUIDField(allow_null=True)
    assistant_message_id = serializers.UUIDField(allow_null=True)
    assistant_content = serializers.CharField(allow_null=True, allow_blank=True)
    hints = serializers.ListField(child=serializers.DictField(), allow_null=True)
    stopped = serializers.BooleanField()
    run_id = serializers.UUIDField(allow_null=True)


class AttemptEndResponse(serializers.Serializer):
    chat_id = serializers.UUIDField()
    is_attempt_finished = serializers.BooleanField(allow_null=True)
    grade_id = serializers.UUIDField(allow_null=True)
    score = serializers.IntegerField(allow_null=True)
    passed = serializers.BooleanField(allow_null=True)
    awaiting_review = serializers.BooleanField(default=False)


class AttemptEndAllResponse(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    success = serializers.BooleanField()
    all_scenarios_complete = serializers.BooleanField()
    message = serializers.CharField(allow_null=True)


class AttemptGradeResponse(serializers.Serializer):
    chat_id = serializers.UUIDField()
    grade_id = serializers.UUIDField(allow_null=True)
    score = serializers.IntegerField(allow_null=True)
    passed = serializers.BooleanField(allow_null=True)
    awaiting_review = serializers.BooleanField(default=False)


class AttemptCompleteResponse(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    completion_id = serializers.UUIDField()
    score = serializers.IntegerField(allow_null=True)
    passed = serializers.BooleanField(allow_null=True)
    groups = serializers.ListField(child=serializers.DictField())
    message = serializers.CharField(allow_blank=True)
    awaiting_review = serializers.BooleanField(default=False)


class AttemptStopResponse(serializers.Serializer):
    chat_id = serializers.UUIDField(allow_null=True)
    success = serializers.BooleanField()
    message = serializers.CharField(allow_null=True)


class AttemptResponseResponse(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_null=True)
    is_correct = serializers.BooleanField(allow_null=True)
    response_id = serializers.UUIDField(allow_null=True)


class AttemptUsePreviousResponse(serializers.Serializer):
    success = serializers.BooleanField()
    message = serializers.CharField(allow_null=True)


class AttemptGroupResponse(serializers.Serializer):
    """The universal group answer (ArtifactGroupResponse) plus the attempt it belongs to."""

    group_id = serializers.UUIDField()
    session_id = serializers.UUIDField()
    group_name = serializers.CharField()
    name = serializers.CharField(help_text="Same as group_name.")
    family = serializers.CharField()
    artifact_id = serializers.UUIDField(allow_null=True)
    attempt_id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    run_count = serializers.IntegerField()


class AttemptExportResponse(ExportResponse):
    message_count = serializers.IntegerField()


# -- the attempt as a search row (SearchAttemptItem) ------------------------------------------


def duration_text(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest}s" if minutes else f"{rest}s"


class AttemptOut(OutputModelSerializer):
    """One history row, hydrated for display from what for_api() and attach_persona_titles
    loaded once per page."""

    attempt_id = serializers.UUIDField(source="id", read_only=True)
    simulation_id = serializers.UUIDField(read_only=True)
    simulation_title = serializers.CharField(source="simulation.title", read_only=True)
    home_id = serializers.UUIDField(read_only=True, allow_null=True)
    practice_id = serializers.UUIDField(source="practice_entry_id", read_only=True, allow_null=True)
    chat_entry_id = serializers.UUIDField(source="entry_id", read_only=True, allow_null=True)
    profile_id = serializers.UUIDField(read_only=True)
    learner_name = serializers.CharField(source="profile.name", read_only=True)
    department_id = serializers.UUIDField(read_only=True, allow_null=True)
    department_name = serializers.SerializerMethodField()
    cohort_id = serializers.UUIDField(read_only=True, allow_null=True)
    cohort_name = serializers.SerializerMethodField()
    group_id = serializers.UUIDField(read_only=True, allow_null=True)
    score_percent = serializers.SerializerMethodField()
    time_taken_display = serializers.SerializerMethodField()
    persona = serializers.SerializerMethodField()
    personas = serializers.SerializerMethodField()
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = Attempt
        fields = [
            "id",
            "attempt_id",
            "title",
            "description",
            "version",
            "archived",
            "archived_at",
            "created_at",
            "updated_at",
            "status",
            "is_active",
            "practice",
            "infinite_mode",
            "started_at",
            "completed_at",
            "simulation_id",
            "simulation_title",
            "home_id",
            "practice_id",
            "chat_entry_id",
            "profile_id",
            "learner_name",
            "department_id",
            "department_name",
            "cohort_id",
            "cohort_name",
            "group_id",
            "current_chat_index",
            "chat_count",
            "ended_chat_count",
            "message_count",
            "score",
            "score_percent",
            "passed",
            "time_taken",
            "time_taken_display",
            "persona",
            "personas",
        ]

    def get_department_name(self, obj) -> str | None:
        return obj.department.name if obj.department_id else None

    def get_cohort_name(self, obj) -> str | None:
        return obj.cohort.name if obj.cohort_id else None

    def get_score_percent(self, obj) -> str | None:
        return None if obj.score is None else f"{obj.score}%"

    def get_time_taken_display(self, obj) -> str | None:
        return duration_text(obj.time_taken)

    def _personas(self, obj) -> list[str]:
        titles = getattr(obj, "persona_titles", None)  # a search page's, attached at once
        if titles is not None:
            return titles
        return [link.scenario.persona.title for link in obj.simulation.simulation_scenarios.all()]

    def get_persona(self, obj) -> str | None:
        personas = self._personas(obj)
        if not personas:
            return None
        return personas[min(obj.current_chat_index, len(personas) - 1)]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_personas(self, obj) -> list[str]:
        return self._personas(obj)

    def to_representation(self, obj) -> dict:
        """The same output as the declared fields, built directly: a history page renders 25+
        rows of 40 fields, and field-by-field rendering was most of the search's time.
        (test_selectors checks the two never differ.)"""
        personas = self._personas(obj)
        values = {
            "id": _uuid(obj.pk),
            "attempt_id": _uuid(obj.pk),
            "title": obj.title,
            "description": obj.description,
            "version": obj.version,
            "archived": obj.archived,
            "archived_at": _when(obj.archived_at),
            "created_at": _when(obj.created_at),
            "updated_at": _when(obj.updated_at),
            "status": obj.status,
            "is_active": obj.is_active,
            "practice": obj.practice,
            "infinite_mode": obj.infinite_mode,
            "started_at": _when(obj.started_at),
            "completed_at": _when(obj.completed_at),
            "simulation_id": _uuid(obj.simulation_id),
            "simulation_title": obj.simulation.title,
            "home_id": _uuid(obj.home_id),
            "practice_id": _uuid(obj.practice_entry_id),
            "chat_entry_id": _uuid(obj.entry_id),
            "profile_id": _uuid(obj.profile_id),
            "learner_name": obj.profile.name,
            "department_id": _uuid(obj.department_id),
            "department_name": self.get_department_name(obj),
            "cohort_id": _uuid(obj.cohort_id),
            "cohort_name": self.get_cohort_name(obj),
            "group_id": _uuid(obj.group_id),
            "current_chat_index": obj.current_chat_index,
            "chat_count": obj.chat_count,
            "ended_chat_count": obj.ended_chat_count,
            "message_count": obj.message_count,
            "score": obj.score,
            "score_percent": self.get_score_percent(obj),
            "passed": obj.passed,
            "time_taken": obj.time_taken,
            "time_taken_display": self.get_time_taken_display(obj),
            "persona": personas[min(obj.current_chat_index, len(personas) - 1)]
            if personas
            else None,
            "personas": personas,
        }
        return {name: values[name] for name in self.Meta.fields}


def _uuid(value) -> str | None:
    return None if value is None else str(value)


_DATETIME = serializers.DateTimeField()


def _when(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)


class AttemptWrite(serializers.Serializer):
    """Drafts and publish may retitle or describe an attempt; nothing else is edited this way."""

    title = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(required=False, allow_blank=True)


# -- the get bundle -----------------------------------------------------------------------------


class AttemptMessageOut(serializers.Serializer):
    id = serializers.UUIDField()
    seq = serializers.IntegerField()
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)
    hints = serializers.ListField(child=serializers.DictField())
    contents = serializers.ListField(child=serializers.DictField())
    parent_id = serializers.UUIDField(allow_null=True)
    stopped = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    audio_upload_id = serializers.UUIDField(allow_null=True, required=False)
    comments = serializers.SerializerMethodField(
        help_text="Staff comments on this turn the reader may see (learners: those marked "
        "for the learner)."
    )

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_comments(self, obj) -> list[dict]:
        return [
            {
                **row,
                "comment_id": str(row["comment_id"]),
                "message_id": str(row["message_id"]),
                "chat_id": str(row["chat_id"]),
                "created_at": _when(row["created_at"]),
            }
            for row in getattr(obj, "visible_comments", [])
        ]


class AttemptGradeOut(serializers.Serializer):
    grade_id = serializers.UUIDField(source="id")
    score = serializers.IntegerField(
        allow_null=True, help_text="Null while a criterion awaits review (gated simulations)."
    )
    points = serializers.IntegerField(allow_null=True)
    total_points = serializers.IntegerField()
    passed = serializers.BooleanField(allow_null=True)
    awaiting_review = serializers.BooleanField(default=False)
    based_on_id = serializers.UUIDField(
        allow_null=True, help_text="A reviewed grade: the judge's grade it lies over."
    )
    judge_samples = serializers.IntegerField()
    judge_spread = serializers.FloatField(allow_null=True)
    time_taken = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    feedbacks = serializers.ListField(child=serializers.DictField())
    strengths = serializers.ListField(child=serializers.DictField())
    improvements = serializers.ListField(child=serializers.DictField())
    analyses = serializers.ListField(child=serializers.DictField())
    highlights = serializers.ListField(child=serializers.DictField())
    replacements = serializers.ListField(child=serializers.DictField())
    standard_scores = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()


class AttemptChatOut(serializers.Serializer):
    chat_id = serializers.UUIDField(source="id")
    position = serializers.IntegerField()
    status = serializers.CharField()
    scenario_id = serializers.UUIDField()
    scenario_title = serializers.CharField(source="scenario.title")
    modality = serializers.CharField(source="scenario.modality")
    audio_mode = serializers.BooleanField(
        help_text="An audio scenario: the learner speaks (audio/start, audio/frame) and hears replies."
    )
    persona_id = serializers.UUIDField(source="scenario.persona_id")
    persona_title = serializers.CharField(source="scenario.persona.title")
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    message_count = serializers.IntegerField()
    time_taken = serializers.IntegerField(allow_null=True)
    grade = AttemptGradeOut(allow_null=True)


class AttemptTimerData(serializers.Serializer):
    time_limit_minutes = serializers.IntegerField(allow_null=True)
    started_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    remaining_seconds = serializers.IntegerField(allow_null=True)
    expired = serializers.BooleanField()


class AttemptAggregatedResults(serializers.Serializer):
    score = serializers.IntegerField(allow_null=True)
    passed = serializers.BooleanField(allow_null=True)
    time_taken = serializers.IntegerField(allow_null=True)
    graded_chat_count = serializers.IntegerField()
    chat_count = serializers.IntegerField()
    completion_id = serializers.UUIDField(allow_null=True)
    groups = serializers.ListField(child=serializers.DictField())
    awaiting_review = serializers.BooleanField(
        default=False,
        help_text="A criterion the judge is not calibrated on waits for staff: score is null.",
    )


class AttemptReviewState(serializers.Serializer):
    calibration_required = serializers.BooleanField()
    awaiting_review = serializers.BooleanField()
    awaiting_chat_ids = serializers.ListField(child=serializers.UUIDField())
    uncalibrated_standard_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Staff only; empty for learners."
    )


class AttemptContinuationOptions(serializers.Serializer):
    can_message = serializers.BooleanField()
    can_next = serializers.BooleanField()
    can_end = serializers.BooleanField()
    can_end_all = serializers.BooleanField()
    can_complete = serializers.BooleanField()
    previous_attempt_ids = serializers.ListField(child=serializers.UUIDField())


class AttemptSimulationData(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    time_limit_minutes = serializers.IntegerField(allow_null=True)
    pass_threshold = serializers.IntegerField()
    scenario_count = serializers.IntegerField()


class AttemptGetResponse(serializers.Serializer):
    actor_name = serializers.CharField(allow_null=True)
    attempt_exists = serializers.BooleanField(allow_null=True)
    access_denied = serializers.BooleanField(allow_null=True)
    attempt = AttemptOut(allow_null=True)
    simulation = AttemptSimulationData(allow_null=True)
    timer = AttemptTimerData(allow_null=True)
    aggregated_results = AttemptAggregatedResults(allow_null=True)
    current_chat_index = serializers.IntegerField(allow_null=True)
    expected_chat_count = serializers.IntegerField(allow_null=True)
    is_active = serializers.BooleanField(allow_null=True)
    is_lobby = serializers.BooleanField(allow_null=True)
    show_results = serializers.BooleanField(allow_null=True)
    should_show_controls = serializers.BooleanField(allow_null=True)
    is_own_attempt = serializers.BooleanField(allow_null=True)
    current_chat_id = serializers.UUIDField(allow_null=True)
    has_messages = serializers.BooleanField()
    available_continuation_options = AttemptContinuationOptions(allow_null=True)
    rubric_structure = serializers.DictField(allow_null=True)
    review = AttemptReviewState(allow_null=True, required=False)
    training_id = serializers.UUIDField(allow_null=True)
    chat_entry_id = serializers.UUIDField(allow_null=True)
    chats = AttemptChatOut(many=True, allow_null=True)
    chat = AttemptChatOut(allow_null=True)
    messages = AttemptMessageOut(many=True, allow_null=True)


@extend_schema_field({"type": "boolean", "enum": [True]})
class TrueField(serializers.BooleanField):
    """A flag that is always true where it appears: it tells the two answers of attempt/get apart."""


class AttemptDeniedResponse(serializers.Serializer):
    """attempt/get of an attempt inside the organization that the actor may not read."""

    actor_name = serializers.CharField(allow_null=True)
    attempt_exists = serializers.BooleanField()
    access_denied = TrueField()
    has_messages = serializers.BooleanField()


def attempt_get_result(family) -> PolymorphicProxySerializer:
    """The bundle, or (access_denied: true) the stub that says no more than that it exists."""
    return PolymorphicProxySerializer(
        component_name="AttemptGetResult",
        serializers=[AttemptGetResponse, AttemptDeniedResponse],
        resource_type_field_name=None,
    )


# -- human review ----------------------------------------------------------------------------------


class CriterionGradeIn(serializers.Serializer):
    standard_id = StrictUUIDField()
    score = serializers.IntegerField(min_value=0, max_value=1000)
    comment = serializers.CharField(
        max_length=4000, required=False, allow_blank=True, allow_null=True
    )


class AttemptReviewRequest(serializers.Serializer):
    """One criterion (standard_id, score, comment) or several (criteria)."""

    attempt_id = StrictUUIDField()
    chat_id = StrictUUIDField()
    standard_id = StrictUUIDField(required=False, allow_null=True)
    score = serializers.IntegerField(min_value=0, max_value=1000, required=False, allow_null=True)
    comment = serializers.CharField(
        max_length=4000, required=False, allow_blank=True, allow_null=True
    )
    criteria = CriterionGradeIn(many=True, required=False, max_length=200)

    def validate(self, attrs):
        criteria = list(attrs.get("criteria") or [])
        if attrs.get("standard_id") is not None:
            criteria.append(
                {
                    "standard_id": attrs["standard_id"],
                    "score": attrs.get("score"),
                    "comment": attrs.get("comment") or "",
                }
            )
        attrs["criteria"] = criteria  # none at all: the service answers 400 once it found the chat
        return attrs


class CriterionReviewOut(serializers.Serializer):
    review_id = serializers.UUIDField(source="id")
    standard_id = serializers.UUIDField()
    score = serializers.IntegerField()
    ai_score = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField()


class AttemptReviewResponse(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    chat_id = serializers.UUIDField()
    grade_id = serializers.UUIDField(allow_null=True, help_text="The chat's reviewed grade.")
    ai_grade_id = serializers.UUIDField(allow_null=True, help_text="The judge's grade, kept.")
    chat_score = serializers.IntegerField(allow_null=True)
    attempt_score = serializers.IntegerField(allow_null=True)
    attempt_passed = serializers.BooleanField(allow_null=True)
    reviews = CriterionReviewOut(many=True)


class AttemptAnnotateRequest(serializers.Serializer):
    attempt_id = StrictUUIDField()
    message_id = StrictUUIDField()
    body = serializers.CharField(max_length=4000)
    visibility = serializers.ChoiceField(choices=["learner", "staff"], default="learner")


class AttemptAnnotateResponse(serializers.Serializer):
    comment_id = serializers.UUIDField()
    attempt_id = serializers.UUIDField()
    chat_id = serializers.UUIDField()
    message_id = serializers.UUIDField()
    body = serializers.CharField()
    visibility = serializers.CharField()
    author_name = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class RubricCalibrationRequest(RuledSerializer):
    rubric_id = StrictUUIDField(required=False)
    id = StrictUUIDField(required=False, help_text="Same as rubric_id.")
    simulation_id = StrictUUIDField(
        required=False,
        allow_null=True,
        help_text="Only chats of this simulation; its gate's thresholds are the defaults.",
    )
    kappa_threshold = serializers.FloatField(
        required=False, allow_null=True, min_value=-1.0, max_value=1.0
    )
    min_n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=100000)

    given_rules = (at_least_one("rubric_id", "id", message="Give rubric_id."),)

    def validate(self, attrs):
        attrs["rubric_id"] = attrs.get("rubric_id") or attrs.get("id")
        if attrs["rubric_id"] is None:
            raise serializers.ValidationError({"rubric_id": ["This field is required."]})
        return attrs


class CriterionCalibrationOut(serializers.Serializer):
    standard_id = serializers.CharField()
    name = serializers.CharField()
    group_id = serializers.CharField()
    group_name = serializers.CharField()
    points = serializers.IntegerField()
    n = serializers.IntegerField()
    exact_agreement = serializers.FloatField(allow_null=True)
    adjacent_agreement = serializers.FloatField(allow_null=True)
    kappa = serializers.FloatField(allow_null=True, help_text="Quadratic-weighted Cohen's kappa.")
    kappa_ci = serializers.ListField(
        child=serializers.FloatField(allow_null=True), allow_null=True, help_text="Bootstrap 95%."
    )
    labels = serializers.ListField(child=serializers.IntegerField())
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Rows: the judge's score; columns: staff's.",
    )
    calibrated = serializers.BooleanField()


class RubricCalibrationResponse(serializers.Serializer):
    rubric_id = serializers.UUIDField()
    title = serializers.CharField()
    simulation_id = serializers.UUIDField(allow_null=True)
    kappa_threshold = serializers.FloatField()
    min_n = serializers.IntegerField()
    criteria = CriterionCalibrationOut(many=True)
    overall = serializers.DictField()


# -- audio sessions ------------------------------------------------------------------------------


class AttemptAudioChatRequest(serializers.Serializer):
    chat_id = StrictUUIDField()


class AttemptAudioFrameRequest(serializers.Serializer):
    chat_id = StrictUUIDField()
    upload_id = StrictUUIDField(help_text="An audio file stored with attempt/audio_upload.")
    file_id = StrictUUIDField(required=False, help_text="Same as upload_id.")

    field_aliases = {"file_id": "upload_id"}


class AttemptAudioStartResponse(serializers.Serializer):
    chat_id = serializers.UUIDField()
    run_id = serializers.UUIDField(help_text="The session's run: its events replay with watch.")
    group_id = serializers.UUIDField(help_text="The attempt's group: its SSE channel.")
    attempt_id = serializers.UUIDField()
    audio_session_id = serializers.UUIDField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    frames_received = serializers.IntegerField()


class AttemptAudioFrameResponse(serializers.Serializer):
    accepted = serializers.BooleanField()
    audio_session_id = serializers.UUIDField()
    frames_received = serializers.IntegerField()


class AttemptAudioStopResponse(serializers.Serializer):
    chat_id = serializers.UUIDField()
    stopped = serializers.BooleanField(help_text="False when no session was open.")
    audio_session_id = serializers.UUIDField(allow_null=True)
    frames_received = serializers.IntegerField(allow_null=True)
