"""generate + watch across real processes: uvicorn answers, a Celery worker works, Redis carries events."""

from __future__ import annotations

import time

import httpx
import pytest

from glow.accounts.services import api_key_create
from glow.catalog.models import Persona
from tests.integration.sse import frames

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

EXPECTED = ["GenerationProgressEvent", "GenerationSavedEvent", "GenerationCompleteEvent"]
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def api(live_server_url, org_admin):
    key = api_key_create(profile=org_admin).plaintext
    with httpx.Client(
        base_url=f"{live_server_url}/api/v5/artifacts", headers={"X-Api-Key": key}, timeout=30
    ) as client:
        client.post("/persona/generations", json={}).raise_for_status()  # a warm process
        yield client


def generate(api: httpx.Client) -> tuple[dict, float]:
    started = time.perf_counter()
    response = api.post(
        "/persona/generate", json={"instructions": ["An anxious student, intensity 6"]}
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return response.json(), elapsed


def test_worker_events_reach_a_watcher_live_and_resume_exactly(api, celery_worker_factory):
    body, elapsed = generate(api)
    assert elapsed < 0.5, f"generate took {elapsed:.3f} s"
    assert body["produced_media"] == []
    run_id = body["run_id"]

    # No worker runs yet, so the run waits in the queue: whatever the watch gets now is live,
    # published by the worker process through Redis to this uvicorn process.
    with api.stream("GET", "/persona/watch", params={"run_id": run_id}, headers=SSE) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith(": stream open")
        celery_worker_factory()
        ready = time.monotonic()
        received = list(frames(lines))  # the server ends the stream after the terminal event
        # Well inside the 15 s keep-alive, when the stream would re-read the database anyway.
        assert time.monotonic() - ready < 10
    assert [frame.event for frame in received] == EXPECTED
    assert [frame.data["seq"] for frame in received] == [1, 2, 3]
    assert all(frame.data["run_id"] == run_id for frame in received)
    assert all(frame.data["group_id"] == body["group_id"] for frame in received)
    persona = Persona.objects.get(pk=received[-1].data["artifact_id"])
    assert "anxious" in persona.traits

    # Reconnecting after the first event replays exactly the ones missed, then ends.
    with api.stream(
        "GET",
        "/persona/watch",
        params={"run_id": run_id},
        headers={**SSE, "Last-Event-ID": received[0].id},
    ) as stream:
        resumed = list(frames(stream.iter_lines()))
    assert [(f.event, f.id) for f in resumed] == [(f.event, f.id) for f in received[1:]]


def test_a_watch_opened_mid_run_misses_nothing(api, celery_worker_process):
    body, _ = generate(api)
    with api.stream("POST", "/persona/watch", json={"run_id": body["run_id"]}) as stream:
        received = list(frames(stream.iter_lines()))
    assert [frame.event for frame in received] == EXPECTED
    assert [frame.data["seq"] for frame in received] == [1, 2, 3]


def test_another_organizations_run_is_404_before_any_stream(api, live_server_url, outsider):
    body, _ = generate(api)
    key = api_key_create(profile=outsider).plaintext
    response = httpx.get(
        f"{live_server_url}/api/v5/artifacts/persona/watch",
        params={"run_id": body["run_id"]},
        headers={**SSE, "X-Api-Key": key},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
