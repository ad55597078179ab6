"""The demo catalog through the API, as its people see it: learners, an instructor, another college."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from glow.accounts import demo as accounts_demo
from glow.accounts.models import Profile
from glow.catalog import demo as catalog_demo
from glow.catalog import models as m
from glow.core.registry import registry

pytestmark = pytest.mark.django_db

SCENARIO_ORDER = [
    "Office hours: recursion confusion",
    "Office hours: midterm regrade dispute",
    "Office hours: academic-integrity conversation",
]


def api_key_for(username: str) -> str:
    out = StringIO()
    call_command("createapikey", username, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def client_of(username: str, *, bearer: bool = False) -> APIClient:
    client = APIClient()
    key = api_key_for(username)
    if bearer:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    else:
        client.credentials(HTTP_X_API_KEY=key)
    return client


def op(client: APIClient, path: str, body: dict | None = None) -> dict:
    response = client.post(f"/api/v5/artifacts/{path}", body or {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def titles(body: dict, plural: str) -> set[str]:
    return {item["title"] for item in body[plural]}


@pytest.fixture
def demo_catalog():
    """Just the accounts and catalog seeds: glow_demo's other apps are not needed here."""
    accounts_demo.seed(stdout=StringIO())
    catalog_demo.seed(stdout=StringIO())


def test_the_readme_tour_learner1_finds_the_home_entry_and_its_simulation():
    call_command("glow_demo", stdout=StringIO())
    learner = client_of("learner1")
    homes = op(learner, "home/search")
    assert titles(homes, "homes") == {"CS-180 TA training: office hours"}
    assert homes["actor_name"] == "Lena Learner"
    home = homes["homes"][0]
    assert home["simulation_title"] == "Office hours: CS-180"
    assert home["cohort_name"] == "CS-180 TAs Fall"

    simulation = op(
        client_of("learner1", bearer=True), "simulation/get", {"id": home["simulation_id"]}
    )
    assert [scenario["title"] for scenario in simulation["scenarios"]] == SCENARIO_ORDER
    assert simulation["pass_threshold"] == 60 and simulation["time_limit_minutes"] == 45
    rubric = simulation["rubric_structure"]
    assert rubric["title"] == "TA office-hours rubric"
    assert [group["name"] for group in rubric["groups"]] == [
        "Empathy and rapport",
        "Guidance and teaching",
        "Policy and professionalism",
    ]
    assert [len(group["standards"]) for group in rubric["groups"]] == [2, 2, 2]
    assert rubric["total_points"] == sum(group["total_points"] for group in rubric["groups"]) == 20


def test_learners_see_only_what_their_cohorts_are_assigned(demo_catalog):
    learner = client_of("learner1")
    assert titles(op(learner, "practice/search"), "practices") == {"Practice: office hours"}
    assert titles(op(learner, "simulation/search"), "simulations") == {"Office hours: CS-180"}
    assert titles(op(learner, "scenario/search"), "scenarios") == set(SCENARIO_ORDER)
    assert op(learner, "persona/search")["total_count"] == 3
    assert titles(op(learner, "rubric/search"), "rubrics") == {"TA office-hours rubric"}
    for plural in ("agent", "model", "tool", "eval"):
        assert op(learner, f"{plural}/search")["total_count"] == 0, plural
    agent = m.Agent.objects.get(title="Office-hours coach")
    response = learner.post("/api/v5/artifacts/agent/get", {"id": str(agent.pk)}, format="json")
    assert response.status_code == 404 and response.json()["code"] == "not_found"

    # learner3 is a Math TA: nothing of CS-180 is assigned to them.
    math = client_of("learner3")
    assert op(math, "home/search")["total_count"] == 0
    assert op(math, "simulation/search")["total_count"] == 0
    simulation = m.Simulation.objects.get(title="Office hours: CS-180")
    response = math.post(
        "/api/v5/artifacts/simulation/get", {"id": str(simulation.pk)}, format="json"
    )
    assert response.status_code == 404


def test_another_college_sees_only_its_own_catalog(demo_catalog):
    other = client_of("other_learner")
    assert titles(op(other, "home/search"), "homes") == {"Bio TA training"}
    assert titles(op(other, "scenario/search"), "scenarios") == {"Lab report extension"}
    other_admin = client_of("other_admin")
    assert titles(op(other_admin, "simulation/search"), "simulations") == {"Lab TA basics"}
    assert op(other_admin, "agent/search")["total_count"] == 0
    for model in (m.Home, m.Simulation, m.Scenario, m.Persona, m.Rubric, m.Agent, m.AIModel):
        row = model.objects.filter(organization__name="Demo University").first()
        family = registry.for_model(model).name
        response = other_admin.post(
            f"/api/v5/artifacts/{family}/get", {"id": str(row.pk)}, format="json"
        )
        assert response.status_code == 404, family


def test_staff_see_their_departments_and_the_organization(demo_catalog):
    instructor = client_of("instructor")
    admin = client_of("admin")
    demo = Profile.objects.get(user__username="admin").organization
    math = demo.departments.get(name="Mathematics")
    m.Persona.objects.create(organization=demo, department=math, title="Math-only persona")
    m.Persona.objects.create(organization=demo, department=None, title="Org-wide persona")

    seen = titles(op(instructor, "persona/search", {"page_size": 50}), "personas")
    assert "Org-wide persona" in seen and "Math-only persona" not in seen
    assert len(seen) == 4  # three CS personas and the org-wide one
    assert titles(op(instructor, "agent/search"), "agents") == {"Office-hours coach", "Terse TA"}
    assert op(instructor, "model/search")["total_count"] == 2
    assert "Math-only persona" in titles(op(admin, "persona/search", {"page_size": 50}), "personas")
