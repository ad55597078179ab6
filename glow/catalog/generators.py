"""What one generate run creates for each catalog family, declared as registry Generators.

Each generator works only through the GenerationContext (system keeps the runs, events and
progress): `ctx.create` drafts one row's fields with a model call against a JSON schema and
saves it through the family's write path; `ctx.media` stores a rendered file. A row the
request names in `config.params` (e.g. `persona_id`) is used instead of generating one.
"""

from __future__ import annotations

import re

from django.core.exceptions import FieldDoesNotExist
from django.utils.text import slugify

from glow.catalog import models as m
from glow.catalog.scene_card import MIME_TYPE, scene_card_png
from glow.core.errors import ApplicationError
from glow.core.generation import GenerationContext, Generator
from glow.core.registry import registry
from glow.core.selectors import artifact_queryset

TEXT = {"type": "string"}
BASE = {"title": TEXT, "description": TEXT}


def _schema(optional: dict | None = None, **properties: dict) -> dict:
    return {
        "type": "object",
        "properties": {**properties, **(optional or {})},
        "required": list(properties),
    }


def _sized(model, schema: dict) -> dict:
    """`schema` with each text property as long as `model`'s column allows: a grammar-constrained
    server then cannot write a `voice` the row would refuse, and any other server's answer is
    repaired against the same bound."""
    properties = {}
    for name, subschema in schema["properties"].items():
        try:
            size = getattr(model._meta.get_field(name), "max_length", None)
        except FieldDoesNotExist:  # not a column (a relation or list): left as declared
            size = None
        if size and subschema.get("type") == "string" and "enum" not in subschema:
            subschema = {**subschema, "maxLength": size}
        properties[name] = subschema
    return {**schema, "properties": properties}


CONCERNS = {
    "type": "array",
    "maxItems": 4,
    "items": _schema(topic=TEXT, worry=TEXT, optional={"ask": TEXT, "pushback": TEXT}),
}
PERSONA = _sized(
    m.Persona,
    _schema(
        **BASE,
        traits={"type": "array", "items": TEXT, "minItems": 1, "maxItems": 8},
        intensity={"type": "integer", "minimum": 1, "maximum": 10},
        voice=TEXT,
        optional={"goal": TEXT, "concerns": CONCERNS, "phrases": {"type": "array", "items": TEXT}},
    ),
)
SCENARIO = _sized(
    m.Scenario,
    _schema(
        **BASE,
        context=TEXT,
        optional={"learner_goal": TEXT, "persona_opens": {"type": "boolean"}, "opening_line": TEXT},
    ),
)
STANDARD = _sized(
    m.Standard,
    _schema(name=TEXT, description=TEXT, points={"type": "integer", "minimum": 0, "maximum": 100}),
)
RUBRIC = _sized(
    m.Rubric,
    _schema(
        **BASE,
        groups={
            "type": "array",
            "minItems": 1,
            "items": _sized(
                m.StandardGroup,
                _schema(name=TEXT, standards={"type": "array", "minItems": 1, "items": STANDARD}),
            ),
        },
    ),
)
SIMULATION = _sized(m.Simulation, _schema(**BASE))
AGENT = _sized(m.Agent, _schema(**BASE, system_prompt=TEXT))
EVAL = _sized(m.Eval, _schema(**BASE, turns={"type": "integer", "minimum": 1, "maximum": 50}))
TOOL = _sized(m.Tool, _schema(**BASE, name=TEXT, json_schema={"type": "object"}))
DOCUMENT = _sized(m.Document, _schema(**BASE, text=TEXT))
FIELD = _sized(
    m.InputField,
    _schema(
        **BASE,
        name=TEXT,
        type={"type": "string", "enum": [choice.value for choice in m.FieldType]},
        enum_values={"type": "array", "items": TEXT, "maxItems": 200},
        required={"type": "boolean"},
        optional={"default": {"type": ["string", "number", "boolean", "null"]}},
    ),
)


def _range(kind: str, bounds) -> dict:
    return {"type": [kind, "null"], "minimum": bounds[0], "maximum": bounds[1]}


PARAMETER = _sized(
    m.ParameterSet,
    _schema(
        **BASE,
        temperature=_range("number", m.TEMPERATURE_RANGE),
        optional={
            "top_p": _range("number", m.TOP_P_RANGE),
            "max_tokens": _range("integer", m.MAX_TOKENS_RANGE),
            "seed": _range("integer", m.SEED_RANGE),
        },
    ),
)
MEDIA_MODALITIES = ("image", "video")


def _link(request: dict, name: str):
    """A row the request names in config.params, as `<name>` or `<name>_id`."""
    params = request.get("params") or {}
    return params.get(name) or params.get(f"{name}_id")


def _instructions(ctx: GenerationContext) -> list[str]:
    title = ctx.request.get("title") or ""
    return ctx.request.get("instructions") or ([title] if title else [])


def _single(family: str, schema: dict, prepare=None) -> Generator:
    def run(ctx: GenerationContext):
        return ctx.create(
            family=family,
            resource=family,
            instructions=_instructions(ctx),
            schema=schema,
            prepare=prepare,
        )

    return Generator(run=run, resources=lambda request: [family])


def _persona_id(ctx: GenerationContext, *, modality: str = "text"):
    """The persona named in the request, else the visible one the instructions fit best.

    A scenario's student comes from the catalog: the instructions of an image or video
    ("Wide-angle shot, late afternoon light") describe a scene, never a student. Only a text
    scenario in an organization without any persona drafts its student from the instructions.
    """
    named = _link(ctx.request, "persona")
    if named:
        return named
    personas = list(
        artifact_queryset(actor=ctx.actor, family=registry.get("persona"), include_archived=False)
        .order_by("-updated_at")
        .values_list("pk", "title", "description", "traits")[:200]
    )
    if not personas and modality in MEDIA_MODALITIES:
        raise ApplicationError(
            f"Name a persona for this {modality} scenario (config.params.persona_id): "
            "there is none yet.",
            fields={"persona_id": ["Required: no persona exists yet."]},
        )
    if not personas:
        return ctx.create(
            family="persona", resource="persona", instructions=_instructions(ctx), schema=PERSONA
        ).pk
    wanted = _words(" ".join(_instructions(ctx)) + " " + str(ctx.request.get("title") or ""))
    best = max(
        personas,
        key=lambda row: len(wanted & _words(f"{row[1]} {row[2]} {' '.join(row[3] or [])}")),
    )
    return best[0]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", text.lower()))


def _rubric_id(ctx: GenerationContext):
    return (
        _link(ctx.request, "rubric")
        or ctx.create(
            family="rubric", resource="rubric", instructions=_instructions(ctx), schema=RUBRIC
        ).pk
    )


def _scenario(ctx: GenerationContext, *, modality: str = "text"):
    persona_id = _persona_id(ctx, modality=modality)
    return ctx.create(
        family="scenario",
        resource="scenario",
        instructions=_instructions(ctx),
        schema=SCENARIO,
        prepare=lambda data: {
            **data,
            "persona": str(persona_id),
            "modality": "video" if modality == "video" else "text",
        },
    )


def _scenario_resources(request: dict) -> list[str]:
    names = ["scenario"]
    if request.get("modality") in MEDIA_MODALITIES:
        names.append("image")
    return names


def generate_scenario(ctx: GenerationContext):
    """A scenario with the persona named or the best-fitting one; image/video: a scene card too."""
    modality = ctx.request.get("modality") or "text"
    scenario = _scenario(ctx, modality=modality)
    if modality in MEDIA_MODALITIES:
        caption = " ".join(ctx.request.get("instructions") or [])
        ctx.media(
            resource="image",
            modality=modality,
            # The local simulator draws a still scene card, for video too (as its poster).
            render=lambda: scene_card_png(title=scenario.title, caption=caption),
            mime_type=MIME_TYPE,
            file_name=f"{slugify(scenario.title) or 'scene'}.png",
            artifact=scenario,
        )
    return scenario


def _simulation_resources(request: dict) -> list[str]:
    names = [] if _link(request, "rubric") else ["rubric"]
    if not (request.get("params") or {}).get("scenario_ids"):
        names += ["scenario"]
    return [*names, "simulation"]


def generate_simulation(ctx: GenerationContext):
    """A simulation with its rubric and a first scenario, unless the request names them."""
    rubric_id = _rubric_id(ctx)
    scenario_ids = (ctx.request.get("params") or {}).get("scenario_ids") or [_scenario(ctx).pk]
    return ctx.create(
        family="simulation",
        resource="simulation",
        instructions=_instructions(ctx),
        schema=SIMULATION,
        prepare=lambda data: {
            **data,
            "rubric": str(rubric_id),
            "scenario_ids": [str(pk) for pk in scenario_ids],
        },
    )


def generate_eval(ctx: GenerationContext):
    """An eval over a rubric: the one named, or a new one."""
    rubric_id = _rubric_id(ctx)
    return ctx.create(
        family="eval",
        resource="eval",
        instructions=_instructions(ctx),
        schema=EVAL,
        prepare=lambda data: {**data, "rubric": str(rubric_id)},
    )


def _tool_fields(data: dict) -> dict:
    name = slugify(data.get("name") or data.get("title") or "")[:100] or "tool"
    schema = data.get("json_schema") or {"type": "object", "properties": {}}
    return {**data, "name": name, "json_schema": schema}


def _field_fields(data: dict) -> dict:
    """A model's draft made consistent: a slug key, values only for an enum, a default that fits
    (else none), so a sloppy draft is saved rather than refused."""
    name = slugify(data.get("name") or data.get("title") or "").replace("-", "_")[:100]
    kind = data.get("type") if data.get("type") in m.FieldType.values else m.FieldType.STRING
    values = [str(value) for value in data.get("enum_values") or []]
    values = list(dict.fromkeys(values)) if kind == m.FieldType.ENUM else []
    if kind == m.FieldType.ENUM and not values:
        kind = m.FieldType.STRING
    fields = {**data, "name": name or "field", "type": kind, "enum_values": values}
    default = data.get("default")
    if m.field_problems(kind=kind, enum_values=values, default=default):
        default = None
    fields["default"] = default
    return fields


GENERATORS = {
    "persona": _single("persona", PERSONA),
    "rubric": _single("rubric", RUBRIC),
    "agent": _single("agent", AGENT),
    "document": _single("document", DOCUMENT),
    "tool": _single("tool", TOOL, prepare=_tool_fields),
    "field": _single("field", FIELD, prepare=_field_fields),
    "parameter": _single("parameter", PARAMETER),
    "scenario": Generator(
        run=generate_scenario,
        resources=_scenario_resources,
        modalities=("text", *MEDIA_MODALITIES),
    ),
    "simulation": Generator(run=generate_simulation, resources=_simulation_resources),
    "eval": Generator(
        run=generate_eval,
        resources=lambda request: [*([] if _link(request, "rubric") else ["rubric"]), "eval"],
    ),
}


def register_generators() -> None:
    for name, generator in GENERATORS.items():
        registry.get(name).generator = generator
