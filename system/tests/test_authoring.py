"""Staff authoring forms: traits and rubric criteria as rows (add, remove, reorder), publish and
archive through the API's services with its version check, tenancy and roles."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from glow.accounts.models import Profile
from glow.catalog.models import Persona, Rubric
from system.tests.factories import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db):
    call_command("glow_demo", stdout=StringIO())
    return {p.user.username: p for p in Profile.objects.select_related("user")}


def _form(persona, **changes):
    data = {
        "title": persona.title,
        "description": persona.description,
        "traits": list(persona.traits),
        "intensity": persona.intensity,
        "voice": persona.voice,
        "department": str(persona.department_id),
        "version": persona.version,
    }
    data.update(changes)
    return data


def test_row_buttons_add_remove_and_reorder_without_saving(client, demo):
    persona = Persona.objects.get(title="Casey, confused about recursion")
    url = f"/staff/catalog/persona/{persona.pk}/"
    sign_in(client, demo["instructor"])

    added = client.post(url, _form(persona, row="add:trait:0")).content.decode()
    assert added.count('name="traits"') == 5
    moved = client.post(url, _form(persona, row="up:trait:1")).content.decode()
    assert moved.index('value="polite"') < moved.index('value="confused"')
    removed = client.post(url, _form(persona, row="remove:trait:0")).content.decode()
    assert 'value="confused"' not in removed
    persona.refresh_from_db()
    assert persona.traits == ["confused", "polite", "anxious", "apologetic"]
    assert persona.version == 1


def test_publish_saves_through_the_version_check_and_a_stale_form_shows_what_changed(client, demo):
    persona = Persona.objects.get(title="Casey, confused about recursion")
    url = f"/staff/catalog/persona/{persona.pk}/"
    sign_in(client, demo["instructor"])
    opened = _form(persona, base=client.get(url).context["base"])

    published = client.post(url, {**opened, "traits": ["curious", "quiet"], "action": "publish"})
    assert published.status_code == 302
    persona.refresh_from_db()
    assert (persona.traits, persona.version) == (["curious", "quiet"], 2)

    stale = client.post(url, {**opened, "voice": "loud", "action": "publish"})
    html = stale.content.decode()
    assert stale.status_code == 200
    assert (
        "Someone changed this persona" in html and "What changed since you opened the form" in html
    )
    assert "confused; polite; anxious; apologetic" in html and "curious; quiet" in html
    assert 'value="loud"' in html  # what was typed is kept
    persona.refresh_from_db()
    assert persona.voice == "soft, hesitant"


def test_archive_and_restore_are_buttons_with_the_version_check(client, demo):
    persona = Persona.objects.get(title="Jordan, flagged for similar code")
    url = f"/staff/catalog/persona/{persona.pk}/"
    sign_in(client, demo["instructor"])
    assert client.post(url, _form(persona, action="archive", version=0)).status_code == 200
    persona.refresh_from_db()
    assert not persona.archived
    assert client.post(url, _form(persona, action="archive")).status_code == 302
    persona.refresh_from_db()
    assert persona.archived
    assert client.post(url, _form(persona, action="unarchive")).status_code == 302
    persona.refresh_from_db()
    assert not persona.archived


def test_rubric_groups_and_criteria_are_rows(client, demo):
    rubric = Rubric.objects.get(title="TA office-hours rubric")
    url = f"/staff/catalog/rubric/{rubric.pk}/"
    sign_in(client, demo["admin"])
    structure = rubric.structure()
    data = {
        "title": rubric.title,
        "description": "",
        "department": str(rubric.department_id),
        "version": rubric.version,
        "group-name": [g["name"] for g in structure],
        "std-group": [str(i) for i, g in enumerate(structure) for _ in g["standards"]],
        "std-name": [s["name"] for g in structure for s in g["standards"]],
        "std-description": [s["description"] for g in structure for s in g["standards"]],
        "std-points": [str(s["points"]) for g in structure for s in g["standards"]],
    }
    grown = client.post(url, {**data, "row": "add:std0:0"}).content.decode()
    assert grown.count('name="std-name"') == 7
    data["std-name"][0] = "Name the feeling"
    data["std-points"][0] = "5"
    assert client.post(url, {**data, "row": "down:group:0", "action": "publish"}).status_code == 200
    assert client.post(url, {**data, "action": "publish"}).status_code == 302
    rubric.refresh_from_db()
    first = rubric.structure()[0]["standards"][0]
    assert (first["name"], first["points"]) == ("Name the feeling", 5)


def test_new_persona_is_created_in_the_actors_organization(client, demo):
    sign_in(client, demo["instructor"])
    response = client.post(
        "/staff/catalog/persona/new/",
        {"title": "Kim", "traits": ["worried", ""], "intensity": 4, "action": "publish"},
    )
    assert response.status_code == 302
    kim = Persona.objects.get(title="Kim")
    assert kim.organization_id == demo["instructor"].organization_id and kim.traits == ["worried"]


def test_learners_403_and_another_organization_404(client, demo):
    persona = Persona.objects.get(title="Casey, confused about recursion")
    sign_in(client, demo["learner1"])
    assert client.get(f"/staff/catalog/persona/{persona.pk}/").status_code == 403
    assert client.get("/staff/catalog/").status_code == 403
    sign_in(client, demo["other_admin"])
    assert client.get(f"/staff/catalog/persona/{persona.pk}/").status_code == 404
    assert "Casey" not in client.get("/staff/catalog/").content.decode()


def test_try_it_opens_a_practice_chat_with_the_persona(client, demo):
    from attempts.models import Attempt

    persona = Persona.objects.get(title="Casey, confused about recursion")
    sign_in(client, demo["instructor"])
    page = client.get(f"/staff/catalog/persona/{persona.pk}/").content.decode()
    assert f'formaction="/staff/catalog/persona/{persona.pk}/try/"' in page

    response = client.post(f"/staff/catalog/persona/{persona.pk}/try/")

    attempt = Attempt.objects.get(profile=demo["instructor"])
    assert attempt.practice and response["Location"].endswith(f"/learn/attempts/{attempt.pk}/")
    assert attempt.chats.filter(scenario__persona=persona).exists()
    lone = Persona.objects.create(organization=persona.organization, title="Unused")
    refused = client.post(f"/staff/catalog/persona/{lone.pk}/try/")
    assert refused["Location"].endswith("?done=no-practice")
    sign_in(client, demo["other_admin"])
    assert client.post(f"/staff/catalog/persona/{persona.pk}/try/").status_code == 404


def test_scenario_questions_are_rows_with_correct_options_marked(client, demo):
    from glow.catalog.models import Scenario

    scenario = Scenario.objects.get(title="Office hours: recursion confusion")
    url = f"/staff/catalog/scenario/{scenario.pk}/"
    sign_in(client, demo["instructor"])
    form = {
        "title": scenario.title,
        "context": scenario.context,
        "description": scenario.description,
        "persona": str(scenario.persona_id),
        "department": str(scenario.department_id),
        "version": scenario.version,
    }
    grown = client.post(url, {**form, "row": "add:question:0"}).content.decode()
    assert 'name="q-id" value="q1"' in grown

    saved = client.post(
        url,
        {
            **form,
            "q-id": ["q1"],
            "q-text": ["Where does recursion stop?"],
            "q-options": ["At the base case\n* When the base case is reached\nNever"],
            "action": "publish",
        },
    )
    assert saved.status_code == 302
    scenario.refresh_from_db()
    assert scenario.questions == [
        {
            "id": "q1",
            "text": "Where does recursion stop?",
            "options": [
                {"id": "a", "text": "At the base case"},
                {"id": "b", "text": "When the base case is reached"},
                {"id": "c", "text": "Never"},
            ],
            "correct_option_ids": ["b"],
        }
    ]
    assert "* When the base case is reached" in client.get(url).content.decode()
