"""event_emit and group_publish: numbered, stored, published once committed, never raising on publish."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from system import events
from system.ledger import group_create, run_create, session_touch
from system.models import Event


@pytest.fixture
def run(org_admin):
    session = session_touch(actor=org_admin, client_kind="api", auth="api_key")
    group = group_create(actor=org_admin, session=session, family="persona", name="Personas")
    return run_create(group=group, kind="generate")


@pytest.fixture
def published(monkeypatch):
    sent = []
    monkeypatch.setattr(
        events,
        "publish",
        lambda **message: sent.append({**message, "data": json.loads(message["data"])}),
    )
    return sent


def test_events_are_numbered_per_run_and_carry_the_envelope(run, published):
    first = events.event_emit(run=run, event_type=events.PROGRESS, payload={"percentage": 50})
    second = events.event_emit(run=run, event_type=events.SAVED, payload={"artifact_id": "a1"})
    assert (first.seq, second.seq) == (1, 2)
    stored = list(Event.objects.filter(run=run).values_list("seq", "event_type", "payload"))
    envelope = {"group_id": str(run.group_id), "run_id": str(run.pk)}
    assert stored == [
        (1, events.PROGRESS, {**envelope, "seq": 1, "percentage": 50}),
        (2, events.SAVED, {**envelope, "seq": 2, "artifact_id": "a1"}),
    ]
    run.refresh_from_db()
    assert run.event_seq == 2


def test_publish_happens_after_commit_to_the_run_and_group_channels(
    run, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = events.event_emit(run=run, event_type=events.COMPLETE, payload={"success": True})
    assert published == []  # subscribers must never see an event the database may still roll back
    for callback in callbacks:
        callback()
    assert [message["channel"] for message in published] == [
        f"run-{run.pk}",
        f"group-{run.group_id}",
    ]
    assert {message["event_id"] for message in published} == {event.pk}
    assert published[0]["data"] == event.payload
    assert published[0]["event_type"] == events.COMPLETE


def test_rolled_back_events_are_neither_stored_nor_published(
    run, published, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValueError),
        transaction.atomic(),
    ):
        events.event_emit(run=run, event_type=events.PROGRESS, payload={})
        raise ValueError
    assert published == []
    assert not Event.objects.filter(run=run).exists()


def test_a_publish_failure_is_logged_and_the_event_kept(
    run, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def redis_down(**message):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(events, "publish", redis_down)
    with django_capture_on_commit_callbacks(execute=True):
        event = events.event_emit(run=run, event_type=events.ERROR, payload={"message": "x"})
    assert Event.objects.filter(pk=event.pk).exists()
    assert "Could not publish GenerationErrorEvent" in caplog.text


def test_group_publish_is_transient_and_group_only(
    run, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        events.group_publish(
            group_id=run.group_id,
            event_type="ChatDeltaEvent",
            payload={"run_id": str(run.pk), "delta": "Hel"},
        )
    assert published == [
        {
            "channel": f"group-{run.group_id}",
            "event_type": "ChatDeltaEvent",
            "event_id": None,
            "data": {"group_id": str(run.group_id), "run_id": str(run.pk), "delta": "Hel"},
        }
    ]
    assert not Event.objects.exists()
