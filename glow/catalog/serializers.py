"""Output shapes and write validation for the catalog families."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from glow.catalog import models as m
from glow.core.errors import NotFound
from glow.core.schema import NO_NUL, only
from glow.core.serializers import (
    JSONObjectField,
    JSONValueField,
    OutputModelSerializer,
    StoredJSONField,
    Variants,
)

BASE_FIELDS = ["id", "title", "description", "version", "archived", "created_at", "updated_at"]


class ArtifactOut(OutputModelSerializer):
    department_id = serializers.UUIDField(read_only=True, allow_null=True, required=False)

    class Meta:
        fields = BASE_FIELDS


def out(model, *extra: str, base=ArtifactOut, attrs: dict | None = None, name: str = ""):
    has_department = any(field.name == "department" for field in model._meta.get_fields())
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "fields": [*BASE_FIELDS, *(["department_id"] if has_department else []), *extra],
        },
    )
    return type(f"{name or model.__name__}Out", (base,), {"Meta": meta, **(attrs or {})})


class ConcernOut(serializers.Serializer):
    """One thing the simulated student brings: raised as `worry`, asked about as `ask`."""

    topic = serializers.CharField()
    worry = serializers.CharField()
    ask = serializers.CharField(required=False)
    more = serializers.CharField(required=False)
    pushback = serializers.CharField(required=False)
    relief = serializers.CharField(required=False)
    cues = serializers.ListField(child=serializers.CharField(), required=False)


PersonaOut = out(
    m.Persona,
    "traits",
    "intensity",
    "voice",
    "goal",
    "concerns",
    "phrases",
    attrs={
        "traits": StoredJSONField(
            serializers.ListField(child=serializers.CharField()),
            help_text=m.Persona._meta.get_field("traits").help_text,
        ),
        "concerns": StoredJSONField(ConcernOut(many=True)),
        "phrases": StoredJSONField(serializers.ListField(child=serializers.CharField())),
    },
)
DocumentOut = out(m.Document, "text")
ModelOut = out(
    m.AIModel,
    "provider",
    "provider_model",
    "base_url",
    "api_key_env",
    "structured_output",
    "input_price_per_million",
    "output_price_per_million",
    name="Model",  # the family's name in the API schema, not the class's
)


def _field_ids(row) -> list[str]:
    """The row's declared fields (prefetched by its for_api), by name."""
    return [str(field.pk) for field in sorted(row.input_fields.all(), key=lambda f: f.name)]


FIELD_IDS = serializers.SerializerMethodField(
    help_text="The fields (family `field`) this row declares, by name."
)


class DeclaresFields(serializers.Serializer):
    """Output mixin of the families that declare fields: tools, evals, scenarios."""

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_field_ids(self, obj) -> list[str]:
        return _field_ids(obj)


InputFieldOut = out(
    m.InputField,
    "name",
    "type",
    "enum_values",
    "required",
    "default",
    attrs={
        "enum_values": StoredJSONField(serializers.ListField(child=serializers.CharField())),
        "default": StoredJSONField(serializers.JSONField(allow_null=True)),
    },
)
ParameterSetOut = out(m.ParameterSet, "temperature", "top_p", "max_tokens", "seed")
ToolOut = out(
    m.Tool,
    "name",
    "json_schema",
    "field_ids",
    base=type("ToolBase", (DeclaresFields, ArtifactOut), {}),
    attrs={"json_schema": StoredJSONField(serializers.DictField()), "field_ids": FIELD_IDS},
)


class ScenarioPersona(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    traits = serializers.ListField(child=serializers.CharField())
    intensity = serializers.IntegerField()


class QuestionOptionOut(serializers.Serializer):
    id = serializers.CharField()
    text = serializers.CharField()


class QuestionOut(serializers.Serializer):
    """A video scenario's question, as ScenarioWrite validated it."""

    id = serializers.CharField()
    text = serializers.CharField()
    options = QuestionOptionOut(many=True)
    correct_option_ids = serializers.ListField(child=serializers.CharField())


ScenarioOut = out(
    m.Scenario,
    "persona_id",
    "persona",
    "context",
    "modality",
    "questions",
    "persona_opens",
    "opening_line",
    "learner_goal",
    "concerns",
    "field_ids",
    base=type("ScenarioBase", (DeclaresFields, ArtifactOut), {}),
    attrs={
        "field_ids": FIELD_IDS,
        "persona": ScenarioPersona(read_only=True),
        "persona_id": serializers.UUIDField(read_only=True),
        "questions": StoredJSONField(QuestionOut(many=True)),
        "concerns": StoredJSONField(ConcernOut(many=True)),
    },
)


class StandardOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    points = serializers.IntegerField()


class StandardGroupOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    total_points = serializers.IntegerField()
    standards = StandardOut(many=True)


class RubricOut(ArtifactOut):
    department_id = serializers.UUIDField(read_only=True, allow_null=True)
    total_points = serializers.IntegerField(read_only=True)
    groups = serializers.SerializerMethodField()

    class Meta:
        model = m.Rubric
        fields = [
            *BASE_FIELDS,
            "department_id",
            "total_points",
            "judge_samples",
            "judge_spread_threshold",
            "judge_model_ids",
            "groups",
        ]

    judge_model_ids = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_judge_model_ids(self, obj) -> list[str]:
        return [str(model.pk) for model in m.judge_models_of(obj)]

    @extend_schema_field(StandardGroupOut(many=True))
    def get_groups(self, obj) -> list[dict]:
        return obj.structure()


class SimulationScenarioOut(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    modality = serializers.CharField()
    persona_id = serializers.UUIDField()
    persona_title = serializers.CharField(source="persona.title")


class RubricStructure(serializers.Serializer):
    rubric_id = serializers.UUIDField(allow_null=True)
    title = serializers.CharField(allow_null=True)
    total_points = serializers.IntegerField()
    groups = StandardGroupOut(many=True)


def rubric_structure(rubric) -> dict:
    if rubric is None:
        return {"rubric_id": None, "title": None, "total_points": 0, "groups": []}
    return {
        "rubric_id": str(rubric.id),
        "title": rubric.title,
        "total_points": rubric.total_points,
        "groups": rubric.structure(),
    }


class SimulationOut(ArtifactOut):
    department_id = serializers.UUIDField(read_only=True, allow_null=True)
    rubric_id = serializers.UUIDField(read_only=True, allow_null=True)
    scenarios = serializers.SerializerMethodField()
    rubric_structure = serializers.SerializerMethodField()

    class Meta:
        model = m.Simulation
        fields = [
            *BASE_FIELDS,
            "department_id",
            "rubric_id",
            "time_limit_minutes",
            "pass_threshold",
            "leaderboard_method",
            "leaderboard_shows_names",
            "calibration_required",
            "calibration_kappa_threshold",
            "calibration_min_n",
            "scenarios",
            "rubric_structure",
        ]

    @extend_schema_field(SimulationScenarioOut(many=True))
    def get_scenarios(self, obj) -> list[dict]:
        return SimulationScenarioOut(obj.ordered_scenarios(), many=True).data

    @extend_schema_field(RubricStructure)
    def get_rubric_structure(self, obj) -> dict:
        return rubric_structure(obj.rubric)


class EntryOut(ArtifactOut):
    simulation_id = serializers.UUIDField(read_only=True)
    simulation_title = serializers.CharField(source="simulation.title", read_only=True)
    cohort_id = serializers.UUIDField(read_only=True, allow_null=True)
    cohort_name = serializers.CharField(
        source="cohort.name", read_only=True, allow_null=True, default=None
    )
    department_id = serializers.UUIDField(read_only=True, allow_null=True)


class HomeOut(EntryOut):
    class Meta:
        model = m.Home
        fields = [
            *BASE_FIELDS,
            "department_id",
            "simulation_id",
            "simulation_title",
            "cohort_id",
            "cohort_name",
            "available_at",
            "due_at",
        ]


class PracticeOut(EntryOut):
    class Meta:
        model = m.Practice
        fields = [
            *BASE_FIELDS,
            "department_id",
            "simulation_id",
            "simulation_title",
            "cohort_id",
            "cohort_name",
        ]


class AgentOut(ArtifactOut):
    department_id = serializers.UUIDField(read_only=True, allow_null=True)
    default_model_id = serializers.UUIDField(read_only=True, allow_null=True)
    parameter_id = serializers.UUIDField(
        source="parameter_set_id",
        read_only=True,
        allow_null=True,
        help_text="The agent's parameter set (family `parameter`).",
    )
    tool_ids = serializers.SerializerMethodField()

    class Meta:
        model = m.Agent
        fields = [
            *BASE_FIELDS,
            "department_id",
            "system_prompt",
            "default_model_id",
            "parameter_id",
            "tool_ids",
        ]

    def get_tool_ids(self, obj) -> list[str]:
        return [str(tool.id) for tool in obj.tools.all()]


class EvalOut(DeclaresFields, ArtifactOut):
    department_id = serializers.UUIDField(read_only=True, allow_null=True)
    rubric_id = serializers.UUIDField(read_only=True)
    scenario_ids = serializers.SerializerMethodField()
    settings = StoredJSONField(serializers.DictField())
    field_ids = FIELD_IDS

    class Meta:
        model = m.Eval
        fields = [
            *BASE_FIELDS,
            "department_id",
            "rubric_id",
            "scenario_ids",
            "turns",
            "settings",
            "field_ids",
        ]

    def get_scenario_ids(self, obj) -> list[str]:
        return [str(scenario.id) for scenario in obj.scenarios.all()]


# -- write validation (drafts and publish): serializers validate, services save ----------------


class OrgScopedPK(serializers.PrimaryKeyRelatedField):
    """A reference to another row of the actor's organization; anything else answers 404, as an
    unknown id does (no request schema can say which ids exist)."""

    def get_queryset(self):
        actor = self.context.get("actor")
        queryset = super().get_queryset()
        return queryset.filter(organization_id=actor.organization_id) if actor else queryset.none()

    def fail(self, key, **kwargs):
        if key == "does_not_exist":
            name = self.field_name or "reference"
            raise NotFound(
                f"Unknown {name}: {kwargs.get('pk_value')}.",
                code="unknown_ids",
                fields={name: [str(kwargs.get("pk_value"))]},
            )
        super().fail(key, **kwargs)


def department_field():
    from glow.accounts.models import Department

    return OrgScopedPK(queryset=Department.objects.all(), required=False, allow_null=True)


class ArtifactWrite(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(required=False, allow_blank=True)


class DepartmentWrite(ArtifactWrite):
    department = department_field()


def _line(**kwargs):
    return serializers.CharField(max_length=600, **kwargs)


class ConcernWrite(serializers.Serializer):
    topic = serializers.CharField(max_length=120, help_text='A noun phrase: "the base case".')
    worry = _line(help_text="How the student first raises it, in the first person.")
    ask = _line(required=False, help_text="The student's question about it while it is open.")
    more = _line(required=False, help_text="What the student adds when asked to say more.")
    pushback = _line(required=False, help_text="What the student says when it is dismissed.")
    relief = _line(required=False, help_text="What the student says once it is addressed.")
    cues = serializers.ListField(
        child=serializers.CharField(max_length=60),
        required=False,
        max_length=20,
        help_text="Words a learner uses when addressing it (default: the topic's words).",
    )


class PersonaWrite(DepartmentWrite):
    traits = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=30
    )
    intensity = serializers.IntegerField(min_value=1, max_value=10, required=False)
    voice = serializers.CharField(max_length=100, required=False, allow_blank=True)
    goal = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    concerns = serializers.ListField(child=ConcernWrite(), required=False, max_length=12)
    phrases = serializers.ListField(
        child=serializers.CharField(max_length=300), required=False, max_length=30
    )


def field_ids_field():
    return serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=100,
        help_text="Fields (family `field`) of this organization that the row declares.",
    )


class DocumentWrite(DepartmentWrite):
    text = serializers.CharField(required=False, allow_blank=True)


class QuestionOption(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    text = serializers.CharField(max_length=1000)


class Question(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    text = serializers.CharField(max_length=2000)
    options = QuestionOption(many=True)
    correct_option_ids = serializers.ListField(child=serializers.CharField(max_length=100))


class ScenarioWrite(DepartmentWrite):
    persona = OrgScopedPK(queryset=m.Persona.objects.all())
    context = serializers.CharField(required=False, allow_blank=True)
    modality = serializers.ChoiceField(choices=m.Modality.choices, required=False)
    questions = Question(many=True, required=False)
    persona_opens = serializers.BooleanField(required=False)
    opening_line = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    learner_goal = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    concerns = serializers.ListField(child=ConcernWrite(), required=False, max_length=12)
    field_ids = field_ids_field()


class StandardWrite(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    points = serializers.IntegerField(min_value=0, max_value=1000)


class StandardGroupWrite(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    standards = StandardWrite(many=True)


class RubricWrite(DepartmentWrite):
    groups = StandardGroupWrite(many=True, required=False)
    judge_samples = serializers.IntegerField(
        min_value=1, max_value=5, required=False, help_text="AI judge samples per chat."
    )
    judge_spread_threshold = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="A criterion whose samples spread by more than this fraction of its points "
        "sends the chat to review.",
    )
    judge_model_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=5,
        help_text="Grade with each of these models once (instead of judge_samples of one).",
    )


class SimulationWrite(DepartmentWrite):
    rubric = OrgScopedPK(queryset=m.Rubric.objects.all(), required=False, allow_null=True)
    scenario_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=100
    )
    time_limit_minutes = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    pass_threshold = serializers.IntegerField(min_value=0, max_value=100, required=False)
    leaderboard_method = serializers.ChoiceField(
        choices=m.LeaderboardMethod.choices, required=False
    )
    leaderboard_shows_names = serializers.BooleanField(required=False)
    calibration_required = serializers.BooleanField(
        required=False,
        help_text="Learners see 'awaiting review' for criteria the judge is not calibrated on.",
    )
    calibration_kappa_threshold = serializers.FloatField(
        min_value=-1.0, max_value=1.0, required=False
    )
    calibration_min_n = serializers.IntegerField(min_value=1, max_value=10000, required=False)


class HomeWrite(DepartmentWrite):
    simulation = OrgScopedPK(queryset=m.Simulation.objects.all())
    cohort = OrgScopedPK(queryset=m.Home._meta.get_field("cohort").related_model.objects.all())
    available_at = serializers.DateTimeField(required=False, allow_null=True)
    due_at = serializers.DateTimeField(required=False, allow_null=True)


class PracticeWrite(DepartmentWrite):
    simulation = OrgScopedPK(queryset=m.Simulation.objects.all())
    cohort = OrgScopedPK(
        queryset=m.Practice._meta.get_field("cohort").related_model.objects.all(),
        required=False,
        allow_null=True,
    )


class ModelWrite(ArtifactWrite):
    provider = serializers.ChoiceField(choices=m.Provider.choices, required=False)
    provider_model = serializers.CharField(max_length=200, required=False)
    base_url = serializers.URLField(required=False, allow_blank=True)
    api_key_env = serializers.RegexField(
        r"^[A-Z_][A-Z0-9_]*$", max_length=100, required=False, allow_blank=True
    )
    structured_output = serializers.ChoiceField(
        choices=m.StructuredOutput.choices, required=False, allow_blank=True
    )
    input_price_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False
    )
    output_price_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False
    )


class ToolWrite(ArtifactWrite):
    name = serializers.SlugField(max_length=100)
    json_schema = JSONObjectField(required=False)
    field_ids = field_ids_field()


class AgentWrite(DepartmentWrite):
    system_prompt = serializers.CharField(required=False, allow_blank=True)
    tool_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=50)
    default_model = OrgScopedPK(queryset=m.AIModel.objects.all(), required=False, allow_null=True)
    parameter_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="A parameter set (family `parameter`) of this organization; null: none.",
    )


class EvalWrite(DepartmentWrite):
    rubric = OrgScopedPK(queryset=m.Rubric.objects.all())
    scenario_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=200
    )
    turns = serializers.IntegerField(min_value=1, max_value=50, required=False)
    settings = JSONObjectField(required=False)
    field_ids = field_ids_field()


# A field's default, of each type as models.field_problems takes it (the type given, else string).
_DEFAULTS = {
    m.FieldType.STRING: {"type": "string", "pattern": NO_NUL},
    m.FieldType.INTEGER: {"type": "integer"},
    m.FieldType.NUMBER: {"type": "number"},
    m.FieldType.BOOLEAN: {"type": "boolean"},
    m.FieldType.DATE: {"type": "string", "format": "date"},
}
_NO_VALUES = {"type": "array", "maxItems": 0}


class InputFieldWrite(ArtifactWrite):
    """Per attribute; the declaration as a whole is the model's invariant, checked on save against
    the row's other values: enum values iff an enum, each once; a default of the field's type. An
    enum's default must be one of its values, which no schema can state: the shape that creates
    a field lists it as null, though the server takes one of the values too."""

    variants = Variants(
        on="type",
        absent=m.FieldType.STRING,
        shapes={
            **{
                kind: {"default": {**schema, "nullable": True}, "enum_values": _NO_VALUES}
                for kind, schema in _DEFAULTS.items()
            },
            m.FieldType.ENUM: {
                "enum_values": {"type": "array", "minItems": 1, "uniqueItems": True},
                "default": {"nullable": True, **only(None)},
            },
        },
    )

    name = serializers.SlugField(max_length=100)
    type = serializers.ChoiceField(choices=m.FieldType.choices, required=False)
    enum_values = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=200,
        help_text="The values an enum field takes (required for type enum, refused otherwise).",
    )
    required = serializers.BooleanField(required=False)
    default = JSONValueField(required=False, allow_null=True)


def _range(bounds, kind=serializers.FloatField, **kwargs):
    return kind(min_value=bounds[0], max_value=bounds[1], required=False, allow_null=True, **kwargs)


class ParameterSetWrite(ArtifactWrite):
    temperature = _range(m.TEMPERATURE_RANGE, help_text="0 (deterministic) to 2.")
    top_p = _range(m.TOP_P_RANGE, help_text="Nucleus sampling mass, 0 to 1.")
    max_tokens = _range(m.MAX_TOKENS_RANGE, serializers.IntegerField)
    seed = _range(m.SEED_RANGE, serializers.IntegerField, help_text="Same seed, same sample.")
