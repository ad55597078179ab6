"""Catalog-specific behaviour through the universal ops: creating rows, nested writes, problems."""

from __future__ import annotations

import pytest

from glow.accounts.tests.factories import CohortFactory, ProfileFactory
from glow.catalog import models as m
from glow.catalog.tests import factories as f

pytestmark = pytest.mark.django_db


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def test_publish_without_an_id_creates_a_row_in_the_actors_organization(admin_client, org_admin):
    body = ok(
        admin_client.op(
            "persona/publish",
            {"data": {"title": "Riley", "traits": ["curious"], "intensity": 4, "voice": "warm"}},
        )
    )
    persona = m.Persona.objects.get(pk=body["id"])
    assert persona.organization == org_admin.organization and persona.created_by == org_admin
    assert (persona.traits, persona.intensity, body["version"]) == (["curious"], 4, 1)


def test_a_new_row_can_be_drafted_then_published(admin_client):
    draft = ok(admin_client.op("tool/draft", {"version": 0, "data": {"title": "Search"}}))
    assert draft["tool_id"] is None
    ok(
        admin_client.op(
            "tool/draft", {"draft_id": draft["draft_id"], "version": 0, "data": {"name": "search"}}
        )
    )
    tool = ok(admin_client.op("tool/publish", {"draft_id": draft["draft_id"]}))
    assert (tool["title"], tool["name"]) == ("Search", "search")


def test_write_data_is_validated_and_bad_fields_named(admin_client, org_admin):
    persona = f.PersonaFactory(organization=org_admin.organization)
    for data, field in (
        ({"intensity": 11}, "intensity"),
        ({"intensity": "high"}, "intensity"),
        ({"traits": "anxious"}, "traits"),
        ({"title": ""}, "title"),
    ):
        response = admin_client.op(
            "persona/publish", {"id": str(persona.pk), "version": persona.version, "data": data}
        )
        assert response.status_code == 400, data
        assert field in response.json()["fields"], response.json()
    persona.refresh_from_db()
    assert persona.version == 1
    missing = admin_client.op("persona/publish", {"data": {"traits": []}})
    assert missing.status_code == 400 and "title" in missing.json()["fields"]


def test_a_rubric_is_written_with_its_groups_and_totals_derived(admin_client):
    body = ok(
        admin_client.op(
            "rubric/publish",
            {
                "data": {
                    "title": "Listening",
                    "groups": [
                        {
                            "name": "Empathy",
                            "standards": [{"name": "Name the feeling", "points": 3}],
                        },
                        {
                            "name": "Clarity",
                            "standards": [
                                {"name": "One idea at a time", "points": 2},
                                {"name": "Check understanding", "points": 1},
                            ],
                        },
                    ],
                }
            },
        )
    )
    assert body["total_points"] == 6
    assert [(g["name"], g["total_points"]) for g in body["groups"]] == [
        ("Empathy", 3),
        ("Clarity", 3),
    ]
    assert [s["name"] for s in body["groups"][1]["standards"]] == [
        "One idea at a time",
        "Check understanding",
    ]


def test_a_simulation_keeps_its_scenarios_in_the_given_order(admin_client, org_admin, outsider):
    org = org_admin.organization
    first, second, third = (f.ScenarioFactory(organization=org) for _ in range(3))
    rubric = f.RubricFactory(organization=org)
    order = [str(third.pk), str(first.pk), str(second.pk)]
    body = ok(
        admin_client.op(
            "simulation/publish",
            {"data": {"title": "Ordered", "rubric": str(rubric.pk), "scenario_ids": order}},
        )
    )
    assert [scenario["id"] for scenario in body["scenarios"]] == order
    assert body["rubric_structure"]["rubric_id"] == str(rubric.pk)
    fetched = ok(admin_client.op("simulation/get", {"simulation_id": body["id"]}))
    assert [scenario["id"] for scenario in fetched["scenarios"]] == order

    theirs = f.ScenarioFactory(organization=outsider.organization)
    response = admin_client.op(
        "simulation/publish",
        {"id": body["id"], "version": body["version"], "data": {"scenario_ids": [str(theirs.pk)]}},
    )
    # Another organization's row reads as an unknown id: 404 naming it.
    assert response.status_code == 404 and "scenario_ids" in response.json()["fields"]
    assert m.SimulationScenario.objects.filter(simulation_id=body["id"]).count() == 3


def test_references_to_another_organization_are_refused(admin_client, org_admin, outsider):
    theirs = f.SimulationFactory(organization=outsider.organization)
    their_cohort = CohortFactory(organization=outsider.organization)
    ours = f.SimulationFactory(organization=org_admin.organization)
    cohort = CohortFactory(organization=org_admin.organization)
    for data, field in (
        ({"title": "Home", "simulation": str(theirs.pk), "cohort": str(cohort.pk)}, "simulation"),
        ({"title": "Home", "simulation": str(ours.pk), "cohort": str(their_cohort.pk)}, "cohort"),
    ):
        response = admin_client.op("home/publish", {"data": data})
        # Another organization's row reads as an unknown id: 404 naming the field.
        assert response.status_code == 404 and field in response.json()["fields"]
    assert not m.Home.objects.exists()
    home = ok(
        admin_client.op(
            "home/publish",
            {"data": {"title": "Home", "simulation": str(ours.pk), "cohort": str(cohort.pk)}},
        )
    )
    assert home["cohort_name"] == cohort.name and home["simulation_id"] == str(ours.pk)


def test_problems_name_what_stops_a_row_from_working(admin_client, org_admin):
    org = org_admin.organization
    empty = f.SimulationFactory(organization=org, scenarios=[], rubric=None)
    body = ok(admin_client.op("simulation/problem", {"id": str(empty.pk)}))
    assert body["ok"] is False
    assert {p["code"] for p in body["problems"]} == {"no_scenarios", "no_rubric"}
    healthy = f.SimulationFactory(organization=org)
    assert ok(admin_client.op("simulation/problem", {"id": str(healthy.pk)}))["ok"] is True
    pointless = f.RubricFactory(organization=org, groups=0)
    codes = {
        p["code"]
        for p in ok(admin_client.op("rubric/problem", {"id": str(pointless.pk)}))["problems"]
    }
    assert codes == {"empty_rubric"}
    video = f.ScenarioFactory(organization=org, modality=m.Modality.VIDEO, questions=[])
    codes = {
        p["code"]
        for p in ok(admin_client.op("scenario/problem", {"id": str(video.pk)}))["problems"]
    }
    assert codes == {"no_questions"}


def test_context_renders_what_the_ai_runtime_reads(admin_client, org_admin):
    scenario = f.ScenarioFactory(organization=org_admin.organization, context="Midterm regrade.")
    text = ok(admin_client.op("scenario/context", {"id": str(scenario.pk)}))["context"]
    assert "Midterm regrade." in text and scenario.persona.title in text and "anxious" in text
    simulation = f.SimulationFactory(organization=org_admin.organization, scenarios=[scenario])
    text = ok(admin_client.op("simulation/context", {"id": str(simulation.pk)}))["context"]
    assert f"1. {scenario.title}" in text and "4 points" in text


def test_learners_may_read_but_not_write_the_catalog(make_client, org_admin):
    learner = make_client(ProfileFactory(role="learner", organization=org_admin.organization))
    response = learner.op("persona/publish", {"data": {"title": "Mine"}})
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    instructor = make_client(ProfileFactory(role="instructor", organization=org_admin.organization))
    assert instructor.op("persona/publish", {"data": {"title": "Ok"}}).status_code == 200
    # Models carry prices and keys: admins only.
    assert instructor.op("model/publish", {"data": {"title": "Paid"}}).status_code == 403


def test_an_instructors_archive_all_stays_inside_their_departments(make_client, org_admin):
    org = org_admin.organization
    instructor = ProfileFactory(role="instructor", organization=org)
    mine = f.PersonaFactory(organization=org)
    instructor.departments.set([mine.department])
    shared = f.PersonaFactory(organization=org, department=None)
    elsewhere = f.PersonaFactory(organization=org)
    body = make_client(instructor).op("persona/archive", {"all": True}).json()
    assert body["updated_count"] == 2
    archived = set(m.Persona.objects.filter(archived=True).values_list("pk", flat=True))
    assert archived == {mine.pk, shared.pk} and elsewhere.pk not in archived


def test_rows_render_their_stored_json_as_is_even_when_hand_edited(admin_client, org_admin):
    """The schema documents what the API writes (lists of traits, questions); a row the admin
    filled with other JSON still renders rather than failing."""
    org = org_admin.organization
    persona = f.PersonaFactory(organization=org, traits="one string")
    scenario = f.ScenarioFactory(organization=org, persona=persona, questions=[{"id": "q1"}])
    tool = f.ToolFactory(organization=org, json_schema=["not", "an", "object"])
    assert ok(admin_client.op("persona/get", {"id": str(persona.pk)}))["traits"] == "one string"
    questions = ok(admin_client.op("scenario/get", {"id": str(scenario.pk)}))["questions"]
    assert questions == [{"id": "q1"}]
    assert ok(admin_client.op("tool/get", {"id": str(tool.pk)}))["json_schema"] == [
        "not",
        "an",
        "object",
    ]
