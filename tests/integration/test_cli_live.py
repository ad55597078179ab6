"""The real `glow` process against a live uvicorn server (and a Celery worker for generation)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from attempts.models import Attempt
from glow.accounts.services import api_key_create
from glow.accounts.tests.factories import CohortFactory, DepartmentFactory
from glow.catalog.models import Persona
from glow.catalog.tests.factories import EvalFactory, HomeFactory
from system.models import Run, RunStatus
from tests_app.tests.factories import TestFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

GLOW = Path(sys.executable).parent / "glow"
MISSING = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def world(org_admin, instructor, learner, outsider):
    """A department whose cohort holds the learner, a home entry for it, and everyone's key."""
    organization = org_admin.organization
    department = DepartmentFactory(organization=organization)
    for profile in (instructor, learner):
        profile.departments.add(department)
    cohort = CohortFactory(organization=organization, department=department)
    cohort.members.add(learner)
    return SimpleNamespace(
        organization=organization,
        department=department,
        learner=learner,
        home=HomeFactory(organization=organization, department=department, cohort=cohort),
        keys={
            name: api_key_create(profile=profile).plaintext
            for name, profile in {
                "admin": org_admin,
                "instructor": instructor,
                "learner": learner,
                "outsider": outsider,
            }.items()
        },
    )


@pytest.fixture(scope="session")
def cli_cache(tmp_path_factory) -> Path:
    """The CLI's schema cache for this session's server (not the user's ~/.cache)."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture
def glow(live_server_url, cli_cache):
    def run(token: str, *args: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "GLOW_INSTANCE_URL": f"{live_server_url}/api/v5/artifacts",
            "GLOW_TOKEN": token,
            "XDG_CACHE_HOME": str(cli_cache),
        }
        return subprocess.run(
            [str(GLOW), *args], env=env, capture_output=True, text=True, timeout=120
        )

    return run


def events_of(result: subprocess.CompletedProcess) -> list[dict]:
    """--wait and watch print the trigger's answer, then one JSON line per event."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"event"')]


def test_attempt_start(glow, world):
    result = glow(
        world.keys["learner"],
        "attempts",
        "start",
        "--body",
        json.dumps({"home_id": str(world.home.pk)}),
    )
    assert result.returncode == 0, result.stderr
    started = json.loads(result.stdout)
    attempt = Attempt.objects.get(pk=started["attempt_id"])
    assert attempt.profile_id == world.learner.pk
    assert len(started["chat_ids"]) == world.home.simulation.scenarios.count() == 2

    missing = glow(
        world.keys["learner"], "attempts", "start", "--body", json.dumps({"home_id": MISSING})
    )
    assert missing.returncode == 1 and missing.stdout == ""
    assert "(not_found, HTTP 404)" in missing.stderr


def test_test_search(glow, world):
    test = TestFactory(
        organization=world.organization,
        eval=EvalFactory(organization=world.organization, department=world.department),
    )
    result = glow(world.keys["admin"], "tests", "search", "--body", '{"page_size": 25}')
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [row["id"] for row in found["tests"]] == [str(test.pk)]
    assert found["total_count"] == 1

    elsewhere = glow(world.keys["outsider"], "tests", "search")
    assert elsewhere.returncode == 0 and json.loads(elsewhere.stdout)["tests"] == []


def test_system_sessions_lists_the_clis_own_session(glow, world):
    result = glow(world.keys["learner"], "system", "sessions", "--body", '{"page_size": 25}')
    assert result.returncode == 0, result.stderr
    (session,) = json.loads(result.stdout)["sessions"]
    assert session["profile_id"] == str(world.learner.pk)
    assert session["client_kind"] == "cli"  # the server read the glow-cli User-Agent


def test_personas_generate_wait_saves_the_persona(glow, world, celery_worker_process):
    result = glow(
        world.keys["instructor"],
        "personas",
        "generate",
        "--wait",
        "--body",
        '{"instructions": ["Aggressive student in CS-180, intensity 7"]}',
    )
    assert result.returncode == 0, result.stderr + celery_worker_process.log()[-3000:]
    events = events_of(result)
    assert [event["event"] for event in events][-2:] == [
        "GenerationSavedEvent",
        "GenerationCompleteEvent",
    ]
    complete = events[-1]["data"]
    persona = Persona.objects.get(pk=complete["artifact_id"])
    assert persona.organization_id == world.organization.id
    assert "100%" in result.stderr  # progress on stderr

    # The run's stream replays from its start, so watching it afterwards tells the same story.
    replay = glow(world.keys["instructor"], "personas", "watch", complete["run_id"])
    assert replay.returncode == 0, replay.stderr
    assert events_of(replay) == events


def test_a_failing_generation_exits_1(glow, world, celery_worker_process):
    # config.params are field values used as given; the persona write path refuses intensity 11.
    body = {"instructions": ["A passive student"], "config": {"params": {"intensity": 11}}}
    personas_before = Persona.objects.count()
    result = glow(
        world.keys["instructor"], "personas", "generate", "--wait", "--body", json.dumps(body)
    )
    assert result.returncode == 1, result.stderr
    error = events_of(result)[-1]
    assert error["event"] == "GenerationErrorEvent"
    assert "intensity" in error["data"]["message"]
    assert "GenerationErrorEvent: The generated data was refused" in result.stderr
    assert Persona.objects.count() == personas_before
    assert Run.objects.get(pk=error["data"]["run_id"]).status == RunStatus.FAILED


def test_help_lists_the_servers_ops_from_its_schema_then_from_the_cache(glow, world, cli_cache):
    first = glow(world.keys["learner"], "--help")
    assert first.returncode == 0, first.stderr
    assert "personas (persona)" in first.stdout and "attempts (attempt)" in first.stdout
    (cached,) = (cli_cache / "glow").iterdir()
    etag = json.loads(cached.read_text())["etag"]
    again = glow(world.keys["learner"], "--help")  # a 304: the same commands, from the file
    assert again.stdout == first.stdout
    assert json.loads(cached.read_text())["etag"] == etag
