"""`manage.py glow_demo`: the demo cast and content, and a second run that changes no row count."""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth import authenticate
from django.core.management import call_command

from glow.accounts.models import Cohort, Department, Organization, Profile

pytestmark = pytest.mark.django_db


def row_counts() -> dict[str, int]:
    """Every table, many-to-many link tables included."""
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed
    }


def test_glow_demo_twice_leaves_the_same_rows():
    first = StringIO()
    call_command("glow_demo", stdout=first)
    once = row_counts()
    call_command("glow_demo", stdout=StringIO())
    assert row_counts() == once
    assert "Demo data ready." in first.getvalue()


def test_the_demo_cast_can_sign_in_and_sees_its_own_organization():
    out = StringIO()
    call_command("glow_demo", stdout=out)
    demo = Organization.objects.get(name="Demo University")
    other = Organization.objects.get(name="Other College")
    assert Department.objects.filter(organization=demo).count() == 2
    assert Cohort.objects.filter(organization=demo).count() == 2
    expected = {
        "admin": (demo, "admin"),
        "instructor": (demo, "instructor"),
        "learner1": (demo, "learner"),
        "learner2": (demo, "learner"),
        "learner3": (demo, "learner"),
        "other_admin": (other, "admin"),
        "other_learner": (other, "learner"),
    }
    for username, (organization, role) in expected.items():
        profile = Profile.objects.get(user__username=username)
        assert (profile.organization, profile.role) == (organization, role)
        password = f"{username}-glow-demo"
        assert password in out.getvalue()
        assert authenticate(username=username, password=password) == profile.user
    learner1 = Profile.objects.get(user__username="learner1")
    assert learner1.cohorts.get().name == "CS-180 TAs Fall"


def test_a_rerun_keeps_a_renamed_and_edited_persona_and_makes_no_copy():
    from glow.catalog.models import Persona, Scenario

    call_command("glow_demo", stdout=StringIO())
    persona = Persona.objects.get(title="Casey, confused about recursion")
    scenario = Scenario.objects.get(persona=persona)
    Persona.objects.filter(pk=persona.pk).update(
        title="Casey, stuck on base cases", traits=["curious", "quiet"]
    )
    Profile.objects.filter(user__username="learner1").update(display_name="Lena L.")
    counts = row_counts()

    call_command("glow_demo", stdout=StringIO())

    assert row_counts() == counts
    persona.refresh_from_db()
    scenario.refresh_from_db()
    assert (persona.title, persona.traits) == ("Casey, stuck on base cases", ["curious", "quiet"])
    assert not Persona.objects.filter(title="Casey, confused about recursion").exists()
    assert scenario.persona_id == persona.pk
    assert Profile.objects.get(user__username="learner1").display_name == "Lena L."


def test_reset_writes_the_demo_values_back_over_edited_rows():
    from glow.catalog.models import Persona

    call_command("glow_demo", stdout=StringIO())
    persona = Persona.objects.get(title="Casey, confused about recursion")
    Persona.objects.filter(pk=persona.pk).update(title="Renamed", traits=["curious"])
    counts = row_counts()

    call_command("glow_demo", "--reset", stdout=StringIO())

    persona.refresh_from_db()
    assert persona.title == "Casey, confused about recursion"
    assert persona.traits == ["confused", "polite", "anxious", "apologetic"]
    assert row_counts()["catalog.Persona"] == counts["catalog.Persona"]


def test_rows_loaded_before_demo_ids_are_adopted_by_title_not_copied():
    from glow.catalog.demo import _upsert
    from glow.catalog.models import Persona
    from glow.core.seeding import demo_id

    call_command("glow_demo", stdout=StringIO())
    demo = Organization.objects.get(name="Demo University")
    # A row the old loader made: a random id, found only by its title.
    legacy = Persona.objects.create(organization=demo, title="Riley, legacy row", traits=["calm"])

    found = _upsert(Persona, demo, "Riley, legacy row", traits=["loud"])

    assert found.pk == legacy.pk != demo_id(Persona, "Demo University/Riley, legacy row")
    assert Persona.objects.get(pk=legacy.pk).traits == ["calm"]


def test_demo_models_keep_the_ids_they_were_seeded_with_before_the_class_rename():
    """catalog.Model became AIModel: a database seeded before finds its demo models by the same
    ids, so one renamed there is not copied by the next run."""
    from glow.catalog.models import AIModel

    call_command("glow_demo", stdout=StringIO())

    seeded_before = AIModel.objects.get(pk="64ac6e08-3435-58b5-aff2-deeaa3e626a9")
    assert seeded_before.title == "Glow local simulator"


def test_glow_demo_finishes_when_a_real_model_fails_to_grade(settings):
    """A model server that answers prose where JSON is needed: hints and grades fail, the demo
    attempts stay in progress, and the command still finishes."""
    from attempts.models import Attempt, AttemptStatus, Message
    from glow.ai import negotiation
    from glow.catalog.services import model_configure
    from tests.support.fakeserver import FakeOpenAIServer

    call_command("glow_demo", stdout=StringIO())
    Attempt.objects.all().delete()
    settings.GLOW_AI_MODEL = "Remote model"
    settings.GLOW_OPENAI_MAX_RETRIES = 0
    negotiation.forget_all()
    # With nothing queued the fake server echoes the learner: a reply, but never JSON.
    with FakeOpenAIServer() as server:
        model_configure(title="Remote model", base_url=server.base_url, provider_model="remote")
        out = StringIO()
        call_command("glow_demo", stdout=out)
    negotiation.forget_all()

    assert "Demo data ready." in out.getvalue()
    assert "left in progress, the model failed: The grader could not answer" in out.getvalue()
    assert not Attempt.objects.filter(status=AttemptStatus.COMPLETED).exists()
    replies = Message.objects.filter(role="assistant")
    assert replies.exists()
    assert all(reply.hints[0]["type"] == "error" for reply in replies)
