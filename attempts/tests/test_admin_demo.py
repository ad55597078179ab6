"""The demo attempts (idempotent, real grades) and the staff admin: scoped, read-only, actions."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

from attempts import demo as attempts_demo
from attempts.models import Attempt, Grade
from glow.core.models import Upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(demo):
    attempts_demo.seed(stdout=io.StringIO())
    return demo


def test_demo_attempts_are_real_and_a_rerun_adds_nothing(seeded, make_client):
    before = (Attempt.objects.count(), Grade.objects.count())
    attempts_demo.seed(stdout=io.StringIO())
    assert (Attempt.objects.count(), Grade.objects.count()) == before == (4, 7)
    history = make_client(seeded.instructor).op("attempt/search", {"status": "completed"}).json()
    scores = {row["learner_name"]: row["score"] for row in history["attempts"]}
    assert scores["Lena Learner"] > scores["Leo Learner"]
    assert {option["label"] for option in history["learner_filter"]["options"]} == {
        "Lena Learner",
        "Leo Learner",
    }


def test_admin_lists_and_shows_attempts_read_only_with_the_transcript(seeded, client):
    client.force_login(seeded.instructor.user)
    listing = client.get(reverse("admin:attempts_attempt_changelist"))
    assert listing.status_code == 200
    assert b"Lena Learner" in listing.content
    attempt = Attempt.objects.filter(profile=seeded.learner1, status="completed").get()
    page = client.get(reverse("admin:attempts_attempt_change", args=[attempt.pk]))
    assert page.status_code == 200
    assert b"It sounds like recursion has been really frustrating" in page.content
    assert b'name="_save"' not in page.content


def test_admin_hides_other_organizations_attempts(seeded, client):
    client.force_login(seeded.other_admin.user)
    listing = client.get(reverse("admin:attempts_attempt_changelist"))
    assert listing.status_code == 200
    assert b"Lena Learner" not in listing.content


def test_admin_actions_archive_regrade_and_export(seeded, client):
    client.force_login(seeded.instructor.user)
    url = reverse("admin:attempts_attempt_changelist")
    completed = list(
        Attempt.objects.filter(status="completed").values_list("pk", flat=True).order_by("pk")
    )

    def act(action):
        response = client.post(url, {"action": action, "_selected_action": completed})
        assert response.status_code == 302

    grades = Grade.objects.count()
    act("regrade")
    assert Grade.objects.count() == grades + 6  # three chats each, graded again
    act("archive")
    assert Attempt.objects.filter(pk__in=completed, archived=True).count() == 2
    act("unarchive")
    assert not Attempt.objects.filter(archived=True).exists()
    act("export")
    export = Upload.objects.get(kind="export")
    assert export.row_count == 2 and export.owner == seeded.instructor
