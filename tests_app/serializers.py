"""Request and response shapes of the test, invocation and benchmark ops."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from glow.core.serializers import (
    OutputModelSerializer,
    RuledSerializer,
    StoredJSONField,
    at_least_one,
)
from glow.core.serializers import StrictUUIDField as UUID
from tests_app.models import DONE, MAX_CONCURRENCY, Invocation, InvocationStatus, Test
from tests_app.selectors import test_progress

STAFF = ("instructor", "admin")


def id_list(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=UUID(), **kwargs)


def _one_of(*names: str):
    """A validate() that accepts any of `names` for the row id and stores it as `pk`."""

    def validate(self, attrs):
        pk = next((attrs[name] for name in names if attrs.get(name)), None)
        if pk is None:
            raise serializers.ValidationError({names[0]: ["This field is required."]})
        attrs["pk"] = pk
        return attrs

    return validate


# -- output -----------------------------------------------------------------------------------


class StatusCounts(serializers.Serializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    terminated = serializers.IntegerField()
    completed = serializers.IntegerField()


class TestOut(OutputModelSerializer):
    """Search rows carry their counts as annotations (TestQuerySet.for_api); one row counts once."""

    test_id = serializers.UUIDField(source="id", read_only=True)
    benchmark_id = serializers.UUIDField(source="id", read_only=True)
    eval_title = serializers.CharField(source="eval.title", read_only=True)
    department_name = serializers.CharField(
        source="department.name", read_only=True, allow_null=True, default=None
    )
    started_by_name = serializers.CharField(
        source="started_by.name", read_only=True, allow_null=True, default=None
    )
    invocation_count = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    finished = serializers.SerializerMethodField()
    axes = StoredJSONField(
        serializers.DictField(child=serializers.ListField(child=serializers.UUIDField())),
        help_text="The grid's model_ids, scenario_ids and agent_ids.",
    )

    class Meta:
        model = Test
        fields = [
            "id",
            "test_id",
            "benchmark_id",
            "title",
            "description",
            "version",
            "archived",
            "created_at",
            "updated_at",
            "status",
            "eval_id",
            "eval_title",
            "department_id",
            "department_name",
            "started_by_id",
            "started_by_name",
            "concurrency",
            "group_id",
            "axes",
            "completed_at",
            "invocation_count",
            "counts",
            "finished",
        ]

    def _counts(self, obj) -> dict:
        if not hasattr(obj, "_glow_counts"):
            if hasattr(obj, "invocation_count"):
                obj._glow_counts = {
                    status: getattr(obj, f"{status}_count") for status in InvocationStatus.values
                }
            else:
                found = test_progress(test_id=obj.pk)["counts"]
                obj._glow_counts = {
                    status: found.get(status, 0) for status in InvocationStatus.values
                }
        return obj._glow_counts

    def get_invocation_count(self, obj) -> int:
        return sum(self._counts(obj).values())

    @extend_schema_field(StatusCounts)
    def get_counts(self, obj) -> dict:
        return self._counts(obj)

    def get_finished(self, obj) -> bool:
        counts = self._counts(obj)
        return sum(counts[str(status)] for status in DONE) == sum(counts.values())


class TestWrite(serializers.Serializer):
    title = serializers.CharField(max_length=300, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    concurrency = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENCY, required=False)


class InvocationOut(OutputModelSerializer):
    invocation_id = serializers.UUIDField(source="id", read_only=True)
    model_title = serializers.CharField(source="model.title", read_only=True)
    scenario_title = serializers.CharField(source="scenario.title", read_only=True)
    agent_title = serializers.CharField(source="agent.title", read_only=True)
    cost = serializers.DecimalField(max_digits=14, decimal_places=6, coerce_to_string=True)
    key_ids = serializers.ListField(child=serializers.CharField())
    parameter_id = serializers.UUIDField(
        source="parameter_set_id",
        read_only=True,
        allow_null=True,
        help_text="The cell's parameter set; null: the agent's own, if any.",
    )

    class Meta:
        model = Invocation
        fields = [
            "id",
            "invocation_id",
            "test_id",
            "title",
            "archived",
            "version",
            "created_at",
            "updated_at",
            "position",
            "status",
            "model_id",
            "model_title",
            "scenario_id",
            "scenario_title",
            "agent_id",
            "agent_title",
            "parameter_id",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "cost",
            "error",
            "key_ids",
            "run_id",
            "started_at",
            "finished_at",
        ]


class ToolCallOut(serializers.Serializer):
    tool_call_id = serializers.UUIDField()
    position = serializers.IntegerField()
    turn = serializers.IntegerField()
    name = serializers.CharField()
    arguments = serializers.JSONField()
    result = serializers.JSONField()
    created_at = serializers.DateTimeField()


class GradeGroupOut(serializers.Serializer):
    standard_group_id = serializers.UUIDField()
    name = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    total_points = serializers.IntegerField()


class GradeOut(serializers.Serializer):
    grade_id = serializers.UUIDField(source="id")
    invocation_id = serializers.UUIDField()
    test_id = serializers.UUIDField(source="invocation.test_id")
    score = serializers.FloatField()
    total_points = serializers.IntegerField()
    percent = serializers.SerializerMethodField()
    full = serializers.BooleanField()
    source = serializers.CharField()
    groups = GradeGroupOut(many=True)
    feedback = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField()

    def get_percent(self, obj) -> float | None:
        if not obj.total_points:
            return None
        return round(float(obj.score) * 100 / obj.total_points, 1)


class InvocationDetailOut(InvocationOut):
    transcript = serializers.JSONField()
    tool_calls = serializers.SerializerMethodField()
    grade = serializers.SerializerMethodField()

    class Meta(InvocationOut.Meta):
        fields = [*InvocationOut.Meta.fields, "transcript", "tool_calls", "grade"]

    @extend_schema_field(ToolCallOut(many=True))
    def get_tool_calls(self, obj) -> list[dict]:
        from tests_app.selectors import tool_call_body

        return ToolCallOut(
            [tool_call_body(call) for call in obj.tool_calls.order_by("position")], many=True
        ).data

    @extend_schema_field(GradeOut(allow_null=True))
    def get_grade(self, obj) -> dict | None:
        # A missing reverse one-to-one raises an AttributeError subclass: getattr's default.
        grade = getattr(obj, "grade", None)
        return GradeOut(grade).data if grade is not None else None


# -- test ops ---------------------------------------------------------------------------------


class SecretIn(serializers.Serializer):
    label = serializers.CharField(max_length=200)
    value = serializers.CharField(max_length=10_000, trim_whitespace=False)


MAX_REPEATS = 20


class TestStartRequest(serializers.Serializer):
    eval_id = UUID()
    model_ids = id_list(min_length=1, max_length=1000)
    scenario_ids = id_list(min_length=1, max_length=1000)
    agent_ids = id_list(min_length=1, max_length=1000)
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    concurrency = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENCY, required=False)
    key_ids = id_list(required=False, max_length=50)
    secrets = SecretIn(many=True, required=False, max_length=50)
    repeats = serializers.IntegerField(
        min_value=1,
        max_value=MAX_REPEATS,
        required=False,
        default=1,
        help_text="Run each cell this many times (seeds 0..repeats-1): the benchmark shows "
        "each cell's mean with a 95% interval.",
    )
    parameter_id = UUID(
        required=False,
        allow_null=True,
        help_text="A parameter set (family `parameter`) for the agent's calls in every cell; "
        "without it, each agent's own parameter set.",
    )


class TestStartResponse(serializers.Serializer):
    test_id = serializers.UUIDField()
    invocation_id = serializers.UUIDField()
    benchmark_id = serializers.UUIDField(help_text="The benchmark of a test is the test itself.")
    group_id = serializers.UUIDField()
    invocation_count = serializers.IntegerField()
    key_ids = serializers.ListField(child=serializers.CharField())


class TestRef(RuledSerializer):
    test_id = UUID(required=False)
    id = UUID(required=False, help_text="Same as test_id.")
    given_rules = (at_least_one("test_id", "id"),)
    validate = _one_of("test_id", "id")


class TestStopResponse(serializers.Serializer):
    test_id = serializers.UUIDField()
    invocation_id = serializers.UUIDField(allow_null=True, help_text="The first halted cell.")
    success = serializers.BooleanField()
    message = serializers.CharField()
    stopped_count = serializers.IntegerField()
    kept_count = serializers.IntegerField()


class TestCompleteRequest(TestRef):
    message = serializers.CharField(required=False, allow_blank=True, max_length=300)


class TestCompleteResponse(serializers.Serializer):
    test_id = serializers.UUIDField()
    success = serializers.BooleanField()
    status = serializers.CharField()
    completed_at = serializers.DateTimeField()
    invocation_count = serializers.IntegerField()
    counts = StatusCounts()


class TestGradeRequest(serializers.Serializer):
    invocation_id = UUID()
    full = serializers.BooleanField(required=False, default=False)
    score = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    feedback = serializers.CharField(required=False, allow_blank=True, max_length=4000)


class TestFeedbackRequest(serializers.Serializer):
    grade_id = UUID()
    tool_call_id = UUID(
        required=False,
        allow_null=True,
        help_text="Omit to comment on the invocation as a whole (an agent without tools).",
    )
    standard_group_id = UUID()
    score = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    feedback = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class FeedbackOut(serializers.Serializer):
    feedback_id = serializers.UUIDField(source="id")
    grade_id = serializers.UUIDField()
    tool_call_id = serializers.UUIDField(allow_null=True)
    standard_group_id = serializers.UUIDField()
    score = serializers.FloatField()
    feedback = serializers.CharField(allow_blank=True)
    created = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


class TestDecryptRequest(serializers.Serializer):
    invocation_id = UUID()
    key_id = UUID()


class TestDecryptResponse(serializers.Serializer):
    invocation_id = serializers.UUIDField()
    key_id = serializers.UUIDField()
    label = serializers.CharField()
    plaintext = serializers.CharField(trim_whitespace=False)
    cached = serializers.BooleanField(
        help_text="Served from the cache (X-Bypass-Cache: 1 skips it)."
    )


class TestExportRequest(TestRef):
    view = serializers.ChoiceField(choices=("test", "invocations"), default="test")
    invocation_id = UUID(required=False, allow_null=True)


# -- invocation ops ---------------------------------------------------------------------------


class InvocationRef(RuledSerializer):
    invocation_id = UUID(required=False)
    id = UUID(required=False, help_text="Same as invocation_id.")
    given_rules = (at_least_one("invocation_id", "id"),)
    validate = _one_of("invocation_id", "id")


class InvocationCreateRequest(serializers.Serializer):
    test_id = UUID()
    model_id = UUID()
    scenario_id = UUID()
    agent_id = UUID()
    key_ids = id_list(required=False, max_length=50)
    secrets = SecretIn(many=True, required=False, max_length=50)
    parameter_id = UUID(
        required=False,
        allow_null=True,
        help_text="A parameter set (family `parameter`) for the agent's calls in this cell; "
        "without it, each agent's own parameter set.",
    )


class InvocationTerminateResponse(serializers.Serializer):
    invocation_id = serializers.UUIDField()
    success = serializers.BooleanField()
    message = serializers.CharField()
    status = serializers.CharField()


class TraceEvent(serializers.Serializer):
    seq = serializers.IntegerField()
    event_type = serializers.CharField()
    payload = StoredJSONField(serializers.DictField())
    created_at = serializers.DateTimeField()


class TraceRun(serializers.Serializer):
    run_id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.CharField()
    provider_model = serializers.CharField(allow_blank=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class InvocationTraceResponse(serializers.Serializer):
    invocation = InvocationOut()
    items = serializers.ListField(
        child=serializers.DictField(),
        help_text="Messages in order, each agent message followed by its tool calls.",
    )
    tool_calls = ToolCallOut(many=True)
    events = TraceEvent(many=True)
    runs = TraceRun(many=True)


# -- benchmark --------------------------------------------------------------------------------


class BenchmarkRequest(RuledSerializer):
    benchmark_id = UUID(required=False)
    test_id = UUID(required=False, help_text="Same as benchmark_id.")
    id = UUID(required=False)
    given_rules = (at_least_one("benchmark_id", "test_id", "id"),)
    validate = _one_of("benchmark_id", "test_id", "id")


class CellGroup(serializers.Serializer):
    standard_group_id = serializers.UUIDField()
    name = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    total_points = serializers.IntegerField()
    percent = serializers.FloatField(allow_null=True)


class CellFeedback(serializers.Serializer):
    standard_group_id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    scope = serializers.ChoiceField(choices=["tool_call", "invocation"])
    tool_call_id = serializers.UUIDField(allow_null=True)
    score = serializers.FloatField()
    feedback = serializers.CharField(allow_blank=True)


class Interval(serializers.Serializer):
    n = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True, help_text="95% (Student t over repeats).")
    ci_high = serializers.FloatField(allow_null=True)
    sd = serializers.FloatField(allow_null=True)


class GroupInterval(Interval):
    standard_group_id = serializers.UUIDField()
    name = serializers.CharField()
    feedback_count = serializers.IntegerField(required=False)


class CellStats(Interval):
    """One model x scenario x agent cell over its repeated runs (percent of the rubric)."""

    model_id = serializers.UUIDField()
    scenario_id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    runs = serializers.IntegerField()
    invocation_ids = serializers.ListField(child=serializers.UUIDField())
    groups = GroupInterval(many=True)
    feedback_count = serializers.IntegerField()


class BenchmarkCell(serializers.Serializer):
    model_id = serializers.UUIDField()
    scenario_id = serializers.UUIDField()
    agent_id = serializers.UUIDField()
    invocation_id = serializers.UUIDField()
    repeat = serializers.IntegerField()
    seed = serializers.IntegerField()
    feedback = CellFeedback(many=True)
    grade_id = serializers.UUIDField(allow_null=True)
    status = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    total_points = serializers.IntegerField()
    percent = serializers.FloatField(allow_null=True)
    groups = CellGroup(many=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField()
    cost = serializers.CharField()
    error = serializers.CharField(allow_blank=True)
    latency_ms = serializers.IntegerField(
        allow_null=True, help_text="The model under test answering: its agent turns' latency."
    )


class AxisEntry(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    cell_count = serializers.IntegerField()
    mean_score = serializers.FloatField(allow_null=True)
    mean_percent = serializers.FloatField(allow_null=True)
    tokens = serializers.IntegerField()
    cost = serializers.CharField()
    latency_p50_ms = serializers.IntegerField(allow_null=True)
    latency_p95_ms = serializers.IntegerField(allow_null=True)


class BenchmarkAxes(serializers.Serializer):
    models = AxisEntry(many=True)
    scenarios = AxisEntry(many=True)
    agents = AxisEntry(many=True)


class BenchmarkMeans(serializers.Serializer):
    mean_score = serializers.FloatField(allow_null=True)
    mean_percent = serializers.FloatField(allow_null=True)
    tokens = serializers.IntegerField()
    cost = serializers.CharField()
    graded_count = serializers.IntegerField()
    latency_p50_ms = serializers.IntegerField(allow_null=True)
    latency_p95_ms = serializers.IntegerField(allow_null=True)


class StandardGroupSummary(serializers.Serializer):
    standard_group_id = serializers.UUIDField()
    name = serializers.CharField()
    total_points = serializers.IntegerField()


class BenchmarkResponse(serializers.Serializer):
    benchmark_id = serializers.UUIDField()
    test_id = serializers.UUIDField()
    title = serializers.CharField()
    status = serializers.CharField()
    eval_id = serializers.UUIDField()
    eval_title = serializers.CharField()
    total_points = serializers.IntegerField()
    standard_groups = StandardGroupSummary(many=True)
    axes = BenchmarkAxes()
    cells = BenchmarkCell(many=True)
    means = BenchmarkMeans()
    counts = serializers.DictField(child=serializers.IntegerField())
    cell_count = serializers.IntegerField()
    repeats = serializers.IntegerField()
    cell_stats = CellStats(many=True)
    group_stats = GroupInterval(many=True)


# -- benchmark/compare ------------------------------------------------------------------------------


class BenchmarkCompareRequest(RuledSerializer):
    """Two agents or two models of one test, over the cells they share; or a test against its
    baseline test, cell by cell and standard group by standard group."""

    test_id = UUID(required=False)
    benchmark_id = UUID(required=False, help_text="Same as test_id.")
    agent_ids = serializers.ListField(
        child=UUID(), required=False, max_length=2, help_text="Exactly two: A then B."
    )
    model_ids = serializers.ListField(
        child=UUID(), required=False, max_length=2, help_text="Exactly two: A then B."
    )
    baseline_test_id = UUID(required=False, allow_null=True)
    # Which comparison (agent_ids, model_ids or baseline_test_id) is checked once the test is
    # found, so another organization's test answers 404 whatever else the body says.
    given_rules = (at_least_one("test_id", "benchmark_id"),)

    def validate(self, attrs):
        # Which comparison is asked is checked once the test is found (benchmark_compare).
        attrs["test_id"] = attrs.get("test_id") or attrs.get("benchmark_id")
        if attrs["test_id"] is None:
            raise serializers.ValidationError({"test_id": ["This field is required."]})
        return attrs


class CompareSide(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()


class ComparePair(serializers.Serializer):
    key = serializers.DictField(child=serializers.CharField())
    label = serializers.CharField()
    standard_group_id = serializers.UUIDField(allow_null=True)
    a = Interval()
    b = Interval()
    difference = serializers.FloatField(allow_null=True, help_text="b - a, percent points.")
    difference_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="Welch 95% over repeats."
    )
    verdict = serializers.ChoiceField(
        choices=["better", "worse", "no clear difference", "not enough runs"]
    )


class BenchmarkCompareResponse(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["agents", "models", "tests"])
    test_id = serializers.UUIDField()
    a = CompareSide()
    b = CompareSide()
    n_pairs = serializers.IntegerField()
    mean_difference = serializers.FloatField(allow_null=True)
    difference_ci = serializers.ListField(
        child=serializers.FloatField(), allow_null=True, help_text="Paired bootstrap 95%."
    )
    sign_test_p = serializers.FloatField(allow_null=True)
    wilcoxon_p = serializers.FloatField(allow_null=True)
    pairs = ComparePair(many=True)
    differing = ComparePair(many=True, help_text="Cells whose interval excludes 0.")
    regressions = ComparePair(many=True)
    improvements = ComparePair(many=True)
    group_pairs = ComparePair(many=True, help_text="Per standard group (tests only).")
