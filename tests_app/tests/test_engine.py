"""The engine: cells in flight together write what cells run one by one write, whatever the provider."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from glow.ai import ProviderError
from glow.ai.local.provider import LocalProvider
from system.models import Event, Group, Run, Session
from tests_app.engine import claims, slots, workers
from tests_app.models import Invocation, InvocationStatus, TestGrade, ToolCall

pytestmark = pytest.mark.django_db

SEQUENTIAL, BATCHED = 1, 16  # concurrency: one cell at a time, and all four cells in flight


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
                    if event.event_type != slots.TEST_PROGRESS_EVENT
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


def test_a_failed_call_fails_its_cell_and_the_others_go_on(staff, catalog, monkeypatch):
    test = catalog.start_queued(staff, concurrency=BATCHED)
    real = LocalProvider._complete

    def flaky(self, request):
        if request.model == "echo" and request.task == "agent_turn":
            raise ProviderError("The echo model is down.")
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", flaky)
    workers.worker_run(test_id=test.pk, worker_token="w")
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
        (3, slots.TEST_PROGRESS_EVENT),
    ]
    assert_books_balance(test)


def test_a_failed_grade_keeps_the_cells_conversation(staff, catalog, monkeypatch):
    test = catalog.start_queued(staff, concurrency=BATCHED)
    real = LocalProvider._complete

    def grader_down(self, request):
        if request.task == "grade":
            raise ProviderError("The grader is down.")
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", grader_down)
    workers.worker_run(test_id=test.pk, worker_token="w")
    for invocation in test.invocations.all():
        assert (invocation.status, invocation.error) == ("failed", "The grader is down.")
        assert [line["role"] for line in invocation.transcript] == ["agent", "persona"]
        assert invocation.total_tokens > 0
        assert Run.objects.get(pk=invocation.run_id).status == "failed"
    assert not TestGrade.objects.filter(invocation__test=test).exists()
    assert_books_balance(test)


@pytest.fixture
def meanwhile(monkeypatch):
    """`meanwhile(action)` from inside a model call: the engine's thread runs the database
    `action` after its next write while the call waits, as another process acts while a model
    answers (the loop thread never touches the database)."""
    pending: list = []
    real = workers.Engine.flush

    def flush(self):
        written = real(self)
        while pending:
            action, done = pending.pop(0)
            action()
            done.set()
        return written

    monkeypatch.setattr(workers.Engine, "flush", flush)

    def request(action) -> None:
        done = threading.Event()
        pending.append((action, done))
        assert done.wait(10)

    return request


def test_a_cell_halted_mid_run_is_left_alone(staff, catalog, monkeypatch, meanwhile):
    test = catalog.start_queued(staff, concurrency=BATCHED)
    halted = test.invocations.order_by("position").first()
    real = LocalProvider._complete
    halts: list = []

    def halt_during_persona_reply(self, request):
        # As test/stop does while the worker waits on the model. The loop starts the cells in
        # position order, and a local call does not yield: the first persona call is the first
        # cell's.
        if request.task == "persona_reply" and not halts:
            halts.append(halted.pk)
            meanwhile(
                lambda: Invocation.objects.filter(pk=halted.pk).update(
                    status=InvocationStatus.TERMINATED
                )
            )
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", halt_during_persona_reply)
    workers.worker_run(test_id=test.pk, worker_token="w")
    halted.refresh_from_db()
    assert halted.status == "terminated"
    assert [line["role"] for line in halted.transcript] == ["agent"]  # saved before the halt
    assert not TestGrade.objects.filter(invocation=halted).exists()
    others = test.invocations.exclude(pk=halted.pk)
    assert set(others.values_list("status", flat=True)) == {"succeeded"}
    assert TestGrade.objects.filter(invocation__in=others).count() == 3


def test_the_envelope_costs_are_the_agents_own(staff, catalog):
    test = catalog.start_queued(staff, concurrency=BATCHED, model_ids=[catalog.models[0].pk])
    workers.worker_run(test_id=test.pk, worker_token="w")
    for invocation in test.invocations.all():
        agent_runs = Run.objects.filter(artifact_id=invocation.pk, kind="agent_turn")
        assert invocation.total_tokens == sum(run.total_tokens for run in agent_runs) > 0
        assert invocation.cost == sum((run.cost for run in agent_runs), Decimal("0"))


def run_all(test, token: str = "w") -> int:
    return workers.worker_run(test_id=test.pk, worker_token=token)


def test_cells_in_flight_together_write_what_cells_one_at_a_time_write(staff, catalog):
    one_by_one = catalog.start_queued(staff, concurrency=SEQUENTIAL)
    together = catalog.start_queued(staff, concurrency=BATCHED)
    assert run_all(one_by_one, "a") == 4
    assert run_all(together, "b") == 4

    expected = outcome(one_by_one)
    assert [cell["status"] for cell in expected] == ["succeeded"] * 4
    assert any(cell["tools"] for cell in expected)  # the simulator's agent calls its tool
    assert outcome(together) == expected
    assert_books_balance(together)
    progress = Event.objects.filter(
        group_id=together.group_id, event_type=slots.TEST_PROGRESS_EVENT
    ).order_by("id")
    assert progress.count() == 4
    assert progress.last().payload["finished"] is True
    assert progress.last().payload["counts"] == {"succeeded": 4}
    # A group watcher stops at the first tally that says finished: every cell's completion
    # comes before it.
    stream = list(
        Event.objects.filter(group_id=together.group_id)
        .order_by("id")
        .values_list("event_type", "payload")
    )
    finished_at = next(
        index
        for index, (kind, payload) in enumerate(stream)
        if kind == slots.TEST_PROGRESS_EVENT and payload["finished"]
    )
    completes = [kind for kind, _ in stream[:finished_at] if kind == "GenerationCompleteEvent"]
    assert len(completes) == 4


def test_a_test_whose_cells_all_ended_is_finished_and_a_rerun_reopens_it(staff, catalog):
    from tests_app import invocations

    test = catalog.start_queued(staff, concurrency=BATCHED)
    run_all(test)
    test.refresh_from_db()
    assert test.status == "finished"
    first = test.invocations.order_by("position").first()
    invocations.invocation_run(actor=staff, invocation_id=first.pk)  # inline tasks: runs it again
    test.refresh_from_db()
    assert test.status == "finished"
    assert TestGrade.objects.filter(invocation__test=test).count() == 4


def test_claims_stay_within_the_concurrency_and_lapsed_leases_free_their_slots(staff, catalog):
    from datetime import timedelta

    from django.utils import timezone

    test = catalog.start_queued(staff, concurrency=2)
    first, left = claims.invocations_claim(test_id=test.pk, worker_token="a")
    assert len(first) == 1 and left  # a share of 2 over four workers is one cell
    assert len(claims.invocations_claim(test_id=test.pk, worker_token="b", limit=10)[0]) == 1
    assert claims.invocations_claim(test_id=test.pk, worker_token="c") == ([], True)
    # Worker "a" died: once its lease has run out its cell is claimable, and counts as no slot.
    Invocation.objects.filter(pk=first[0].pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    taken, _ = claims.invocations_claim(test_id=test.pk, worker_token="c", limit=10)
    assert [row.pk for row in taken] == [first[0].pk]
    assert test.invocations.filter(status="running").count() == 2


def test_a_cell_taken_over_after_its_lease_ran_out_is_graded_once(staff, catalog, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    test = catalog.start_queued(staff, concurrency=BATCHED, model_ids=[catalog.models[0].pk])
    lost, _ = claims.invocations_claim(test_id=test.pk, worker_token="dead", limit=1)
    Invocation.objects.filter(pk=lost[0].pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert run_all(test, "alive") == 2
    assert set(test.invocations.values_list("status", flat=True)) == {"succeeded"}
    # The dead worker's task redelivered later finds nothing of its own.
    assert run_all(test, "dead") == 0
    assert TestGrade.objects.filter(invocation__test=test).count() == 2
    assert Run.objects.filter(artifact_id=lost[0].pk, kind="grade").count() == 1


def test_a_worker_whose_cell_was_taken_over_writes_nothing_more_for_it(
    staff, catalog, monkeypatch, meanwhile
):
    test = catalog.start_queued(
        staff,
        concurrency=BATCHED,
        model_ids=[catalog.models[0].pk],
        scenario_ids=[catalog.scenarios[0].pk],
    )
    cell = test.invocations.get()
    real = LocalProvider._complete

    def taken_over_during_persona_reply(self, request):
        if request.task == "persona_reply":  # another worker took the cell over meanwhile
            meanwhile(lambda: Invocation.objects.filter(pk=cell.pk).update(worker_token="other"))
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", taken_over_during_persona_reply)
    run_all(test, "slow")
    cell.refresh_from_db()
    assert (cell.status, cell.worker_token) == ("running", "other")
    assert not TestGrade.objects.filter(invocation=cell).exists()


def test_recover_requeues_lapsed_cells_and_starts_workers(staff, catalog, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from tests_app import lifecycle

    started = []
    monkeypatch.setattr(
        lifecycle, "workers_dispatch", lambda *, test, queued: started.append(queued) or 1
    )
    test = catalog.start_queued(staff, concurrency=BATCHED)
    claimed, _ = claims.invocations_claim(test_id=test.pk, worker_token="dead")
    assert lifecycle.test_recover(test_id=test.pk) == {"requeued": 0, "dispatched": 0}
    Invocation.objects.filter(pk__in=[row.pk for row in claimed]).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert lifecycle.test_recover(test_id=test.pk) == {"requeued": 4, "dispatched": 1}
    assert started == [4]
    assert set(test.invocations.values_list("status", "worker_token")) == {("queued", "")}


def test_writes_are_per_set_not_per_cell(staff, catalog, monkeypatch):
    """The same statements for 2 and for 4 cells when each write takes every ended cell."""
    monkeypatch.setattr(workers, "END_FLUSH_SECONDS", 30.0)
    monkeypatch.setattr(workers, "FLUSH_SECONDS", 30.0)
    counts = []
    for scenarios in (catalog.scenarios[:1], catalog.scenarios):
        test = catalog.start_queued(
            staff, concurrency=BATCHED, scenario_ids=[row.pk for row in scenarios]
        )
        with CaptureQueriesContext(connection) as captured:
            assert run_all(test) == 2 * len(scenarios)
        counts.append(len(captured))
        assert set(test.invocations.values_list("status", flat=True)) == {"succeeded"}
    # SQLite has no SKIP LOCKED: there alone a claim is an UPDATE per cell.
    assert counts[1] - counts[0] == (0 if connection.vendor == "postgresql" else 2)


def test_dispatch_starts_enough_tasks_for_the_concurrency(staff, catalog, monkeypatch):
    from tests_app import lifecycle

    enqueued = []
    monkeypatch.setattr("glow.core.tasks.enqueue", lambda task, *args: enqueued.append(args))
    for concurrency, tasks in ((1, 1), (2, 2), (4, 4), (16, 1), (64, 1)):
        enqueued.clear()
        test = catalog.start_queued(staff, concurrency=concurrency)
        assert lifecycle.workers_dispatch(test=test, queued=4) == tasks
        assert len(enqueued) == tasks
    test = catalog.start_queued(staff, concurrency=64)
    assert lifecycle.workers_dispatch(test=test, queued=1000) == 4  # four shares of 16


def test_workers_share_the_concurrency_evenly(staff, catalog):
    from glow.catalog.tests.factories import ScenarioFactory

    extra = [
        ScenarioFactory(organization=catalog.organization, department=catalog.department).pk
        for _ in range(2)
    ]
    test = catalog.start_queued(
        staff, concurrency=4, scenario_ids=[row.pk for row in catalog.scenarios] + extra
    )
    alone, _ = claims.invocations_claim(test_id=test.pk, worker_token="a", limit=4)
    assert len(alone) == 4  # a worker alone may take the whole concurrency
    assert claims.invocations_claim(test_id=test.pk, worker_token="b", limit=4) == ([], True)
    # Two of a's cells end; "b" asked in vain a moment ago, so a refills no further than half.
    Invocation.objects.filter(pk__in=[row.pk for row in alone[:2]]).update(status="succeeded")
    assert claims.invocations_claim(test_id=test.pk, worker_token="a", limit=4)[0] == []
    taken, _ = claims.invocations_claim(test_id=test.pk, worker_token="b", limit=4)
    assert len(taken) == 2
    assert test.invocations.filter(status="running").count() == 4
