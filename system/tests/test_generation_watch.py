"""watch over SSE (ASGI path): replay from the start or after Last-Event-ID, live events, the end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django_eventstream import eventstream
from django_eventstream.views import get_listener_manager

from glow.accounts.services import api_key_create
from glow.cli.sse import SSEEvent, SSEParser
from system import events, watch
from system.ledger import group_create, run_create, run_finish, session_touch
from system.models import RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _in_process_channel(monkeypatch):
    """One process here, even when REDIS_URL is set: the Redis path is the integration suite's."""
    monkeypatch.setattr(eventstream, "redis_client", None)
    monkeypatch.setattr(get_listener_manager(), "redis_listener", None)


@dataclass
class Frame:
    event: str
    id: str | None
    data: dict


def parse(events: list[SSEEvent]) -> list[Frame]:
    """The events with data (the stream's empty bookkeeping frames are not frames of a run)."""
    return [Frame(event.event, event.id, event.json()) for event in events if event.data]


class Stream:
    """Reads an SSE response frame by frame, each wait bounded so a hung stream fails fast."""

    def __init__(self, response) -> None:
        self.chunks = response.streaming_content.__aiter__()
        self.parser = SSEParser()
        self.pending: list[Frame] = []
        self.ended = False

    async def next_frames(self, count: int, timeout: float = 5.0) -> list[Frame]:
        async with asyncio.timeout(timeout):
            while len(self.pending) < count:
                try:
                    chunk = await self.chunks.__anext__()
                except StopAsyncIteration:
                    self.ended = True
                    break
                self.pending += parse(self.parser.feed_bytes(chunk))
        taken, self.pending = self.pending[:count], self.pending[count:]
        return taken

    async def rest(self, timeout: float = 5.0) -> list[Frame]:
        """Everything until the server ends the stream (fails if it does not end)."""
        async with asyncio.timeout(timeout):
            async for chunk in self.chunks:
                self.pending += parse(self.parser.feed_bytes(chunk))
        self.ended = True
        taken, self.pending = self.pending, []
        return taken

    async def close(self) -> None:
        await self.chunks.aclose()


class KeyedClient(AsyncClient):
    """Sends the API key with every request (per-request headers replace the client's)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def generic(self, *args, headers=None, **kwargs):
        return super().generic(*args, headers={"X-Api-Key": self.key, **(headers or {})}, **kwargs)


@pytest.fixture
def books(org_admin):
    session = session_touch(actor=org_admin, client_kind="api", auth="api_key")
    group = group_create(actor=org_admin, session=session, family="persona", name="Personas")
    run = run_create(group=group, kind="generate")
    key = api_key_create(profile=org_admin).plaintext
    return {"group": group, "run": run, "client": KeyedClient(key)}


def emit(run, event_type, **payload):
    return events.event_emit(run=run, event_type=event_type, payload=payload)


def finished_run(run):
    emit(run, events.PROGRESS, completed_resources=1, total_resources=1, percentage=100)
    emit(run, events.SAVED, artifact_id="a")
    emit(run, events.COMPLETE, success=True, message="done", artifact_id="a")
    run_finish(run=run, status=RunStatus.SUCCEEDED)


async def open_watch(client, query: str, **headers):
    response = await client.get(
        f"/api/v5/artifacts/persona/watch?{query}",
        headers={"Accept": "text/event-stream", **headers},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    stream = Stream(response)
    # The first bytes (with any replay) come once the stream listens: later events reach it.
    async with asyncio.timeout(5):
        first = await stream.chunks.__anext__()
    assert first.startswith(b": stream open")
    stream.pending += parse(stream.parser.feed_bytes(first))
    return stream


async def test_a_run_watch_replays_from_the_start_and_ends_after_the_terminal_event(books):
    run = books["run"]
    await sync_to_async(finished_run)(run)
    stream = await open_watch(books["client"], f"run_id={run.pk}")
    frames = await stream.rest()
    assert [f.event for f in frames] == [events.PROGRESS, events.SAVED, events.COMPLETE]
    assert [f.id for f in frames] == [f"run-{run.pk}:{seq}" for seq in (1, 2, 3)]
    assert all(f.data["run_id"] == str(run.pk) for f in frames)
    assert all(f.data["group_id"] == str(run.group_id) for f in frames)


async def test_last_event_id_resumes_after_it_none_twice(books):
    run = books["run"]
    await sync_to_async(finished_run)(run)
    stream = await open_watch(
        books["client"], f"run_id={run.pk}", **{"Last-Event-ID": f"run-{run.pk}:1"}
    )
    frames = await stream.rest()
    assert [f.data["seq"] for f in frames] == [2, 3]
    response = await books["client"].post(
        "/api/v5/artifacts/persona/watch",
        {"run_id": str(run.pk), "last_event_id": f"run-{run.pk}:2"},
        content_type="application/json",
    )
    assert [f.data["seq"] for f in await Stream(response).rest()] == [3]


async def test_live_events_follow_the_replay_exactly_once(books):
    run = books["run"]
    await sync_to_async(emit)(run, events.PROGRESS, completed_resources=1, total_resources=2)
    stream = await open_watch(books["client"], f"run_id={run.pk}")
    [first] = await stream.next_frames(1)
    assert first.data["seq"] == 1

    def rest_of_the_run():
        emit(run, events.PROGRESS, completed_resources=2, total_resources=2)
        emit(run, events.SAVED, artifact_id="a")
        emit(run, events.COMPLETE, success=True, message="done", artifact_id="a")

    await sync_to_async(rest_of_the_run, thread_sensitive=False)()
    frames = await stream.rest()
    assert [f.data["seq"] for f in frames] == [2, 3, 4]
    assert frames[-1].event == events.COMPLETE


async def test_a_watch_opened_before_the_run_starts_gets_everything(books):
    run = books["run"]
    stream = await open_watch(books["client"], f"run_id={run.pk}")  # nothing stored yet
    await sync_to_async(finished_run, thread_sensitive=False)(run)
    frames = await stream.rest()
    assert [f.data["seq"] for f in frames] == [1, 2, 3]


async def test_a_finished_run_without_a_terminal_event_closes_after_the_grace(books, monkeypatch):
    monkeypatch.setattr(watch, "FINISHED_GRACE_SECONDS", 0.05)
    run = books["run"]

    def chat_run():
        emit(run, "ChatMessageEvent", text="Hi")
        run_finish(run=run, status=RunStatus.SUCCEEDED)

    await sync_to_async(chat_run)()
    stream = await open_watch(books["client"], f"run_id={run.pk}")
    assert [f.event for f in await stream.rest(timeout=2)] == ["ChatMessageEvent"]


async def test_a_group_watch_multiplexes_runs_and_carries_transient_events(books):
    group, first_run = books["group"], books["run"]
    await sync_to_async(emit)(first_run, events.PROGRESS, completed_resources=1)
    stream = await open_watch(books["client"], f"group_id={group.pk}")

    def activity():
        second_run = run_create(group=group, kind="persona_reply")
        events.group_publish(
            group_id=group.pk,
            event_type="ChatDeltaEvent",
            payload={"run_id": str(second_run.pk), "delta": "Hel"},
        )
        emit(second_run, "ChatMessageEvent", text="Hello")
        emit(first_run, events.COMPLETE, success=True, message="done", artifact_id=None)
        return second_run

    second_run = await sync_to_async(activity, thread_sensitive=False)()
    frames = await stream.next_frames(3)
    await stream.close()
    # Without a cursor a group watch follows from now: the earlier progress is not replayed.
    assert [(f.event, f.data["run_id"]) for f in frames] == [
        ("ChatDeltaEvent", str(second_run.pk)),
        ("ChatMessageEvent", str(second_run.pk)),
        (events.COMPLETE, str(first_run.pk)),
    ]
    assert frames[0].id is None  # transient: nothing to resume from
    assert frames[1].id.startswith(f"group-{group.pk}:")


async def test_a_group_watch_resumes_after_its_last_event_id(books):
    group, run = books["group"], books["run"]
    await sync_to_async(finished_run)(run)
    stream = await open_watch(books["client"], f"group_id={group.pk}")
    await stream.close()
    first = await open_watch(books["client"], f"group_id={group.pk}&lastEventId=0")
    replayed = await first.next_frames(3)
    await first.close()
    assert [f.data["seq"] for f in replayed] == [1, 2, 3]
    resumed = await open_watch(
        books["client"], f"group_id={group.pk}", **{"Last-Event-ID": replayed[0].id}
    )
    frames = await resumed.next_frames(2)
    await resumed.close()
    assert [f.data["seq"] for f in frames] == [2, 3]
