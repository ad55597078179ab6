"""Over HTTP: watch a test's group (SSE, ASGI path) until every invocation is done."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django_eventstream import eventstream
from django_eventstream.views import get_listener_manager

from glow.accounts.services import api_key_create
from glow.cli.sse import parse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _in_process_channel(monkeypatch):
    """One process here, even when REDIS_URL is set: the Redis path is the integration suite's."""
    monkeypatch.setattr(eventstream, "redis_client", None)
    monkeypatch.setattr(get_listener_manager(), "redis_listener", None)


def frames_of(text: str) -> list[tuple[str, dict]]:
    """(event, data) of every event with data; the stream's empty bookkeeping frames are not."""
    return [(event.event, event.json()) for event in parse(text + "\n\n") if event.data]


async def test_watching_the_group_replays_until_every_invocation_is_done(staff, catalog):
    key = await sync_to_async(lambda: api_key_create(profile=staff).plaintext)()
    client = AsyncClient()
    started = await client.post(
        "/api/v5/artifacts/test/start",
        catalog.start_body(),
        content_type="application/json",
        headers={"X-Api-Key": key},
    )
    assert started.status_code == 200, started.content
    group_id = started.json()["group_id"]
    response = await client.get(
        f"/api/v5/artifacts/test/watch?group_id={group_id}&lastEventId=0",
        headers={"Accept": "text/event-stream", "X-Api-Key": key},
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    chunks, text, frames = response.streaming_content.__aiter__(), "", []
    async with asyncio.timeout(10):
        while not any(event == "TestProgressEvent" and data["finished"] for event, data in frames):
            text += (await chunks.__anext__()).decode()
            frames = frames_of(text.rsplit("\n\n", 1)[0])
    await chunks.aclose()
    completes = {
        data["invocation_id"] for event, data in frames if event == "GenerationCompleteEvent"
    }
    assert len(completes) == 4
    progress = [data for event, data in frames if event == "TestProgressEvent"]
    assert [data["done"] for data in progress] == [1, 2, 3, 4]
    assert all(data["group_id"] == group_id for _event, data in frames)
    assert any(event == "InvocationToolCallEvent" for event, _data in frames)
