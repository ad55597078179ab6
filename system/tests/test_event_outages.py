"""Events with Redis unreachable: this process's watchers still hear them, the caller is told."""

from __future__ import annotations

import asyncio

import pytest
from django_eventstream.views import Listener, get_listener_manager
from redis.exceptions import ConnectionError as RedisConnectionError

from system import events, watch


class RefusingRedis:
    def publish(self, channel, message):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


async def test_a_failed_redis_publish_still_reaches_this_process_s_watchers(monkeypatch):
    monkeypatch.setattr(events, "_redis_publisher", lambda: RefusingRedis())
    manager = get_listener_manager()
    listener = Listener()
    listener.channels = {"run-r1"}
    listener.assign_loop()
    manager.add_listener(listener)
    try:
        with pytest.raises(RedisConnectionError):
            events.publish(channel="run-r1", event_type=events.COMPLETE, data="{}", event_id=7)
        await asyncio.wait_for(listener.aevent.wait(), 1)
        (item,) = listener.channel_items["run-r1"]
        assert (item.type, item.data, item.id) == (events.COMPLETE, "{}", 7)
    finally:
        manager.remove_listener(listener)


async def test_a_redis_reconnect_makes_every_stream_re_read_the_database():
    manager = get_listener_manager()
    listener = Listener()
    listener.channels = {"group-g1"}
    listener.assign_loop()
    manager.add_listener(listener)
    try:
        watch.resync_streams(manager)
        await asyncio.wait_for(listener.aevent.wait(), 1)
        assert listener.overflow  # the stream treats it as a missed event: it reads the rows
    finally:
        manager.remove_listener(listener)
