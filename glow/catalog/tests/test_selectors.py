"""Catalog scoping: learners see their assignments and what they reference; instructors their departments."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from glow.accounts.tests.factories import CohortFactory, DepartmentFactory, ProfileFactory
from glow.catalog import models as m
from glow.catalog.tests import factories as f
from glow.core.errors import NotFound
from glow.core.registry import registry
from glow.core.selectors import artifact_access, artifact_queryset

pytestmark = pytest.mark.django_db


def visible(actor, name: str) -> set:
    family = registry.get(name)
    return set(artifact_queryset(actor=actor, family=family).values_list("pk", flat=True))


@pytest.fixture
def world(org_admin):
    """Two departments and cohorts; a learner in the CS cohort, an instructor of CS."""
    org = org_admin.organization
    cs, math = DepartmentFactory(organization=org), DepartmentFactory(organization=org)
    cs_cohort = CohortFactory(organization=org, department=cs)
    math_cohort = CohortFactory(organization=org, department=math)
    learner = ProfileFactory(organization=org, role="learner")
    learner.departments.set([cs])
    cs_cohort.members.add(learner)
    instructor = ProfileFactory(organization=org, role="instructor")
    instructor.departments.set([cs])

    document = f.DocumentFactory(organization=org, department=cs)
    assigned_scenario = f.ScenarioFactory(organization=org, department=cs, documents=[document])
    assigned = f.SimulationFactory(organization=org, department=cs, scenarios=[assigned_scenario])
    practised = f.SimulationFactory(organization=org, department=cs)
    hidden = f.SimulationFactory(organization=org, department=math)
    rows = {
        "document": document,
        "assigned_scenario": assigned_scenario,
        "assigned": assigned,
        "practised": practised,
        "hidden": hidden,
        "home": f.HomeFactory(
            organization=org, department=cs, simulation=assigned, cohort=cs_cohort
        ),
        "other_home": f.HomeFactory(
            organization=org, department=math, simulation=hidden, cohort=math_cohort
        ),
        "department_practice": f.PracticeFactory(
            organization=org, department=cs, simulation=practised
        ),
        "math_practice": f.PracticeFactory(organization=org, department=math, simulation=hidden),
        "org_practice": f.PracticeFactory(organization=org, department=None, simulation=practised),
        "cohort_practice": f.PracticeFactory(
            organization=org, department=math, simulation=hidden, cohort=cs_cohort
        ),
        "agent": f.AgentFactory(organization=org, department=cs),
        "eval": f.EvalFactory(organization=org, department=cs),
    }
    return {"learner": learner, "instructor": instructor, "cs": cs, "math": math, **rows}


def test_a_learner_sees_homes_and_practices_assigned_to_them(world):
    learner = world["learner"]
    assert visible(learner, "home") == {world["home"].pk}
    assert visible(learner, "practice") == {
        world["department_practice"].pk,
        world["org_practice"].pk,
        world["cohort_practice"].pk,
    }


def test_a_learner_sees_what_their_assignments_reference_and_nothing_else(world):
    learner = world["learner"]
    simulations = {world["assigned"].pk, world["practised"].pk, world["hidden"].pk}
    assert visible(learner, "simulation") == simulations  # hidden: via the cohort practice
    scenarios = set(
        m.SimulationScenario.objects.filter(simulation_id__in=simulations).values_list(
            "scenario_id", flat=True
        )
    )
    assert visible(learner, "scenario") == scenarios
    personas = set(m.Scenario.objects.filter(pk__in=scenarios).values_list("persona_id", flat=True))
    assert visible(learner, "persona") == personas
    rubrics = set(
        m.Simulation.objects.filter(pk__in=simulations).values_list("rubric_id", flat=True)
    )
    assert visible(learner, "rubric") == rubrics
    assert visible(learner, "document") == {world["document"].pk}
    for staff_only in ("agent", "model", "tool", "eval"):
        assert visible(learner, staff_only) == set(), staff_only


def test_a_learner_outside_the_cohort_sees_only_department_wide_entries(world, org_admin):
    stranger = ProfileFactory(organization=org_admin.organization, role="learner")
    stranger.departments.set([world["math"]])
    assert visible(stranger, "home") == set()
    assert visible(stranger, "practice") == {world["math_practice"].pk, world["org_practice"].pk}


def test_an_instructor_sees_their_departments_and_organization_wide_rows(world, org_admin):
    instructor = world["instructor"]
    assert visible(instructor, "home") == {world["home"].pk}
    assert world["hidden"].pk not in visible(instructor, "simulation")
    assert {world["assigned"].pk, world["practised"].pk} <= visible(instructor, "simulation")
    assert world["org_practice"].pk in visible(instructor, "practice")
    assert world["math_practice"].pk not in visible(instructor, "practice")
    assert visible(instructor, "agent") == {world["agent"].pk}
    tool = f.ToolFactory(organization=org_admin.organization)
    assert tool.pk in visible(instructor, "tool")  # tools and models have no department
    with pytest.raises(NotFound):
        artifact_access(actor=instructor, family=registry.get("simulation"), pk=world["hidden"].pk)


def test_an_admin_sees_the_whole_organization_and_nothing_of_another(world, org_admin, outsider):
    assert world["hidden"].pk in visible(org_admin, "simulation")
    assert visible(org_admin, "home") == {world["home"].pk, world["other_home"].pk}
    assert visible(outsider, "home") == set() and visible(outsider, "simulation") == set()


def test_learner_search_runs_the_same_queries_for_1_and_11_entries(
    world, make_client, django_assert_max_num_queries
):
    client = make_client(world["learner"])
    client.op("practice/search")
    with CaptureQueriesContext(connection) as baseline:
        assert client.op("home/search").json()["total_count"] == 1
    cohort = world["home"].cohort
    for _ in range(10):
        f.HomeFactory(organization=cohort.organization, cohort=cohort, department=world["cs"])
    with django_assert_max_num_queries(len(baseline)):
        assert client.op("home/search").json()["total_count"] == 11


def test_a_document_used_by_two_assigned_scenarios_is_listed_once(world, make_client):
    simulation = world["assigned"]
    again = f.ScenarioFactory(
        organization=simulation.organization, department=world["cs"], documents=[world["document"]]
    )
    m.SimulationScenario.objects.create(simulation=simulation, scenario=again, position=5)
    body = make_client(world["learner"]).op("document/search").json()
    assert body["total_count"] == 1
    assert [item["id"] for item in body["documents"]] == [str(world["document"].pk)]
