"""20 parallel message/end calls on one attempt (real PostgreSQL row locks) leave it consistent."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from attempts import lifecycle, messaging
from attempts.models import Attempt, AttemptCount, Grade, Message
from glow.core.errors import ApplicationError
from system.models import Run, RunStatus

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="needs PostgreSQL (DATABASE_URL): row locks are what is tested",
    ),
]

MESSAGES, ENDS = 15, 5


def run_in_parallel(calls) -> list:
    """Start every call at once on its own thread (own connection); answer results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except ApplicationError as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_parallel_messages_and_ends_leave_the_attempt_consistent(transactional_db, world, start):
    attempt = start(world.learner, world.home)
    chat = attempt.chats.get(position=0)

    def message(index):
        return lambda: messaging.attempt_message(
            actor=world.learner,
            attempt_id=attempt.pk,
            chat_id=chat.pk,
            message=f"Message {index}: what worries you most about the deadline?",
        )

    def end(delay):
        def call():
            # Ends land while messages are being accepted and replied to, not all before them.
            time.sleep(delay)
            return lifecycle.attempt_end(
                actor=world.learner, attempt_id=attempt.pk, chat_id=chat.pk, grade=True
            )

        return call

    calls = [message(index) for index in range(MESSAGES)]
    calls += [end(0.15 + 0.05 * index) for index in range(ENDS)]
    results = run_in_parallel(calls)

    unexpected = [r for r in results if isinstance(r, Exception) and r.code != "chat_not_active"]
    assert not unexpected, unexpected
    accepted = [r for r in results[:MESSAGES] if not isinstance(r, Exception)]
    ends = results[MESSAGES:]
    assert all(not isinstance(r, Exception) for r in ends)
    assert len({r.grade.pk for r in ends}) == 1, "every end answers the one grade"

    chat.refresh_from_db()
    attempt.refresh_from_db()
    assert chat.status == "ended" and attempt.ended_chat_count == 1
    assert Grade.objects.filter(chat=chat).count() == 1 == chat.grades.count()
    assert Run.objects.filter(kind="grade").count() == 1

    messages = list(Message.objects.filter(chat=chat).order_by("seq"))
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    users = [m for m in messages if m.role == "user"]
    replies = Counter(m.parent_id for m in messages if m.role == "assistant")
    assert len(users) == len(accepted)
    assert all(replies[user.pk] == 1 for user in users), "one reply per accepted message"
    assert chat.message_count == len(messages) == Attempt.objects.get(pk=attempt.pk).message_count
    runs = Run.objects.filter(kind="persona_reply")
    assert runs.count() == len(accepted)
    assert set(runs.values_list("status", flat=True)) <= {RunStatus.SUCCEEDED}
    if messages:
        # The branch tip is a stored message nothing follows (concurrent sends may branch).
        assert chat.last_message_id in {m.pk for m in messages}
        assert not Message.objects.filter(parent_id=chat.last_message_id).exists()


def test_parallel_starts_keep_the_materialised_counts_exact(transactional_db, world, start):
    calls = [lambda: start(world.learner, world.home)] * 8
    calls += [lambda: start(world.learner2, world.home)] * 4
    results = run_in_parallel(calls)
    assert not [r for r in results if isinstance(r, Exception)]
    counted = {
        (row.profile_id, row.archived): row.count
        for row in AttemptCount.objects.filter(organization=world.organization)
    }
    assert counted == {(world.learner.pk, False): 8, (world.learner2.pk, False): 4}
