"""A batch of events goes to Redis as one message, and each web process's listener unpacks it."""

from __future__ import annotations

import asyncio
import json

from django_eventstream.views import Listener, get_listener_manager

from system import events, watch


class RecordingRedis:
    """A Redis client whose pipeline keeps what was published."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def pipeline(self, transaction: bool = False):
        return self

    def publish(self, channel: str, message: str) -> None:
        self.published.append((channel, message))

    def execute(self) -> None:
        pass


def listening(*channels: str) -> Listener:
    listener = Listener()
    listener.channels = set(channels)
    listener.assign_loop()
    get_listener_manager().add_listener(listener)
    return listener


async def test_a_batch_is_one_message_that_reaches_both_channels_in_order(monkeypatch):
    redis = RecordingRedis()
    monkeypatch.setattr(events, "_redis_publisher", lambda: redis)
    messages = [
        (events.PROGRESS, json.dumps({"seq": seq}), 100 + seq, ("run-r1", "group-g1"))
        for seq in (1, 2, 3)
    ]
    events._publish_many(messages)
    assert [channel for channel, _ in redis.published] == ["events_channel"]

    run, group = listening("run-r1"), listening("group-g1")
    try:
        watch.ResilientRedisListener.dispatch(redis.published[0][1])
        await asyncio.wait_for(group.aevent.wait(), 1)
        for listener, channel in ((run, "run-r1"), (group, "group-g1")):
            items = listener.channel_items[channel]
            assert [(item.type, item.id) for item in items] == [
                (events.PROGRESS, 101),
                (events.PROGRESS, 102),
                (events.PROGRESS, 103),
            ]
            assert [json.loads(item.data)["seq"] for item in items] == [1, 2, 3]
    finally:
        get_listener_manager().remove_listener(run)
        get_listener_manager().remove_listener(group)


async def test_a_single_event_message_and_a_malformed_one(caplog):
    run = listening("run-r2")
    try:
        watch.ResilientRedisListener.dispatch(
            json.dumps(
                {"channel": "run-r2", "event_type": events.COMPLETE, "data": "{}", "pub_id": 9}
            )
        )
        watch.ResilientRedisListener.dispatch(json.dumps({"batch": [["only two", "fields"]]}))
        await asyncio.wait_for(run.aevent.wait(), 1)
        assert [(item.type, item.id) for item in run.channel_items["run-r2"]] == [
            (events.COMPLETE, 9)
        ]
        assert "Ignored a malformed message" in caplog.text
    finally:
        get_listener_manager().remove_listener(run)
