"""The catalog's family declarations: one registry entry each, no per-family view code."""

from __future__ import annotations

from django.db import transaction

from glow.catalog import filters as f
from glow.catalog import models as m
from glow.catalog import selectors as s
from glow.catalog import serializers as out
from glow.core.errors import NotFound
from glow.core.registry import Facet, Family, registry

DEPARTMENT = Facet(
    name="department",
    param="department_ids",
    field="department_id",
    label="department__name",
    search_param="department_search",
)
SIMULATION = Facet(
    name="simulation",
    param="simulation_ids",
    field="simulation_id",
    label="simulation__title",
    search_param="simulation_search",
)
PARAMETER = Facet(
    name="parameter",
    param="parameter_ids",
    field="parameter_set_id",
    label="parameter_set__title",
)
COHORT = Facet(name="cohort", param="cohort_ids", field="cohort_id", label="cohort__name")


def _save_plain(instance, data: dict) -> None:
    for name, value in data.items():
        setattr(instance, name, value)
    instance.full_clean(exclude=["organization", "created_by"])
    instance.save()


def _ordered_rows(*, model, ids, organization_id, label: str):
    """The rows in the order given (a repeated id repeats its row); an unknown one answers 404."""
    rows = {
        row.id: row for row in model.objects.filter(organization_id=organization_id, id__in=ids)
    }
    missing = list(dict.fromkeys(str(pk) for pk in ids if pk not in rows))
    if missing:
        raise NotFound(
            f"Unknown {label}: {', '.join(missing)}.",
            code="unknown_ids",
            fields={f"{label}_ids": missing},
        )
    return [rows[pk] for pk in ids]


def _org_refs(*, model, ids, organization_id, label: str) -> list:
    """Rows of the instance's organization; any other id answers 404 naming it (as an unknown
    id does), so a reference never tells whether another organization's row exists."""
    unique = list(dict.fromkeys(ids))
    found = model.objects.filter(organization_id=organization_id, id__in=unique).in_bulk()
    missing = [str(pk) for pk in unique if pk not in found]
    if missing:
        raise NotFound(
            f"Unknown {label}: {', '.join(missing)}.", code="unknown_ids", fields={label: missing}
        )
    return [found[pk] for pk in unique]


def _declared_fields(instance, field_ids) -> None:
    """Set the row's declared fields (tools, evals, scenarios); None leaves them as they are.
    Called inside the write's transaction: a refused id rolls the whole write back."""
    if field_ids is not None:
        instance.input_fields.set(
            _org_refs(
                model=m.InputField,
                ids=field_ids,
                organization_id=instance.organization_id,
                label="field_ids",
            )
        )


@transaction.atomic
def write_declaring(instance, data: dict):
    """A plain row that declares fields (`field_ids`)."""
    field_ids = data.pop("field_ids", None)
    _save_plain(instance, data)
    _declared_fields(instance, field_ids)
    return instance


@transaction.atomic
def write_plain(instance, data: dict):
    _save_plain(instance, data)
    return instance


@transaction.atomic
def write_rubric(instance: m.Rubric, data: dict):
    groups = data.pop("groups", None)
    judge_model_ids = data.pop("judge_model_ids", None)
    _save_plain(instance, data)
    if judge_model_ids is not None:
        instance.judge_models.set(
            _ordered_rows(
                model=m.AIModel,
                ids=judge_model_ids,
                organization_id=instance.organization_id,
                label="judge_model",
            )
        )
    if groups is not None:
        instance.groups.all().delete()
        for group_position, group in enumerate(groups):
            row = m.StandardGroup.objects.create(
                rubric=instance, name=group["name"], position=group_position
            )
            m.Standard.objects.bulk_create(
                m.Standard(group=row, position=position, **standard)
                for position, standard in enumerate(group["standards"])
            )
    return instance


@transaction.atomic
def write_simulation(instance: m.Simulation, data: dict):
    scenario_ids = data.pop("scenario_ids", None)
    _save_plain(instance, data)
    if scenario_ids is not None:
        scenarios = _ordered_rows(
            model=m.Scenario,
            ids=scenario_ids,
            organization_id=instance.organization_id,
            label="scenario",
        )
        instance.simulation_scenarios.all().delete()
        m.SimulationScenario.objects.bulk_create(
            m.SimulationScenario(simulation=instance, scenario=scenario, position=position)
            for position, scenario in enumerate(scenarios)
        )
    return instance


@transaction.atomic
def write_agent(instance: m.Agent, data: dict):
    tool_ids = data.pop("tool_ids", None)
    if "parameter_id" in data:
        parameter_id = data.pop("parameter_id")
        data["parameter_set"] = (
            None
            if parameter_id is None
            else _org_refs(
                model=m.ParameterSet,
                ids=[parameter_id],
                organization_id=instance.organization_id,
                label="parameter_id",
            )[0]
        )
    _save_plain(instance, data)
    if tool_ids is not None:
        instance.tools.set(
            _ordered_rows(
                model=m.Tool, ids=tool_ids, organization_id=instance.organization_id, label="tool"
            )
        )
    return instance


@transaction.atomic
def write_eval(instance: m.Eval, data: dict):
    scenario_ids = data.pop("scenario_ids", None)
    field_ids = data.pop("field_ids", None)
    _save_plain(instance, data)
    _declared_fields(instance, field_ids)
    if scenario_ids is not None:
        instance.scenarios.set(
            _ordered_rows(
                model=m.Scenario,
                ids=scenario_ids,
                organization_id=instance.organization_id,
                label="scenario",
            )
        )
    return instance


def persona_context(persona: m.Persona) -> str:
    traits = ", ".join(persona.traits) or "no particular traits"
    voice = f" Voice: {persona.voice}." if persona.voice else ""
    text = f"{persona.title}: {persona.description}\nTraits: {traits}. Intensity {persona.intensity}/10.{voice}"
    if persona.goal:
        text += f"\nWants: {persona.goal}"
    topics = [str(item.get("topic")) for item in persona.concerns or [] if isinstance(item, dict)]
    if topics:
        text += f"\nConcerns: {'; '.join(topics)}."
    return text


def scenario_context(scenario: m.Scenario) -> str:
    documents = "\n".join(f"- {doc.title}: {doc.text[:500]}" for doc in scenario.documents.all())
    parts = [
        f"Scenario: {scenario.title} ({scenario.modality})",
        scenario.context,
        f"Student: {persona_context(scenario.persona)}",
    ]
    if documents:
        parts.append(f"Documents:\n{documents}")
    return "\n\n".join(part for part in parts if part)


def simulation_context(simulation: m.Simulation) -> str:
    lines = [f"Simulation: {simulation.title}", simulation.description]
    for position, scenario in enumerate(simulation.ordered_scenarios(), start=1):
        lines.append(f"{position}. {scenario.title} — {scenario.persona.title}")
    if simulation.rubric:
        lines.append(f"Rubric: {simulation.rubric.title} ({simulation.rubric.total_points} points)")
    return "\n".join(line for line in lines if line)


def rubric_context(rubric: m.Rubric) -> str:
    lines = [f"Rubric: {rubric.title}"]
    for group in rubric.structure():
        lines.append(f"{group['name']} ({group['total_points']} points)")
        lines.extend(
            f"  - {std['name']} ({std['points']}): {std['description']}"
            for std in group["standards"]
        )
    return "\n".join(lines)


def problem(code: str, message: str, field: str | None = None) -> dict:
    return {"code": code, "message": message, "field": field}


def simulation_problems(simulation: m.Simulation) -> list[dict]:
    problems = []
    if not simulation.simulation_scenarios.exists():
        problems.append(problem("no_scenarios", "The simulation has no scenarios.", "scenario_ids"))
    if simulation.rubric_id is None:
        problems.append(
            problem(
                "no_rubric", "The simulation has no rubric, so chats cannot be graded.", "rubric"
            )
        )
    elif simulation.rubric.total_points == 0:
        problems.append(problem("empty_rubric", "The rubric has no points to earn.", "rubric"))
    if simulation.simulation_scenarios.filter(scenario__archived=True).exists():
        problems.append(
            problem("archived_scenario", "An archived scenario is still in the simulation.")
        )
    return problems


def rubric_problems(rubric: m.Rubric) -> list[dict]:
    if rubric.total_points == 0:
        return [problem("empty_rubric", "The rubric has no standards with points.", "groups")]
    return []


def entry_problems(entry) -> list[dict]:
    problems = []
    if entry.simulation.archived:
        problems.append(problem("archived_simulation", "The simulation is archived.", "simulation"))
    problems.extend(simulation_problems(entry.simulation))
    due_at = getattr(entry, "due_at", None)
    available_at = getattr(entry, "available_at", None)
    if due_at and available_at and due_at < available_at:
        problems.append(
            problem("due_before_available", "The due date is before the available date.", "due_at")
        )
    return problems


def model_problems(model: m.AIModel) -> list[dict]:
    import os

    if (
        model.provider == m.Provider.OPENAI
        and model.api_key_env
        and not os.environ.get(model.api_key_env)
    ):
        return [
            problem(
                "missing_key",
                f"The env var {model.api_key_env} is not set on this server.",
                "api_key_env",
            )
        ]
    return []


def field_context(field: m.InputField) -> str:
    """How a field reads to a model: its key, type, whether it is required, what it means."""
    kind = f"one of {', '.join(map(str, field.enum_values))}" if field.enum_values else field.type
    required = "required" if field.required else "optional"
    default = "" if field.default is None else f", default {field.default!r}"
    return f"{field.name} ({kind}, {required}{default}): {field.description or field.title}"


def parameter_context(parameters: m.ParameterSet) -> str:
    options = ", ".join(f"{name}={value}" for name, value in parameters.options().items())
    return f"{parameters.title}: {options or 'the model server defaults'}"


def scenario_problems(scenario: m.Scenario) -> list[dict]:
    problems = []
    if scenario.persona.archived:
        problems.append(problem("archived_persona", "The persona is archived.", "persona"))
    if scenario.modality == m.Modality.VIDEO and not scenario.questions:
        problems.append(problem("no_questions", "A video scenario has no questions.", "questions"))
    if scenario.persona_opens and not scenario.opening_line.strip():
        problems.append(
            problem(
                "no_opening_line",
                "The student opens this conversation but has no opening line.",
                "opening_line",
            )
        )
    return problems


FAMILIES = [
    Family(
        name="persona",
        plural="personas",
        model=m.Persona,
        output_serializer=out.PersonaOut,
        write_serializer=out.PersonaWrite,
        filterset=f.PersonaFilterSet,
        facets=[DEPARTMENT],
        scope=s.persona_scope,
        writer=write_plain,
        context=persona_context,
        description="An AI-simulated student: traits, intensity and voice.",
    ),
    Family(
        name="scenario",
        plural="scenarios",
        model=m.Scenario,
        output_serializer=out.ScenarioOut,
        write_serializer=out.ScenarioWrite,
        filterset=f.ScenarioFilterSet,
        facets=[
            DEPARTMENT,
            Facet(name="persona", param="persona_ids", field="persona_id", label="persona__title"),
        ],
        scope=s.scenario_scope,
        writer=write_declaring,
        context=scenario_context,
        problems=scenario_problems,
        description="One conversation: a persona, the situation, its modality (text, audio, video).",
    ),
    Family(
        name="rubric",
        plural="rubrics",
        model=m.Rubric,
        output_serializer=out.RubricOut,
        write_serializer=out.RubricWrite,
        filterset=f.RubricFilterSet,
        facets=[DEPARTMENT],
        scope=s.rubric_scope,
        writer=write_rubric,
        context=rubric_context,
        problems=rubric_problems,
        description="Standard groups and standards with points; chats are graded against it.",
    ),
    Family(
        name="simulation",
        plural="simulations",
        model=m.Simulation,
        output_serializer=out.SimulationOut,
        write_serializer=out.SimulationWrite,
        filterset=f.SimulationFilterSet,
        facets=[DEPARTMENT],
        scope=s.simulation_scope,
        writer=write_simulation,
        context=simulation_context,
        problems=simulation_problems,
        description="Ordered scenarios, a rubric, a time limit and a pass threshold.",
    ),
    Family(
        name="home",
        plural="homes",
        model=m.Home,
        output_serializer=out.HomeOut,
        write_serializer=out.HomeWrite,
        filterset=f.HomeFilterSet,
        facets=[SIMULATION, COHORT, DEPARTMENT],
        scope=s.home_scope,
        writer=write_plain,
        problems=entry_problems,
        description="A simulation assigned to a cohort, with available and due dates.",
    ),
    Family(
        name="practice",
        plural="practices",
        model=m.Practice,
        output_serializer=out.PracticeOut,
        write_serializer=out.PracticeWrite,
        filterset=f.PracticeFilterSet,
        facets=[SIMULATION, DEPARTMENT],
        scope=s.practice_scope,
        writer=write_plain,
        problems=entry_problems,
        description="A practice-mode entry to a simulation.",
    ),
    Family(
        name="agent",
        plural="agents",
        model=m.Agent,
        output_serializer=out.AgentOut,
        write_serializer=out.AgentWrite,
        filterset=f.AgentFilterSet,
        facets=[DEPARTMENT, PARAMETER],
        scope=s.staff_only_scope,
        writer=write_agent,
        context=lambda agent: f"{agent.title}\n{agent.system_prompt}",
        description="An AI assistant under test: a system prompt, tools, a default model and "
        "its model parameters.",
    ),
    Family(
        name="model",
        plural="models",
        model=m.AIModel,
        output_serializer=out.ModelOut,
        write_serializer=out.ModelWrite,
        filterset=f.ModelFilterSet,
        scope=s.staff_only_scope,
        writer=write_plain,
        problems=model_problems,
        write_roles=("admin",),
        description="A language model behind a provider, with prices per million tokens.",
    ),
    Family(
        name="eval",
        plural="evals",
        model=m.Eval,
        output_serializer=out.EvalOut,
        write_serializer=out.EvalWrite,
        filterset=f.EvalFilterSet,
        facets=[DEPARTMENT],
        scope=s.staff_only_scope,
        writer=write_eval,
        description="What a test measures: a rubric, default scenarios, turns per conversation, "
        "declared fields.",
    ),
    Family(
        name="tool",
        plural="tools",
        model=m.Tool,
        output_serializer=out.ToolOut,
        write_serializer=out.ToolWrite,
        filterset=f.ToolFilterSet,
        scope=s.staff_only_scope,
        writer=write_declaring,
        description="A tool an agent may call, described by a JSON schema and declared fields.",
    ),
    Family(
        name="document",
        plural="documents",
        model=m.Document,
        output_serializer=out.DocumentOut,
        write_serializer=out.DocumentWrite,
        filterset=f.DocumentFilterSet,
        facets=[DEPARTMENT],
        scope=s.document_scope,
        writer=write_plain,
        context=lambda doc: f"{doc.title}\n{doc.text}",
        description="Text used as scenario context.",
    ),
    Family(
        name="field",
        plural="fields",
        model=m.InputField,
        output_serializer=out.InputFieldOut,
        write_serializer=out.InputFieldWrite,
        filterset=f.InputFieldFilterSet,
        scope=s.staff_only_scope,
        writer=write_plain,
        context=field_context,
        description="A typed, described input (string, integer, enum, ...) that tools, evals "
        "and scenarios declare and reuse.",
    ),
    Family(
        name="parameter",
        plural="parameters",
        model=m.ParameterSet,
        output_serializer=out.ParameterSetOut,
        write_serializer=out.ParameterSetWrite,
        filterset=f.ParameterSetFilterSet,
        scope=s.staff_only_scope,
        writer=write_plain,
        context=parameter_context,
        description="A named set of model parameters (temperature, top_p, max_tokens, seed) "
        "that agents and test cells use.",
    ),
]


def register_all() -> None:
    for family in FAMILIES:
        registry.register(family)
