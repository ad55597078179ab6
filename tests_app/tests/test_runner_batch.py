"""The runner's batches: cells advanced together write what cells run one by one write."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from glow.ai import ProviderError
from glow.ai.local.provider import LocalProvider
from system.models import Event, Group, Run, Session
from tests_app import runner
from tests_app.models import Invocation, InvocationStatus, TestGrade, ToolCall

pytestmark = pytest.mark.django_db

SEQUENTIAL, BATCHED = 4, 16  # concurrency: batches of 1 and of 4 (the catalog's four cells)


@pytest.fixture(params=["at_once", "step_by_step"])
def batching(request, monkeypatch):
    """Both ways a batch is written: at once (every call the local simulator's) and step by step
    (as when a remote model is called: here the batch is told so, and the simulator answers)."""
    if request.param == "step_by_step":
        monkeypatch.setattr(runner, "provider_of", lambda model: ("openai", "remote"))
    return request.param


def outcome(test) -> list[dict]:
    """Everything a cell leaves behind, without the ids and clocks that differ between runs."""
    cells = []
    for invocation in test.invocations.order_by("position"):
        runs = Run.objects.filter(artifact_id=invocation.pk).order_by("kind")
        grade = TestGrade.objects.filter(invocation=invocation).first()
        cells.append(
            {
                "status": invocation.status,
                "error": invocation.error,
                "transcript": [
                    (line["role"], line["content"], line["turn"], len(line["tool_call_ids"]))
                    for line in invocation.transcript
                ],
                "usage": (invocation.input_tokens, invocation.output_tokens, invocation.cost),
                "runs": [
                    (
                        run.kind,
                        run.status,
                        run.provider_model,
                        run.total_tokens,
                        run.cost,
                        run.error,
                    )
                    for run in runs
                ],
                "tools": list(
                    ToolCall.objects.filter(invocation=invocation)
                    .order_by("position")
                    .values_list("turn", "name", "arguments", "result")
                ),
                "grade": grade and (grade.score, grade.total_points, grade.full, grade.feedback),
                "events": [
                    (event.seq, event.event_type, sorted(event.payload))
                    for event in Event.objects.filter(run_id=invocation.run_id).order_by("seq")
                    if event.event_type != runner.TEST_PROGRESS_EVENT
                ],
            }
        )
    return cells


def assert_books_balance(test) -> None:
    """The group's and session's counters are the sums of their runs, as model_call keeps them."""
    group = Group.objects.get(pk=test.group_id)
    runs = Run.objects.filter(group=group)
    totals = runs.aggregate(tokens=Sum("total_tokens"), cost=Sum("cost"))
    assert (group.run_count, group.total_tokens, group.total_cost) == (
        runs.count(),
        totals["tokens"],
        totals["cost"],
    )
    session = Session.objects.get(pk=group.session_id)
    assert session.run_count == Run.objects.filter(session=session).count()


def test_a_batch_writes_what_one_by_one_writes(staff, catalog, batching):
    one_by_one = catalog.start_queued(staff, concurrency=SEQUENTIAL)
    batched = catalog.start_queued(staff, concurrency=BATCHED)
    assert runner.batch_size(SEQUENTIAL) == 1 and runner.batch_size(BATCHED) == 4
    assert runner.worker_run(test_id=one_by_one.pk, worker_token="a") == 4
    assert runner.worker_run(test_id=batched.pk, worker_token="b") == 4

    expected = outcome(one_by_one)
    assert [cell["status"] for cell in expected] == ["succeeded"] * 4
    assert any(cell["tools"] for cell in expected)  # the simulator's agent calls its tool
    assert outcome(batched) == expected
    assert_books_balance(batched)
    progress = Event.objects.filter(
        group_id=batched.group_id, event_type=runner.TEST_PROGRESS_EVENT
    ).order_by("id")
    assert progress.count() == 4
    assert progress.last().payload["finished"] is True
    assert progress.last().payload["counts"] == {"succeeded": 4}
    # A group watcher stops at the first tally that says finished: every cell's completion
    # comes before it.
    stream = list(
        Event.objects.filter(group_id=batched.group_id)
        .order_by("id")
        .values_list("event_type", "payload")
    )
    finished_at = next(
        index
        for index, (kind, payload) in enumerate(stream)
        if kind == runner.TEST_PROGRESS_EVENT and payload["finished"]
    )
    completes = [kind for kind, _ in stream[:finished_at] if kind == "GenerationCompleteEvent"]
    assert len(completes) == 4


def test_claims_of_a_batch_stay_within_the_concurrency(staff, catalog):
    test = catalog.start_queued(staff, concurrency=8)  # batches of 2
    first = runner.invocations_claim(test_id=test.pk, worker_token="a")
    assert len(first) == 2
    assert runner.invocations_claim(test_id=test.pk, worker_token="b", limit=10) != []
    assert runner.invocations_claim(test_id=test.pk, worker_token="c") == []
    assert test.invocations.filter(status="running").count() == 4
    Invocation.objects.filter(pk__in=[row.pk for row in first]).update(
        status=InvocationStatus.SUCCEEDED
    )
    assert len(runner.invocations_claim(test_id=test.pk, worker_token="c")) == 0  # none queued


def test_a_failed_call_fails_its_cell_and_the_batch_goes_on(staff, catalog, monkeypatch, batching):
    test = catalog.start_queued(staff, concurrency=BATCHED)
    real = LocalProvider._complete

    def flaky(self, request):
        if request.model == "echo" and request.task == "agent_turn":
            raise ProviderError("The echo model is down.")
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", flaky)
    runner.worker_run(test_id=test.pk, worker_token="w")
    by_model = {
        invocation.model_id: invocation for invocation in test.invocations.order_by("position")
    }
    echo = by_model[catalog.models[1].pk]
    assert by_model[catalog.models[0].pk].status == "succeeded"
    assert (echo.status, echo.error) == ("failed", "The echo model is down.")
    assert not TestGrade.objects.filter(invocation=echo).exists()
    assert Run.objects.get(pk=echo.run_id).status == "failed"
    failed_call = Run.objects.get(artifact_id=echo.pk, kind="agent_turn")
    assert (failed_call.status, failed_call.error) == ("failed", "The echo model is down.")
    error = Event.objects.get(run_id=echo.run_id, event_type="GenerationErrorEvent")
    assert error.payload["message"] == "The echo model is down."
    # Its events are those of a cell that failed alone: begun, then the error, then the tally.
    assert list(
        Event.objects.filter(run_id=echo.run_id).order_by("seq").values_list("seq", "event_type")
    ) == [
        (1, "GenerationProgressEvent"),
        (2, "GenerationErrorEvent"),
        (3, runner.TEST_PROGRESS_EVENT),
    ]
    assert_books_balance(test)


def test_a_failed_grade_keeps_the_cells_conversation(staff, catalog, monkeypatch, batching):
    test = catalog.start_queued(staff, concurrency=BATCHED)
    real = LocalProvider._complete

    def grader_down(self, request):
        if request.task == "grade":
            raise ProviderError("The grader is down.")
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", grader_down)
    runner.worker_run(test_id=test.pk, worker_token="w")
    for invocation in test.invocations.all():
        assert (invocation.status, invocation.error) == ("failed", "The grader is down.")
        assert [line["role"] for line in invocation.transcript] == ["agent", "persona"]
        assert invocation.total_tokens > 0
        assert Run.objects.get(pk=invocation.run_id).status == "failed"
    assert not TestGrade.objects.filter(invocation__test=test).exists()
    assert_books_balance(test)


def test_a_cell_halted_mid_batch_is_left_alone(staff, catalog, monkeypatch):
    # A batch written step by step: one written at once holds its rows (the test below).
    monkeypatch.setattr(runner, "provider_of", lambda model: ("openai", "remote"))
    test = catalog.start_queued(staff, concurrency=BATCHED)
    halted = test.invocations.order_by("position").first()
    real = LocalProvider._complete

    def halt_during_persona_reply(self, request):
        # As test/stop does while the worker waits on the model.
        if request.task == "persona_reply":
            Invocation.objects.filter(pk=halted.pk).update(status=InvocationStatus.TERMINATED)
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", halt_during_persona_reply)
    runner.worker_run(test_id=test.pk, worker_token="w")
    halted.refresh_from_db()
    assert halted.status == "terminated"
    assert [line["role"] for line in halted.transcript] == ["agent"]  # saved before the halt
    assert not TestGrade.objects.filter(invocation=halted).exists()
    assert not Run.objects.filter(artifact_id=halted.pk, kind="grade").exists()
    others = test.invocations.exclude(pk=halted.pk)
    assert set(others.values_list("status", flat=True)) == {"succeeded"}
    assert TestGrade.objects.filter(invocation__in=others).count() == 3


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_stop_during_a_batch_written_at_once_waits_for_it(staff, catalog, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only")
    from tests_app import services

    test = catalog.start_queued(staff, concurrency=BATCHED)
    real = LocalProvider._complete
    stopped: list = []

    def stop():
        try:
            stopped.append(services.test_stop(actor=staff, test_id=test.pk))
        finally:
            connection.close()

    stopper = threading.Thread(target=stop)

    def stop_during_persona_reply(self, request):
        if request.task == "persona_reply" and not stopper.is_alive() and not stopped:
            stopper.start()
            time.sleep(0.5)  # test/stop is now waiting on the batch's row locks
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", stop_during_persona_reply)
    runner.worker_run(test_id=test.pk, worker_token="w")
    stopper.join(10)
    assert set(test.invocations.values_list("status", flat=True)) == {"succeeded"}
    assert stopped[0]["stopped_count"] == 0  # it found the batch finished, not running
    assert stopped[0]["kept_count"] == 4
    assert TestGrade.objects.filter(invocation__test=test).count() == 4
    assert_books_balance(test)


def test_a_batch_makes_the_same_queries_for_2_and_4_cells(staff, catalog, batching):
    counts = []
    for concurrency, scenarios in ((8, catalog.scenarios[:1]), (16, catalog.scenarios)):
        test = catalog.start_queued(
            staff, concurrency=concurrency, scenario_ids=[row.pk for row in scenarios]
        )
        claimed = runner.invocations_claim(test_id=test.pk, worker_token="w")
        assert len(claimed) == 2 * len(scenarios)
        with CaptureQueriesContext(connection) as captured:
            runner.invocations_execute(invocations=claimed)
        counts.append(len(captured))
        assert set(test.invocations.values_list("status", flat=True)) == {"succeeded"}
    assert counts[0] == counts[1]


def test_dispatch_starts_one_task_per_batch(staff, catalog, monkeypatch):
    from tests_app import services

    enqueued = []
    monkeypatch.setattr("glow.core.tasks.enqueue", lambda task, *args: enqueued.append(args))
    for concurrency, tasks in ((2, 2), (4, 4), (16, 1), (64, 1)):
        enqueued.clear()
        test = catalog.start_queued(staff, concurrency=concurrency)
        assert services.workers_dispatch(test=test, queued=4) == tasks
        assert len(enqueued) == tasks
    test = catalog.start_queued(staff, concurrency=64)
    assert services.workers_dispatch(test=test, queued=1000) == 4  # four batches of 16


def test_the_envelope_costs_are_the_agents_own(staff, catalog):
    test = catalog.start_queued(staff, concurrency=BATCHED, model_ids=[catalog.models[0].pk])
    runner.worker_run(test_id=test.pk, worker_token="w")
    for invocation in test.invocations.all():
        agent_runs = Run.objects.filter(artifact_id=invocation.pk, kind="agent_turn")
        assert invocation.total_tokens == sum(run.total_tokens for run in agent_runs) > 0
        assert invocation.cost == sum((run.cost for run in agent_runs), Decimal("0"))
