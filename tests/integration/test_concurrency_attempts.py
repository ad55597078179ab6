"""50 learners driving attempts at once through two web processes of the production profile: no
5xx, no lost or duplicated message, every completion the rollup of its chats' grades."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from attempts.models import Attempt, AttemptStatus, Chat, Completion, Grade, Message, Role
from glow.accounts.services import api_key_create
from glow.accounts.tests.factories import CohortFactory, DepartmentFactory, ProfileFactory
from glow.catalog.tests.factories import HomeFactory, RubricFactory, SimulationFactory
from tests.integration.conftest import START_TIMEOUT, LiveProcess, free_port

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CLIENTS = 50
HAMMERS, HAMMER_MESSAGES = 10, 5
# Clients begin another full run only while this many seconds remain since the start.
RUN_SECONDS = float(os.environ.get("GLOW_CONCURRENCY_SECONDS", "15"))
UNLIMITED = "1000000/min"


@dataclass
class Tally:
    """Every answer of every client: (op, status) counts and what the bodies said."""

    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    hammered: list = field(default_factory=list)
    latencies: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, op: str, status: int | str, detail: str = "", seconds: float = 0.0) -> None:
        with self.lock:
            self.statuses[(op, status)] += 1
            self.latencies.setdefault(op, []).append(seconds)
            if status != 200:
                self.failures.append((op, status, detail[:500]))

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status != 200)

    @property
    def server_errors(self) -> int:
        return sum(
            n
            for (_, status), n in self.statuses.items()
            if status == "transport" or (isinstance(status, int) and status >= 500)
        )


class Driver:
    """One learner's HTTP client; each call goes to the next web process in turn."""

    def __init__(self, urls: list[str], key: str, tally: Tally, offset: int) -> None:
        self.urls, self.tally, self.turn = urls, tally, offset
        # Idle connections expire before uvicorn's 5 s keep-alive closes them: reusing one the
        # server is closing ends in a connection reset that no server code caused.
        limits = httpx.Limits(keepalive_expiry=2)
        self.http = httpx.Client(headers={"X-Api-Key": key}, timeout=60, limits=limits)

    def op(self, name: str, body: dict) -> dict | None:
        url = self.urls[self.turn % len(self.urls)]
        self.turn += 1
        began = time.monotonic()
        try:
            response = self.http.post(f"{url}/api/v5/artifacts/attempt/{name}", json=body)
        except httpx.TransportError as exc:
            self.tally.record(name, "transport", repr(exc), time.monotonic() - began)
            return None
        self.tally.record(name, response.status_code, response.text, time.monotonic() - began)
        return response.json() if response.status_code == 200 else None


@dataclass
class RunLog:
    """What one client saw of one attempt, to compare with the rows afterwards."""

    attempt_id: str
    sent: dict = field(default_factory=dict)  # chat id -> the learner's texts, in order
    replies: dict = field(default_factory=dict)  # user message id -> assistant message id
    end_scores: list = field(default_factory=list)
    completion: dict | None = None


def full_run(driver: Driver, home_id: str, client: int, number: int) -> RunLog | None:
    """start, two messages, end with grade, next, two messages, end with grade, complete."""
    started = driver.op("start", {"home_id": home_id})
    if started is None:
        return None
    log = RunLog(attempt_id=started["attempt_id"])
    chat_id = started["attempt_chat_id"]
    for chat_number in (1, 2):
        if chat_number == 2:
            moved = driver.op("next", {"attempt_id": log.attempt_id})
            if moved is None:
                return log
            chat_id = moved["chat_id"]
        log.sent[chat_id] = []
        for turn in (1, 2):
            text = f"Client {client} run {number} chat {chat_number} turn {turn}: can we talk?"
            answer = driver.op(
                "message", {"attempt_id": log.attempt_id, "chat_id": chat_id, "message": text}
            )
            if answer is None:
                return log
            log.sent[chat_id].append(text)
            log.replies[answer["user_message_id"]] = answer["assistant_message_id"]
        ended = driver.op("end", {"attempt_id": log.attempt_id, "chat_id": chat_id, "grade": True})
        if ended is None:
            return log
        log.end_scores.append(ended["score"])
    log.completion = driver.op("complete", {"attempt_id": log.attempt_id})
    return log


def half_up(value: float) -> int:
    return int(value + 0.5)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def production(services_env, celery_worker_factory, tmp_path):
    """Two uvicorn web processes (started side by side) and a Celery worker on the test database,
    throttles raised so the crowd measures the code, not the limits."""
    env = {
        **services_env,
        "GLOW_THROTTLE_READ": UNLIMITED,
        "GLOW_THROTTLE_AI": UNLIMITED,
        "GLOW_THROTTLE_GENERATE": UNLIMITED,
    }
    servers, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            args = [sys.executable, "-m", "uvicorn", "glow.asgi:application"]
            args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            servers.append(LiveProcess(f"uvicorn-{port}", args, env, tmp_path))
            urls.append(f"http://127.0.0.1:{port}")
        celery_worker_factory()
        deadline = time.monotonic() + START_TIMEOUT
        while not all(answers(url) for url in urls):
            for server in servers:
                server.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"The web processes did not answer in {START_TIMEOUT} s")
            time.sleep(0.1)
        yield urls
        for server in servers:
            server.check_alive()
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def cohort_home(org_admin):
    """A cohort of CLIENTS + 1 learners assigned a home on a two-scenario simulation with a rubric;
    an API key each (the last learner's attempt is the hammered one)."""
    organization = org_admin.organization
    department = DepartmentFactory(organization=organization)
    cohort = CohortFactory(organization=organization, department=department)
    learners = ProfileFactory.create_batch(CLIENTS + 1, organization=organization, role="learner")
    cohort.members.add(*learners)
    for learner in learners:
        learner.departments.add(department)
    rubric = RubricFactory(organization=organization, department=department, groups=2)
    simulation = SimulationFactory(organization=organization, department=department, rubric=rubric)
    home = HomeFactory(
        organization=organization, department=department, simulation=simulation, cohort=cohort
    )
    keys = [api_key_create(profile=learner).plaintext for learner in learners]
    return home, keys


def test_fifty_concurrent_learners_lose_and_double_nothing(production, cohort_home):
    urls = production
    home, keys = cohort_home
    home_id = str(home.pk)
    tally = Tally()

    # The hammered attempt is started before the crowd, so its messages race only each other.
    hammer_driver = Driver(urls, keys[-1], tally, 0)
    hammer_start = hammer_driver.op("start", {"home_id": home_id})
    assert hammer_start is not None, tally.failures
    hammer_attempt, hammer_chat = hammer_start["attempt_id"], hammer_start["attempt_chat_id"]

    barrier = threading.Barrier(CLIENTS + HAMMERS)
    began = time.monotonic()

    def client(index: int) -> None:
        driver = Driver(urls, keys[index], tally, index)
        barrier.wait()
        number = 0
        while number == 0 or time.monotonic() - began < RUN_SECONDS:
            log = full_run(driver, home_id, index, number)
            if log is not None:
                with tally.lock:
                    tally.runs.append(log)
            if log is None or log.completion is None:
                return
            number += 1

    def hammer(index: int) -> None:
        driver = Driver(urls, keys[-1], tally, index)
        barrier.wait()
        for turn in range(HAMMER_MESSAGES):
            text = f"Hammer {index} message {turn}: are you still there?"
            answer = driver.op(
                "message", {"attempt_id": hammer_attempt, "chat_id": hammer_chat, "message": text}
            )
            if answer is not None:
                with tally.lock:
                    tally.hammered.append((text, answer))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    threads += [threading.Thread(target=hammer, args=(i,)) for i in range(HAMMERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 110
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - began
    assert not any(thread.is_alive() for thread in threads), "clients still running after 110 s"

    statuses = dict(sorted(tally.statuses.items(), key=str))
    print(f"\nstatus codes by op: {statuses}")
    for op, seconds in sorted(tally.latencies.items()):
        seconds.sort()
        p50, p95 = seconds[len(seconds) // 2], seconds[int(len(seconds) * 0.95)]
        print(f"{op}: n={len(seconds)} p50={p50 * 1000:.0f} ms p95={p95 * 1000:.0f} ms")
    assert tally.server_errors == 0, tally.failures[:10]
    assert tally.errors == 0, tally.failures[:10]

    # Every client completed at least one full run.
    completed = [log for log in tally.runs if log.completion is not None]
    assert len({log.attempt_id for log in completed}) == len(completed) == len(tally.runs)
    assert len(completed) >= CLIENTS

    # No lost or duplicated message: per chat, each learner text exactly once in send order, each
    # with exactly one persona reply, the one the API answered; counters match the rows.
    attempts = {
        str(a.pk): a for a in Attempt.objects.filter(pk__in=[log.attempt_id for log in completed])
    }
    chats = {str(c.pk): c for c in Chat.objects.filter(attempt_id__in=list(attempts))}
    messages: dict[str, list[Message]] = {}
    for message in Message.objects.filter(chat_id__in=list(chats)).order_by("seq"):
        messages.setdefault(str(message.chat_id), []).append(message)
    grades = Counter(
        str(chat_id)
        for chat_id in Grade.objects.filter(attempt_id__in=list(attempts)).values_list(
            "chat_id", flat=True
        )
    )
    for log in completed:
        assert set(log.sent) == {
            chat_id for chat_id, chat in chats.items() if str(chat.attempt_id) == log.attempt_id
        }
        for chat_id, sent in log.sent.items():
            rows = messages.get(chat_id, [])
            users = [m for m in rows if m.role == Role.USER]
            assistants = [m for m in rows if m.role == Role.ASSISTANT]
            assert [m.content for m in users] == sent
            assert [m.seq for m in rows] == [1, 2, 3, 4]
            assert sorted(str(m.parent_id) for m in assistants) == sorted(str(m.pk) for m in users)
            assert all(log.replies[str(m.parent_id)] == str(m.pk) for m in assistants)
            assert chats[chat_id].message_count == 4
            assert grades[chat_id] == 1, "each chat ended with grade: true is graded once"
        assert attempts[log.attempt_id].message_count == 8

    # Rollup rule (attempts.selectors.rollup_of): points and total points sum over the chats'
    # grades; the score is the grades' percents weighted by their rubric points, half up.
    completions = {
        str(c.attempt_id): c for c in Completion.objects.filter(attempt_id__in=list(attempts))
    }
    chat_grades: dict[str, list[Grade]] = {}
    for chat in Chat.objects.filter(attempt_id__in=list(attempts)).select_related("grade"):
        chat_grades.setdefault(str(chat.attempt_id), []).append(chat.grade)
    threshold = home.simulation.pass_threshold
    for log in completed:
        completion, attempt = completions[log.attempt_id], attempts[log.attempt_id]
        graded = chat_grades[log.attempt_id]
        assert all(grade is not None for grade in graded) and len(graded) == 2
        weights = [grade.total_points or 1 for grade in graded]
        expected = half_up(
            sum(grade.score * weight for grade, weight in zip(graded, weights, strict=True))
            / sum(weights)
        )
        assert completion.points == sum(grade.points for grade in graded)
        assert completion.total_points == sum(grade.total_points for grade in graded) > 0
        assert completion.graded_chat_count == 2
        assert completion.score == expected == log.completion["score"]
        assert sorted(log.end_scores) == sorted(grade.score for grade in graded)
        assert completion.passed == (expected >= threshold)
        assert attempt.status == AttemptStatus.COMPLETED and attempt.score == expected

    # The hammered chat: all HAMMERS x HAMMER_MESSAGES accepted, each exactly once, one reply each.
    sent = sorted(text for text, _ in tally.hammered)
    assert len(sent) == HAMMERS * HAMMER_MESSAGES
    rows = list(Message.objects.filter(chat_id=hammer_chat).order_by("seq"))
    users = [m for m in rows if m.role == Role.USER]
    assistants = [m for m in rows if m.role == Role.ASSISTANT]
    assert sorted(m.content for m in users) == sent
    assert [m.seq for m in rows] == list(range(1, 2 * len(sent) + 1))
    replies = Counter(str(m.parent_id) for m in assistants)
    assert set(replies) == {str(m.pk) for m in users} and set(replies.values()) == {1}
    answered = {
        answer["user_message_id"]: answer["assistant_message_id"] for _, answer in tally.hammered
    }
    assert answered == {str(m.parent_id): str(m.pk) for m in assistants}
    chat = Chat.objects.get(pk=hammer_chat)
    assert chat.message_count == len(rows) == Attempt.objects.get(pk=hammer_attempt).message_count

    # Retried ops stay idempotent under a race: the hammered chat ends (graded once) and
    # completes from HAMMERS threads at once, all answering the one grade and one completion.
    answers_of: dict[str, list] = {"end": [], "complete": []}

    def finish(index: int, op: str, body: dict) -> None:
        answer = Driver(urls, keys[-1], tally, index).op(op, body)
        with tally.lock:
            answers_of[op].append(answer)

    for op, body in (
        ("end", {"attempt_id": hammer_attempt, "chat_id": hammer_chat, "grade": True}),
        ("complete", {"attempt_id": hammer_attempt}),
    ):
        racers = [threading.Thread(target=finish, args=(i, op, body)) for i in range(HAMMERS)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
    assert tally.errors == 0, tally.failures[:10]
    grade = Grade.objects.get(chat_id=hammer_chat)
    completion = Completion.objects.get(attempt_id=hammer_attempt)
    assert {answer["grade_id"] for answer in answers_of["end"]} == {str(grade.pk)}
    assert {answer["completion_id"] for answer in answers_of["complete"]} == {str(completion.pk)}
    assert completion.graded_chat_count == 1 and completion.points == grade.points
    assert completion.score == grade.score

    print(
        f"concurrency: {CLIENTS} clients + {HAMMERS} hammer threads, {len(completed)} attempts "
        f"completed, {tally.requests} requests, {tally.errors} errors, "
        f"{tally.server_errors} 5xx, {len(sent)} messages on one chat, {elapsed:.1f} s of traffic"
    )
