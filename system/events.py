"""Run events: stored with a per-run sequence number, then published to the SSE channels on commit."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from glow.core.bulk import copy_rows, reserve_ids
from system.models import Event, Run

logger = logging.getLogger(__name__)

# The six client-facing generation events of seed 004; other flows may emit other types.
PROGRESS = "GenerationProgressEvent"
SAVED = "GenerationSavedEvent"
COMPLETE = "GenerationCompleteEvent"
ERROR = "GenerationErrorEvent"
MEDIA_PROGRESS = "GenerationMediaProgressEvent"
MEDIA_COMPLETE = "GenerationMediaCompleteEvent"
GENERATION_EVENTS = (PROGRESS, SAVED, COMPLETE, ERROR, MEDIA_PROGRESS, MEDIA_COMPLETE)
# A run-scoped watch closes after one of these.
TERMINAL_EVENTS = frozenset({COMPLETE, ERROR})
# Connect and send limit of one publish; an unreachable Redis costs at most twice this per event.
PUBLISH_TIMEOUT_SECONDS = 1.0


def run_channel(run_id: Any) -> str:
    return f"run-{run_id}"


def group_channel(group_id: Any) -> str:
    return f"group-{group_id}"


def envelope(*, group_id: Any, run_id: Any, seq: int | None, payload: dict) -> dict:
    """The fields every event carries, so one group stream can multiplex many runs."""
    body = {"group_id": str(group_id), "run_id": str(run_id) if run_id else None}
    if seq is not None:
        body["seq"] = seq
    return {**body, **payload}


@transaction.atomic
def event_emit(*, run: Run, event_type: str, payload: dict) -> Event:
    """Store the run's next event and publish it to run-<id> and group-<id> once committed.

    The sequence number comes from one UPDATE of Run.event_seq, so concurrent emitters of the
    same run get distinct, gapless numbers. A failed publish is logged, never raised: the stored
    row is what a reconnecting client replays.
    """
    Run.objects.filter(pk=run.pk).update(event_seq=F("event_seq") + 1)
    seq = Run.objects.filter(pk=run.pk).values_list("event_seq", flat=True).get()
    run.event_seq = seq
    body = envelope(group_id=run.group_id, run_id=run.pk, seq=seq, payload=payload)
    # Round-trip through JSON so the stored payload is exactly what subscribers receive.
    body = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
    event = Event.objects.create(
        run_id=run.pk, group_id=run.group_id, seq=seq, event_type=event_type, payload=body
    )
    data = json.dumps(body)
    channels = (run_channel(run.pk), group_channel(run.group_id))
    transaction.on_commit(lambda: _publish_all(channels, event_type, data, event.pk))
    return event


def event_emit_many(*, items: list[tuple[Run, str, dict]]) -> None:
    """event_emit for many (run, event_type, payload) at once: the same rows and messages in a
    handful of statements, for a worker that advances many runs together.

    One UPDATE reserves each run's block of sequence numbers (concurrent emitters of the same run
    still get distinct, gapless numbers: the row lock holds until commit), one INSERT writes the
    events in the order given, and one Redis pipeline publishes them on commit.
    """
    if not items:
        return
    # No savepoint inside a caller's transaction: nothing here is retried on its own.
    with transaction.atomic(savepoint=False):
        _emit_many(items)


EVENT_COLUMNS = ["id", "run_id", "group_id", "seq", "event_type", "payload", "created_at"]


def _emit_many(items: list[tuple[Run, str, dict]]) -> None:
    wanted: dict[Any, int] = {}
    for run, _, _ in items:
        wanted[run.pk] = wanted.get(run.pk, 0) + 1
    last = _reserve_seqs(wanted)
    next_seq = {pk: last[pk] - n + 1 for pk, n in wanted.items()}
    now = timezone.now()
    copy = connection.vendor == "postgresql"
    ids = reserve_ids(Event, len(items)) if copy else [None] * len(items)
    rows = []  # EVENT_COLUMNS, the payload as encoded: exactly what subscribers receive
    for event_id, (run, event_type, payload) in zip(ids, items, strict=True):
        seq = next_seq[run.pk]
        next_seq[run.pk] = seq + 1
        run.event_seq = max(run.event_seq, seq)
        body = envelope(group_id=run.group_id, run_id=run.pk, seq=seq, payload=payload)
        data = json.dumps(body, cls=DjangoJSONEncoder)
        rows.append([event_id, run.pk, run.group_id, seq, event_type, data, now])
    if copy:
        copy_rows(Event, EVENT_COLUMNS, rows)  # COPY reads jsonb from its text
    else:
        created = Event.objects.bulk_create(
            [
                Event(
                    run_id=run_id,
                    group_id=group_id,
                    seq=seq,
                    event_type=event_type,
                    payload=json.loads(data),
                    created_at=created_at,
                )
                for _, run_id, group_id, seq, event_type, data, created_at in rows
            ]
        )
        for row, event in zip(rows, created, strict=True):
            row[0] = event.pk
    messages = [
        (event_type, data, event_id, (run_channel(run_id), group_channel(group_id)))
        for event_id, run_id, group_id, _, event_type, data, _ in rows
    ]
    transaction.on_commit(lambda: _publish_many(messages))


def _reserve_seqs(wanted: dict[Any, int]) -> dict[Any, int]:
    """Add each run's count to its event_seq in one UPDATE ... RETURNING (PostgreSQL, and SQLite
    since 3.35); answers each run's new last seq. The row locks hold until commit, so concurrent
    emitters of one run get distinct, gapless blocks."""
    pk = Run._meta.pk
    prep = {pk.get_db_prep_value(key, connection): key for key in wanted}
    counts = set(wanted.values())
    params: list = []
    if len(counts) == 1:
        added = "%s"
        params.append(counts.pop())
    else:
        added = "CASE id " + " ".join(["WHEN %s THEN %s"] * len(wanted)) + " END"
        for key, n in wanted.items():
            params += [pk.get_db_prep_value(key, connection), n]
    table = connection.ops.quote_name(Run._meta.db_table)
    marks = ", ".join(["%s"] * len(prep))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET event_seq = event_seq + {added} "
            f"WHERE id IN ({marks}) RETURNING id, event_seq",
            [*params, *prep],
        )
        rows = cursor.fetchall()
    # SQLite answers the id as stored (hex text): map it back to the key the caller gave.
    return {prep.get(row_id, row_id): seq for row_id, seq in rows}


def group_publish(*, group_id: Any, event_type: str, payload: dict) -> None:
    """A transient event (e.g. a chat text delta) to group-<id> only: not stored, not replayed."""
    body = envelope(group_id=group_id, run_id=payload.get("run_id"), seq=None, payload=payload)
    data = json.dumps(body, cls=DjangoJSONEncoder)
    transaction.on_commit(lambda: _publish_all((group_channel(group_id),), event_type, data, None))


def _publish_all(channels, event_type: str, data: str, event_id: int | None) -> None:
    for channel in channels:
        try:
            publish(channel=channel, event_type=event_type, data=data, event_id=event_id)
        except Exception as exc:
            # Expected while Redis is down: one line, not a traceback per event and channel.
            logger.warning("Could not publish %s to %s: %s", event_type, channel, exc)


BATCH_MESSAGE_EVENTS = 500  # events per Redis message of a batch: bounds one message's size


def _publish_many(messages: list[tuple[str, str, int | None, tuple[str, ...]]]) -> None:
    """Many (event_type, data, event_id, channels) in one Redis message per 500: every web
    process's listener (system.watch) unpacks it. A PUBLISH per event and channel was a tenth
    of a grid worker's time, and as much again in each web process. Without Redis (or with it
    down), straight to this process's own watchers."""
    client = _redis_publisher()
    if client is not None:
        try:
            pipeline = client.pipeline(transaction=False)
            for start in range(0, len(messages), BATCH_MESSAGE_EVENTS):
                chunk = messages[start : start + BATCH_MESSAGE_EVENTS]
                pipeline.publish(
                    "events_channel",
                    json.dumps({"batch": [[t, d, i, list(c)] for t, d, i, c in chunk]}),
                )
            pipeline.execute()
            return
        except Exception as exc:
            logger.warning("Could not publish %d events: %s", len(messages), exc)
    # As publish() does: this process's own watchers still get them; others read the database.
    for event_type, data, event_id, channels in messages:
        for channel in channels:
            _deliver_locally(channel, event_type, data, event_id)


def publish(*, channel: str, event_type: str, data: str, event_id: int | None) -> None:
    """Hand one encoded event to django-eventstream's listeners: via Redis when it is configured
    (every web process receives it), else straight into this process's listener queues.

    This is django_eventstream.send_event minus its own storage: our Event rows are the
    storage, and their id travels with the message so subscribers can de-duplicate. With Redis
    down, this process's own watchers still get the event (a task the web process ran itself);
    the others read it from the database, and the error is raised for the caller to log.
    """
    client = _redis_publisher()
    if client is None:
        _deliver_locally(channel, event_type, data, event_id)
        return
    message = {"channel": channel, "event_type": event_type, "data": data, "pub_id": event_id}
    try:
        client.publish("events_channel", json.dumps(message))
    except Exception:
        _deliver_locally(channel, event_type, data, event_id)
        raise


def _deliver_locally(channel: str, event_type: str, data: str, event_id: int | None) -> None:
    from django_eventstream.event import Event as StreamEvent
    from django_eventstream.views import get_listener_manager

    get_listener_manager().add_to_queues(
        channel, StreamEvent(channel, event_type, data, id=event_id)
    )


_publisher: Any = None
_publisher_lock = threading.Lock()


def _redis_publisher():
    """A Redis client for publishing, or None without EVENTSTREAM_REDIS.

    Not django-eventstream's own client: redis-py's default retries a refused connection with
    backoff for about ten seconds, which would stall every event a task emits during an outage.
    One immediate retry still heals a pooled connection that a Redis restart broke.
    """
    global _publisher
    from django_eventstream.eventstream import redis_client

    if redis_client is None:  # django-eventstream's switch: no EVENTSTREAM_REDIS, one process
        return None
    with _publisher_lock:
        if _publisher is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            pool = redis.ConnectionPool(
                **settings.EVENTSTREAM_REDIS,
                socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
                socket_timeout=PUBLISH_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 1),
            )
            _publisher = redis.Redis(connection_pool=pool)
        return _publisher
