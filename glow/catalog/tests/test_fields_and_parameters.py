"""The field and parameter families: validation, references from other rows, generation, lists."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from glow.catalog import models as m
from glow.catalog.tests import factories as f
from system.models import Run

pytestmark = pytest.mark.django_db


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def refused(response, status: int, field: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert field in body["fields"], body
    return body


# -- field ------------------------------------------------------------------------------------


def test_an_enum_field_is_published_with_its_values_and_reads_back(admin_client):
    body = ok(
        admin_client.op(
            "field/publish",
            {
                "data": {
                    "title": "Grade level",
                    "name": "grade_level",
                    "type": "enum",
                    "enum_values": ["K-5", "6-8", "9-12"],
                    "required": True,
                    "default": "6-8",
                }
            },
        )
    )
    got = ok(admin_client.op("field/get", {"field_id": body["id"]}))
    assert (got["name"], got["type"], got["enum_values"]) == (
        "grade_level",
        "enum",
        ["K-5", "6-8", "9-12"],
    )
    assert (got["required"], got["default"]) == (True, "6-8")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "enum"}, "enum_values"),
        ({"type": "enum", "enum_values": []}, "enum_values"),
        ({"type": "enum", "enum_values": ["a", "a"]}, "enum_values"),
        ({"type": "string", "enum_values": ["a"]}, "enum_values"),
        ({"type": "enum", "enum_values": ["a", "b"], "default": "c"}, "default"),
        ({"type": "integer", "default": "three"}, "default"),
        ({"type": "boolean", "default": 1}, "default"),
        ({"type": "date", "default": "next week"}, "default"),
        ({"type": "colour"}, "type"),
    ],
)
def test_a_field_that_could_not_be_filled_in_is_refused(admin_client, data, field):
    response = admin_client.op("field/publish", {"data": {"title": "Broken", "name": "x", **data}})
    refused(response, 400, field)
    assert not m.InputField.objects.exists()


def test_an_enum_field_cannot_lose_its_values_in_a_partial_edit(admin_client, org_admin):
    row = f.InputFieldFactory(organization=org_admin.organization)
    response = admin_client.op(
        "field/publish",
        {"field_id": str(row.pk), "version": row.version, "data": {"enum_values": []}},
    )
    refused(response, 400, "enum_values")
    row.refresh_from_db()
    assert (row.enum_values, row.version) == (["K-5", "6-8", "9-12"], 1)


def test_tools_evals_and_scenarios_declare_fields_of_their_own_organization(
    admin_client, org_admin, outsider
):
    org = org_admin.organization
    topic, level = (f.InputFieldFactory(organization=org) for _ in range(2))
    theirs = f.InputFieldFactory(organization=outsider.organization)
    tool = ok(
        admin_client.op(
            "tool/publish",
            {"data": {"title": "Lookup", "name": "lookup", "field_ids": [str(topic.pk)]}},
        )
    )
    assert tool["field_ids"] == [str(topic.pk)]

    evaluation = f.EvalFactory(organization=org)
    scenario = f.ScenarioFactory(organization=org)
    for family, row in (("eval", evaluation), ("scenario", scenario)):
        body = ok(
            admin_client.op(
                f"{family}/publish",
                {
                    "id": str(row.pk),
                    "version": row.version,
                    "data": {"field_ids": [str(level.pk), str(topic.pk)]},
                },
            )
        )
        assert set(body["field_ids"]) == {str(level.pk), str(topic.pk)}

    # Another organization's field reads as an unknown id: 404 naming it, and nothing changes.
    for family, row_id, version in (
        ("tool", tool["id"], tool["version"]),
        ("eval", str(evaluation.pk), 2),
        ("scenario", str(scenario.pk), 2),
    ):
        response = admin_client.op(
            f"{family}/publish",
            {"id": row_id, "version": version, "data": {"field_ids": [str(theirs.pk)]}},
        )
        body = refused(response, 404, "field_ids")
        assert body["fields"]["field_ids"] == [str(theirs.pk)]
    assert list(m.Tool.objects.get(pk=tool["id"]).input_fields.all()) == [topic]
    assert m.Eval.objects.get(pk=evaluation.pk).version == 2
    # A search filter by field finds the rows that declare it.
    found = ok(admin_client.op("tool/search", {"field_ids": [str(topic.pk)]}))
    assert [row["id"] for row in found["tools"]] == [tool["id"]]


# -- parameter --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": -1}, "seed"),
    ],
)
def test_parameters_out_of_range_are_refused(admin_client, data, field):
    refused(admin_client.op("parameter/publish", {"data": {"title": "Bad", **data}}), 400, field)
    assert not m.ParameterSet.objects.exists()


def test_an_agent_points_at_a_parameter_set_of_its_own_organization(
    admin_client, org_admin, outsider
):
    mine = f.ParameterSetFactory(organization=org_admin.organization, temperature=0.1)
    theirs = f.ParameterSetFactory(organization=outsider.organization)
    agent = ok(
        admin_client.op("agent/publish", {"data": {"title": "Coach", "parameter_id": str(mine.pk)}})
    )
    assert agent["parameter_id"] == str(mine.pk)
    response = admin_client.op(
        "agent/publish",
        {"id": agent["id"], "version": agent["version"], "data": {"parameter_id": str(theirs.pk)}},
    )
    refused(response, 404, "parameter_id")
    assert m.Agent.objects.get(pk=agent["id"]).parameter_set == mine
    cleared = ok(
        admin_client.op(
            "agent/publish",
            {"id": agent["id"], "version": agent["version"], "data": {"parameter_id": None}},
        )
    )
    assert cleared["parameter_id"] is None
    # Agents facet by parameter set.
    f.AgentFactory(organization=org_admin.organization, parameter_set=mine)
    body = ok(admin_client.op("agent/search", {"parameter_ids": [str(mine.pk)]}))
    assert body["total_count"] == 1
    assert {option["id"]: option["count"] for option in body["parameter_filter"]["options"]} == {
        str(mine.pk): 1
    }


def test_test_start_and_invocation_create_refuse_another_organizations_parameter_set(
    admin_client, org_admin, outsider
):
    org = org_admin.organization
    evaluation = f.EvalFactory(organization=org)
    model, agent = f.AIModelFactory(organization=org), f.AgentFactory(organization=org)
    theirs = f.ParameterSetFactory(organization=outsider.organization)
    body = {
        "eval_id": str(evaluation.pk),
        "model_ids": [str(model.pk)],
        "scenario_ids": [str(evaluation.scenarios.get().pk)],
        "agent_ids": [str(agent.pk)],
    }
    refused(
        admin_client.op("test/start", {**body, "parameter_id": str(theirs.pk)}), 404, "parameter_id"
    )
    mine = f.ParameterSetFactory(organization=org)
    started = ok(admin_client.op("test/start", {**body, "parameter_id": str(mine.pk)}))
    from tests_app.models import Invocation

    assert Invocation.objects.get(pk=started["invocation_id"]).parameter_set == mine
    got = ok(admin_client.op("invocation/get", {"invocation_id": started["invocation_id"]}))
    assert got["parameter_id"] == str(mine.pk)
    cell = {
        "test_id": started["test_id"],
        "model_id": str(model.pk),
        "scenario_id": body["scenario_ids"][0],
        "agent_id": str(agent.pk),
    }
    refused(
        admin_client.op("invocation/create", {**cell, "parameter_id": str(theirs.pk)}),
        404,
        "parameter_id",
    )


# -- generation -------------------------------------------------------------------------------


def generated(admin_client, family: str, instructions: str):
    body = ok(admin_client.op(f"{family}/generate", {"instructions": [instructions]}))
    run = Run.objects.get(pk=body["run_id"])
    model = m.InputField if family == "field" else m.ParameterSet
    return model.objects.get(pk=run.params["resources"][family]["id"])


def test_field_generation_honours_the_instructions(admin_client):
    field = generated(
        admin_client, "field", "A required enum field 'grade level' with values K-5, 6-8, 9-12"
    )
    assert (field.name, field.title, field.type) == ("grade_level", "Grade level", "enum")
    assert (field.enum_values, field.required, field.default) == (
        ["K-5", "6-8", "9-12"],
        True,
        None,
    )
    credits = generated(admin_client, "field", "An optional integer field named credits, default 3")
    assert (credits.name, credits.type, credits.required, credits.default) == (
        "credits",
        "integer",
        False,
        3,
    )
    assert credits.enum_values == []


def test_parameter_generation_honours_the_instructions(admin_client):
    steady = generated(admin_client, "parameter", "A deterministic low-temperature parameter set")
    assert steady.temperature is not None and steady.temperature <= 0.3
    assert steady.seed is not None
    wild = generated(
        admin_client, "parameter", "Creative sampling: temperature 1.2, top_p 0.95, 512 tokens"
    )
    assert (wild.temperature, wild.top_p, wild.max_tokens, wild.seed) == (1.2, 0.95, 512, None)


# -- list endpoints: the same queries for 1 and 10 rows ---------------------------------------


def _declaring(family: str, org):
    fields = [f.InputFieldFactory(organization=org) for _ in range(2)]
    if family == "tool":
        row = f.ToolFactory(organization=org)
    elif family == "eval":
        row = f.EvalFactory(organization=org)
    elif family == "scenario":
        row = f.ScenarioFactory(organization=org)
    else:
        return f.AgentFactory(
            organization=org, parameter_set=f.ParameterSetFactory(organization=org)
        )
    row.input_fields.set(fields)
    return row


@pytest.mark.parametrize("family", ["field", "parameter", "tool", "eval", "scenario", "agent"])
def test_search_reads_the_same_queries_for_1_and_10_rows_with_their_references(
    family, admin_client, org_admin, django_assert_max_num_queries
):
    org = org_admin.organization
    plural = {"field": "fields", "parameter": "parameters"}.get(family, f"{family}s")

    def make():
        if family == "field":
            return f.InputFieldFactory(organization=org)
        if family == "parameter":
            return f.ParameterSetFactory(organization=org)
        return _declaring(family, org)

    make()
    ok(admin_client.op(f"{family}/search", {}))  # the session's first request books it
    with CaptureQueriesContext(connection) as one:
        assert len(ok(admin_client.op(f"{family}/search", {"page_size": 50}))[plural]) == 1
    for _ in range(9):
        make()
    with django_assert_max_num_queries(len(one)):
        body = ok(admin_client.op(f"{family}/search", {"page_size": 50}))
    assert len(body[plural]) == 10


# -- demo -------------------------------------------------------------------------------------


def test_the_demo_declares_fields_and_runs_its_grid_with_a_parameter_set():
    import io

    from glow.accounts import demo as accounts_demo
    from glow.catalog import demo as catalog_demo
    from tests_app import demo as tests_demo
    from tests_app.models import Invocation

    out = io.StringIO()
    accounts_demo.seed(stdout=out)
    catalog_demo.seed(stdout=out)
    tool = m.Tool.objects.get(name="lookup_policy")
    assert [field.name for field in tool.input_fields.all()] == ["topic"]
    evaluation = m.Eval.objects.get(title="Office-hours eval")
    assert {field.name for field in evaluation.input_fields.all()} == {
        "assignment",
        "regrade_requested",
    }
    coach = m.Agent.objects.get(title="Office-hours coach")
    assert coach.parameter_set.title == "Balanced"

    # A rerun leaves what people edited alone.
    assignment = m.InputField.objects.get(name="assignment")
    assignment.enum_values = ["PS1", "PS2"]
    assignment.save()
    catalog_demo.seed(stdout=out)
    assignment.refresh_from_db()
    assert assignment.enum_values == ["PS1", "PS2"]
    assert m.InputField.objects.count() == 3 and m.ParameterSet.objects.count() == 2

    tests_demo.seed(stdout=out)
    chosen = {row.parameter_set.title for row in Invocation.objects.select_related("parameter_set")}
    assert chosen == {"Deterministic (seed 7)"}
