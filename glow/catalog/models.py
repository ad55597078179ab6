"""Authored artifacts: what learners practise against and what tests benchmark."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from glow.core.models import Artifact, ArtifactQuerySet


class DepartmentOwned(Artifact):
    """Most catalog rows belong to a department (instructors see theirs); None means org-wide."""

    department = models.ForeignKey(
        "accounts.Department", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta(Artifact.Meta):
        abstract = True


class Persona(DepartmentOwned):
    traits = models.JSONField(
        default=list, blank=True, help_text="Short trait phrases, e.g. 'anxious'."
    )
    intensity = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    voice = models.CharField(
        max_length=100, blank=True, help_text="Speaking style or TTS voice name."
    )
    goal = models.TextField(
        blank=True, help_text="What the student wants out of the conversation, in their words."
    )
    # [{"topic", "worry", "ask"?, "more"?, "pushback"?, "relief"?, "cues"?: [...]}]: what the
    # simulated student raises, asks about, pushes back on and lets go of (CONCERN_FIELDS).
    concerns = models.JSONField(
        default=list, blank=True, help_text="Worries and misconceptions the student brings."
    )
    phrases = models.JSONField(
        default=list, blank=True, help_text="Things this student typically says."
    )

    class Meta(DepartmentOwned.Meta):
        pass


class Document(DepartmentOwned):
    text = models.TextField(blank=True)
    file = models.FileField(upload_to="documents/", blank=True)

    class Meta(DepartmentOwned.Meta):
        pass


class FieldType(models.TextChoices):
    STRING = "string", "Text"
    INTEGER = "integer", "Whole number"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes or no"
    ENUM = "enum", "One of a list"
    DATE = "date", "Date (YYYY-MM-DD)"


def _fits(kind: str, value, enum_values: list) -> bool:
    if kind == FieldType.BOOLEAN:
        return isinstance(value, bool)
    if kind == FieldType.INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == FieldType.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == FieldType.ENUM:
        return value in enum_values
    if kind == FieldType.DATE:
        return isinstance(value, str) and _is_date(value)
    return isinstance(value, str)


def _is_date(value: str) -> bool:
    import datetime as dt

    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def field_problems(*, kind: str, enum_values: list, default) -> dict[str, list[str]]:
    """What makes a field's declaration unusable, by the attribute at fault (empty: none)."""
    problems: dict[str, list[str]] = {}
    if kind == FieldType.ENUM:
        if not enum_values:
            problems["enum_values"] = ["An enum field needs at least one value."]
        elif len(set(map(str, enum_values))) != len(enum_values):
            problems["enum_values"] = ["Each value may appear once."]
    elif enum_values:
        problems["enum_values"] = [f"Only an enum field lists values; this one is {kind}."]
    if (
        default is not None
        and "enum_values" not in problems
        and not _fits(kind, default, enum_values)
    ):
        allowed = f"one of {', '.join(map(str, enum_values))}" if kind == FieldType.ENUM else kind
        problems["default"] = [f"The default must be {allowed}."]
    return problems


class InputField(Artifact):
    """A typed, described input that tools, evals and scenarios declare and reuse."""

    name = models.SlugField(max_length=100, help_text="The key it is sent under: grade_level.")
    type = models.CharField(max_length=10, choices=FieldType.choices, default=FieldType.STRING)
    enum_values = models.JSONField(
        default=list, blank=True, help_text="The values an enum field takes, in order."
    )
    required = models.BooleanField(default=False)
    default = models.JSONField(null=True, blank=True, help_text="Used when no value is given.")

    class Meta(Artifact.Meta):
        pass

    def clean(self) -> None:
        problems = field_problems(
            kind=self.type, enum_values=self.enum_values, default=self.default
        )
        if problems:
            raise ValidationError(problems)

    def json_schema(self) -> dict:
        """The field as a JSON Schema property (what a tool's arguments declare)."""
        kind = {FieldType.ENUM: "string", FieldType.DATE: "string"}.get(self.type, self.type)
        schema: dict = {"type": kind, "description": self.description or self.title}
        if self.type == FieldType.ENUM:
            schema["enum"] = list(self.enum_values)
        if self.type == FieldType.DATE:
            schema["format"] = "date"
        if self.default is not None:
            schema["default"] = self.default
        return schema


# Ranges every OpenAI-compatible server accepts; a parameter set outside them is refused on write.
TEMPERATURE_RANGE = (0.0, 2.0)
TOP_P_RANGE = (0.0, 1.0)
MAX_TOKENS_RANGE = (1, 128_000)
SEED_RANGE = (0, 2**31 - 1)


def _between(bounds) -> list:
    return [MinValueValidator(bounds[0]), MaxValueValidator(bounds[1])]


class ParameterSet(Artifact):
    """A named set of model parameters; empty ones are left to the model server's defaults."""

    temperature = models.FloatField(null=True, blank=True, validators=_between(TEMPERATURE_RANGE))
    top_p = models.FloatField(null=True, blank=True, validators=_between(TOP_P_RANGE))
    max_tokens = models.PositiveIntegerField(
        null=True, blank=True, validators=_between(MAX_TOKENS_RANGE)
    )
    seed = models.BigIntegerField(
        null=True, blank=True, validators=_between(SEED_RANGE), help_text="Same seed, same sample."
    )

    class Meta(Artifact.Meta):
        pass

    def options(self) -> dict:
        """The parameters that are set, by their provider-call names."""
        values = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }
        return {name: value for name, value in values.items() if value is not None}


class Modality(models.TextChoices):
    TEXT = "text", "Text"
    AUDIO = "audio", "Audio"
    VIDEO = "video", "Video"


class ScenarioQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("persona").prefetch_related("input_fields")


class Scenario(DepartmentOwned):
    persona = models.ForeignKey(Persona, on_delete=models.PROTECT, related_name="scenarios")
    context = models.TextField(blank=True, help_text="What the learner knows walking in.")
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT)
    # [{"id", "text", "options": [{"id", "text"}], "correct_option_ids": [...]}] for video scenarios.
    questions = models.JSONField(default=list, blank=True)
    documents = models.ManyToManyField(Document, blank=True, related_name="scenarios")
    persona_opens = models.BooleanField(
        default=False, help_text="The student speaks first, with the opening line."
    )
    opening_line = models.TextField(blank=True, help_text="The student's first message.")
    learner_goal = models.TextField(
        blank=True, help_text="What the learner should achieve in this conversation."
    )
    concerns = models.JSONField(
        default=list, blank=True, help_text="Concerns the student brings to this situation."
    )
    input_fields = models.ManyToManyField(InputField, blank=True, related_name="scenarios")

    objects = ScenarioQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass


class RubricQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.prefetch_related("groups__standards", "judge_models")


class Rubric(DepartmentOwned):
    # Judge disagreement: the AI grader is asked this many times per chat; a criterion whose
    # samples spread by more than this fraction of its points sends the chat to review.
    judge_samples = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    judge_spread_threshold = models.FloatField(
        default=0.25,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Fraction of a criterion's points.",
    )
    # k judge models instead of k samples of one: each grades once (a Run on that model).
    judge_models = models.ManyToManyField("AIModel", blank=True, related_name="+")

    objects = RubricQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass

    @property
    def total_points(self) -> int:
        return sum(
            standard.points for group in self.groups.all() for standard in group.standards.all()
        )

    def structure(self) -> list[dict]:
        return [
            {
                "id": str(group.id),
                "name": group.name,
                "total_points": sum(standard.points for standard in group.standards.all()),
                "standards": [
                    {
                        "id": str(standard.id),
                        "name": standard.name,
                        "description": standard.description,
                        "points": standard.points,
                    }
                    for standard in group.standards.all()
                ],
            }
            for group in self.groups.all()
        ]


def judge_models_of(rubric: Rubric) -> list:
    """The rubric's judge models in a stable order (title, then id), prefetched or not."""
    return sorted(rubric.judge_models.all(), key=lambda model: (model.title, str(model.pk)))


class StandardGroup(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Standard(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(StandardGroup, on_delete=models.CASCADE, related_name="standards")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    points = models.PositiveIntegerField(default=1)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class SimulationQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("rubric", "department").prefetch_related(
            models.Prefetch(
                "simulation_scenarios",
                queryset=SimulationScenario.objects.select_related("scenario__persona").order_by(
                    "position"
                ),
            ),
            "rubric__groups__standards",
        )


class LeaderboardMethod(models.TextChoices):
    """Which of a learner's graded attempts ranks them (Moodle quiz's grading methods)."""

    HIGHEST = "highest", "Highest attempt"
    AVERAGE = "average", "Average of attempts"
    FIRST = "first", "First attempt"
    LAST = "last", "Last attempt"


class Simulation(DepartmentOwned):
    rubric = models.ForeignKey(
        Rubric, on_delete=models.PROTECT, null=True, blank=True, related_name="simulations"
    )
    scenarios = models.ManyToManyField(
        Scenario, through="SimulationScenario", related_name="simulations"
    )
    time_limit_minutes = models.PositiveIntegerField(null=True, blank=True)
    pass_threshold = models.PositiveSmallIntegerField(
        default=70,
        validators=[MaxValueValidator(100)],
        help_text="Percent of total points to pass.",
    )
    leaderboard_method = models.CharField(
        max_length=10,
        choices=LeaderboardMethod.choices,
        default=LeaderboardMethod.HIGHEST,
        help_text="Which graded attempt ranks a learner on the leaderboard.",
    )
    leaderboard_shows_names = models.BooleanField(
        default=False,
        help_text="Learners see each other's names on the leaderboard (otherwise ranks only).",
    )
    # Calibration gating: a criterion whose judge-vs-human agreement is below the kappa
    # threshold, or measured on fewer reviewed chats than the minimum, shows learners
    # "awaiting review" instead of the AI's score, and its chats enter the review queue.
    calibration_required = models.BooleanField(default=False)
    calibration_kappa_threshold = models.FloatField(
        default=0.6, validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)]
    )
    calibration_min_n = models.PositiveIntegerField(default=20)

    objects = SimulationQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass

    def ordered_scenarios(self) -> list[Scenario]:
        return [link.scenario for link in self.simulation_scenarios.all()]


class SimulationScenario(models.Model):
    simulation = models.ForeignKey(
        Simulation, on_delete=models.CASCADE, related_name="simulation_scenarios"
    )
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["simulation", "scenario"], name="simulation_scenario_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position + 1}. {self.scenario_id}"


class EntryQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("simulation", "cohort", "department")


class Home(DepartmentOwned):
    """A simulation assigned to a cohort: what learners see on their home page."""

    simulation = models.ForeignKey(Simulation, on_delete=models.PROTECT, related_name="homes")
    cohort = models.ForeignKey("accounts.Cohort", on_delete=models.CASCADE, related_name="homes")
    available_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)

    objects = EntryQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass


class Practice(DepartmentOwned):
    """A practice-mode entry: ungraded toward a due date; a cohort, or the whole department."""

    simulation = models.ForeignKey(Simulation, on_delete=models.PROTECT, related_name="practices")
    cohort = models.ForeignKey(
        "accounts.Cohort", on_delete=models.CASCADE, null=True, blank=True, related_name="practices"
    )

    objects = EntryQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass


class Provider(models.TextChoices):
    LOCAL = "local", "Local simulator"
    OPENAI = "openai", "OpenAI-compatible"


class StructuredOutput(models.TextChoices):
    """How the model's server is asked for JSON (glow.ai.negotiation.Mode); blank: negotiate."""

    NEGOTIATE = "", "Negotiate with the server"
    JSON_SCHEMA = "json_schema", "response_format json_schema (OpenAI, vLLM, Ollama)"
    JSON_OBJECT_SCHEMA = "json_object_schema", "json_object with a schema (llama-cpp-python)"
    JSON_OBJECT = "json_object", "Plain JSON mode, schema in the prompt"
    PROMPT = "prompt", "No JSON mode, schema in the prompt"


class AIModel(Artifact):
    """A language model and its prices per million tokens."""

    demo_label = "catalog.model"  # its demo rows' ids derive from the class's former name

    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.LOCAL)
    provider_model = models.CharField(max_length=200, default="glow-local")
    base_url = models.URLField(blank=True, help_text="Empty: the settings default.")
    api_key_env = models.CharField(max_length=100, blank=True, help_text="Env var holding the key.")
    structured_output = models.CharField(
        max_length=20,
        choices=StructuredOutput.choices,
        blank=True,
        default=StructuredOutput.NEGOTIATE,
        help_text="How to ask the server for JSON; blank: find out and remember.",
    )
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )
    output_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )

    class Meta(Artifact.Meta):
        # The class was `Model`; its table, and what people read, keep that name.
        db_table = "catalog_model"
        verbose_name = "model"


class ToolQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.prefetch_related("input_fields")


class Tool(Artifact):
    name = models.SlugField(max_length=100)
    json_schema = models.JSONField(default=dict, blank=True)
    # Declared arguments, reused across tools; json_schema stays the tool's own, verbatim.
    input_fields = models.ManyToManyField(InputField, blank=True, related_name="tools")

    objects = ToolQuerySet.as_manager()

    class Meta(Artifact.Meta):
        pass


class AgentQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("default_model", "parameter_set").prefetch_related("tools")


class Agent(DepartmentOwned):
    """An AI assistant under test: a system prompt, tools, a default model."""

    system_prompt = models.TextField(blank=True)
    tools = models.ManyToManyField(Tool, blank=True, related_name="agents")
    default_model = models.ForeignKey(
        AIModel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    parameter_set = models.ForeignKey(
        ParameterSet,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agents",
        help_text="Model parameters for the agent's calls, unless a test cell names its own.",
    )

    objects = AgentQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass


class EvalQuerySet(ArtifactQuerySet):
    def for_api(self):
        return self.select_related("rubric").prefetch_related("scenarios", "input_fields")


class Eval(DepartmentOwned):
    """What a test measures: a rubric, default scenarios, the number of turns per conversation."""

    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="evals")
    scenarios = models.ManyToManyField(Scenario, blank=True, related_name="evals")
    turns = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    settings = models.JSONField(default=dict, blank=True)
    input_fields = models.ManyToManyField(InputField, blank=True, related_name="evals")

    objects = EvalQuerySet.as_manager()

    class Meta(DepartmentOwned.Meta):
        pass
