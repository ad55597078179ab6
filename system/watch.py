"""The watch stream: authorise first, replay stored events, then follow django-eventstream's listeners.

A client may connect before, during or after a run. It first gets the stored events after
its cursor (a run-scoped watch starts from the run's first event; `Last-Event-ID` resumes
after the one named), then live events as they are published — from this process, or,
with EVENTSTREAM_REDIS set, from any process (a Celery worker) through Redis. Events carry
their stored id and per-run seq, so the replay/live seam delivers each exactly once. A
run-scoped stream ends after the run's terminal event.

Redis may go away and come back: the Redis listener here reconnects (django-eventstream's own
dies with its first connection error, and that process's streams would never hear a live
event again), every stream re-reads the database once it is back, and while it is away the
streams poll the database every few seconds instead of waiting for the keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import StreamingHttpResponse
from django_eventstream.event import Event as StreamEvent
from django_eventstream.utils import add_default_headers, sse_encode_event
from django_eventstream.views import Listener, RedisListener, get_listener_manager

from glow.core.errors import NotFound
from system import events, selectors
from system.models import FINISHED, Event, Run

KEEPALIVE_SECONDS = 15.0
# A run finished without a terminal event (e.g. a chat run) closes its stream after this.
FINISHED_GRACE_SECONDS = 2.0
REPLAY_BATCH = 500
# How long a new stream waits for the Redis subscription before reading the database.
SUBSCRIBE_WAIT_SECONDS = 2.0
# With Redis unreachable, streams read the database this often instead.
DEGRADED_POLL_SECONDS = 2.0
RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS = 0.2, 2.0
EVENTS_CHANNEL = "events_channel"  # django-eventstream's Redis pub/sub channel

logger = logging.getLogger(__name__)


@dataclass
class Follower:
    """Which events a stream has delivered: per-run seq for a run, stored id for a group."""

    channel: str
    run_id: str | None
    group_id: str
    position: int  # run scope: last seq sent; group scope: highest event id sent
    floor: int = 0  # group scope: the client already has every event up to this id
    delivered: dict[str, int] = field(default_factory=dict)  # group scope: run_id -> last seq
    done: bool = False

    def frame(self, event_type: str, data: str, event_id: int | None) -> str:
        frame_id = f"{self.channel}:{event_id}" if event_id is not None else None
        return encode(event_type, data, frame_id)

    def rows(self, rows: list[Event]) -> list[str]:
        frames = []
        for row in rows:
            if self.done:
                break
            data = json.dumps(row.payload)
            if self.run_id is not None:
                if row.seq <= self.position:
                    continue
                self.position = row.seq
                frames.append(self.frame(row.event_type, data, row.seq))
                self.done = row.event_type in events.TERMINAL_EVENTS
            else:
                self.position = max(self.position, row.pk)
                run_key = str(row.run_id)
                if row.seq <= self.delivered.get(run_key, 0):
                    continue
                self.delivered[run_key] = row.seq
                frames.append(self.frame(row.event_type, data, self.position))
        return frames

    def live(self, item) -> tuple[str | None, bool]:
        """One published event: its frame (None: already sent), and whether one was missed."""
        if item.id is None:  # transient (chat deltas): not stored, sent as is
            return self.frame(item.type, item.data, None), False
        try:
            seq, run_key = envelope_of(item.data)
        except (ValueError, KeyError, TypeError):
            return None, True
        if self.run_id is not None:
            if seq <= self.position:
                return None, False
            if seq != self.position + 1:
                return None, True
            self.position = seq
            self.done = item.type in events.TERMINAL_EVENTS
            return self.frame(item.type, item.data, seq), False
        last = self.delivered.get(run_key)
        if (last is not None and seq <= last) or (last is None and int(item.id) <= self.floor):
            return None, False
        self.delivered[run_key] = seq
        self.position = max(self.position, int(item.id))
        return self.frame(item.type, item.data, self.position), last is not None and seq > last + 1


# One published event reaches every watcher of its channel as the same objects: parse and
# encode it once, not once per watcher.
@lru_cache(maxsize=1024)
def envelope_of(data: str) -> tuple[int, str]:
    body = json.loads(data)
    return int(body["seq"]), str(body["run_id"])


@lru_cache(maxsize=1024)
def encode(event_type: str, data: str, frame_id: str | None) -> str:
    return sse_encode_event(event_type, data, event_id=frame_id)


def parse_last_event_id(value: str, channel: str) -> int | None:
    """`<channel>:<n>` as this stream sends it (or a bare number); anything else is ignored."""
    value = (value or "").strip()
    if not value:
        return None
    name, _, number = value.rpartition(":")
    if name and name != channel:
        return None
    try:
        parsed = int(number)
    except ValueError:
        return None
    return parsed if parsed >= 0 else None


def watch_response(*, request, actor, run_id: Any, group_id: Any, last_event_id: str):
    """Authorise (another organization's or an unknown id: the usual 404), then stream."""
    if run_id:
        run = selectors.run_queryset(actor=actor).filter(pk=run_id).only("pk", "group_id").first()
        if run is None:
            raise NotFound("No run with that id.")
        channel = events.run_channel(run.pk)
        position = parse_last_event_id(last_event_id, channel) or 0
        follower = Follower(
            channel=channel, run_id=str(run.pk), group_id=str(run.group_id), position=position
        )
    else:
        group = selectors.group_access(actor=actor, group_id=group_id)
        channel = events.group_channel(group.pk)
        position = parse_last_event_id(last_event_id, channel)
        if position is None:
            # A group may hold a long history: without a cursor, follow from now on.
            latest = Event.objects.filter(group=group).order_by("-pk").values_list("pk").first()
            position = latest[0] if latest else 0
        follower = Follower(
            channel=channel, run_id=None, group_id=str(group.pk), position=position, floor=position
        )
    if not connection.in_atomic_block:
        # The stream outlives this request's sync part: don't pin a database connection to it.
        connection.close()
    response = StreamingHttpResponse(
        event_stream(follower=follower, user_id=str(actor.user_id)),
        content_type="text/event-stream",
    )
    add_default_headers(response, request=request)
    return response


@dataclass
class Batch:
    rows: list[Event]
    more: bool
    run_finished: bool


def _read(follower: Follower) -> Batch:
    try:
        if follower.run_id is not None:
            query = Event.objects.filter(run_id=follower.run_id, seq__gt=follower.position)
            rows = list(query.order_by("seq")[: REPLAY_BATCH + 1])
            status = Run.objects.filter(pk=follower.run_id).values_list("status", flat=True)
            finished = status.first() in FINISHED
        else:
            query = Event.objects.filter(group_id=follower.group_id, pk__gt=follower.position)
            rows = list(query.order_by("pk")[: REPLAY_BATCH + 1])
            finished = False
    finally:
        # Reads are rare (a replay, a gap, a quiet minute): no connection is held between them.
        connection.close()
    return Batch(rows=rows[:REPLAY_BATCH], more=len(rows) > REPLAY_BATCH, run_finished=finished)


# Not thread-sensitive: the reads of many streams share the default executor's few threads
# instead of each stream holding a thread of its own.
read_events = sync_to_async(_read, thread_sensitive=False)


class ResilientRedisListener(RedisListener):
    """django-eventstream's Redis subscriber, kept alive across Redis outages and restarts."""

    def __init__(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # Errors reach start() at once (no silent retries), so it knows when to re-read.
        self.redis_client = Redis(
            **settings.EVENTSTREAM_REDIS,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2,
            socket_keepalive=True,
        )
        self.pubsub = self.redis_client.pubsub()
        self.connected = False
        self.settled = asyncio.Event()  # set once the first subscribe attempt is over

    async def start(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                await self.pubsub.subscribe(EVENTS_CHANNEL)
                self.connected, delay = True, RECONNECT_MIN_SECONDS
                self.settled.set()
                # Whatever was published while we were away is only in the database.
                resync_streams(get_listener_manager())
                async for message in self.pubsub.listen():
                    if message["type"] == "message":
                        self.dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected or not self.settled.is_set():
                    logger.warning("Lost the Redis event channel (%s); reconnecting", exc)
            lost, self.connected = self.connected, False
            self.settled.set()
            if lost:  # streams waiting for a live event switch to polling the database
                resync_streams(get_listener_manager())
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
            self.pubsub = self.redis_client.pubsub()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    @staticmethod
    def dispatch(raw) -> None:
        """One event (django-eventstream's message: channel, event_type, data, pub_id) or a
        batch of them (system.events._publish_many: [event_type, data, pub_id, channels])."""
        try:
            message = json.loads(raw)
            if "batch" in message:
                found = [
                    StreamEvent(channel, event_type, data, id=event_id)
                    for event_type, data, event_id, channels in message["batch"]
                    for channel in channels
                ]
            else:
                found = [
                    StreamEvent(
                        message["channel"],
                        message["event_type"],
                        message["data"],
                        id=message["pub_id"],
                    )
                ]
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignored a malformed message on %s", EVENTS_CHANNEL)
            return
        manager = get_listener_manager()
        for event in found:
            manager.add_to_queues(event.channel, event)


def resync_streams(manager) -> None:
    """Wake every stream of this process to re-read the database (as after a missed event)."""
    with manager.lock:
        listeners = set().union(*manager.listeners_by_channel.values())
        for listener in listeners:
            listener.overflow = True
            listener.wake_threadsafe()


def listener_manager():
    """django-eventstream's listener manager, with the resilient Redis listener in place."""
    manager = get_listener_manager()
    with manager.lock:
        current = manager.redis_listener
        if (
            current is not None
            and not isinstance(current, ResilientRedisListener)
            and not manager.redis_listener_started
        ):
            manager.redis_listener = ResilientRedisListener()
    return manager


def live_channel_up(manager) -> bool:
    """False while Redis is configured but unreachable: live events cannot arrive then."""
    redis_listener = manager.redis_listener
    return redis_listener is None or getattr(redis_listener, "connected", True)


async def _redis_subscribed(manager) -> None:
    settled = getattr(manager.redis_listener, "settled", None)
    if settled is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SUBSCRIBE_WAIT_SECONDS):
            await settled.wait()


async def event_stream(*, follower: Follower, user_id: str) -> AsyncIterator[str]:
    manager = listener_manager()
    listener = Listener()
    listener.user_id = user_id
    listener.channels = {follower.channel}
    listener.assign_loop()
    # Listen before reading the database: whatever commits after the read is then queued.
    manager.add_listener(listener)
    loop = asyncio.get_running_loop()
    try:
        await _redis_subscribed(manager)
        opening = ": stream open\n\n"  # sent with the first replay: headers go out at once
        must_read, deadline = True, None
        while True:
            if must_read:
                batch = await read_events(follower)
                frames = follower.rows(batch.rows)
                if frames or opening:
                    yield opening + "".join(frames)
                    opening = ""
                if follower.done or (deadline is not None and loop.time() >= deadline):
                    return
                must_read = batch.more
                if must_read:
                    continue
                if batch.run_finished and deadline is None:
                    deadline = loop.time() + FINISHED_GRACE_SECONDS
            wait = KEEPALIVE_SECONDS if deadline is None else deadline - loop.time()
            if not live_channel_up(manager):
                wait = min(wait, DEGRADED_POLL_SECONDS)
            try:
                async with asyncio.timeout(max(wait, 0)):
                    await listener.aevent.wait()
            except TimeoutError:
                # Quiet: keep proxies from closing the connection, and re-check the database
                # in case a publish was lost (e.g. Redis is down). Past the grace of a
                # finished run, that last look is the end of the stream.
                if deadline is None:
                    yield ": keep-alive\n\n"
                must_read = True
                continue
            with manager.lock:
                items = listener.channel_items.pop(follower.channel, [])
                overflow = listener.overflow
                listener.channel_items, listener.overflow = {}, False
                listener.aevent.clear()
            frames, missed = [], overflow
            for item in items:
                frame, gap = follower.live(item)
                missed = missed or gap
                if frame is not None:
                    frames.append(frame)
                if follower.done:
                    break
            if frames:
                yield "".join(frames)
            if follower.done:
                return
            must_read = missed
    finally:
        manager.remove_listener(listener)
