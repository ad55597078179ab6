"""The runner: concurrency limit, resuming a redelivered worker, re-runs, failures."""

from __future__ import annotations

import pytest

from glow.ai import ProviderError
from glow.ai.local.provider import LocalProvider
from system.models import Event, Run
from tests_app.engine import conversation, workers
from tests_app.models import Invocation, InvocationStatus, TestGrade, ToolCall

pytestmark = pytest.mark.django_db


def statuses(test) -> list[str]:
    return list(test.invocations.order_by("position").values_list("status", flat=True))


def test_claims_never_exceed_the_tests_concurrency(staff, catalog):
    test = catalog.start_queued(staff, concurrency=2)
    first = workers.invocation_claim(test_id=test.pk, worker_token="a")
    second = workers.invocation_claim(test_id=test.pk, worker_token="b")
    assert workers.invocation_claim(test_id=test.pk, worker_token="c") is None
    assert statuses(test) == ["running", "running", "queued", "queued"]
    workers.invocation_execute(invocation_id=first)
    third = workers.invocation_claim(test_id=test.pk, worker_token="c")
    assert third not in (None, first, second)
    assert Invocation.objects.get(pk=third).worker_token == "c"


def test_a_redelivered_worker_resumes_its_claim_then_drains_the_queue(staff, catalog):
    test = catalog.start_queued(staff, concurrency=1)
    claimed = workers.invocation_claim(test_id=test.pk, worker_token="lost")
    # The worker died before running it: with acks_late the same task (same token) runs again.
    assert workers.worker_run(test_id=test.pk, worker_token="lost") == 4
    assert statuses(test) == ["succeeded"] * 4
    assert Invocation.objects.get(pk=claimed).transcript
    # A second delivery finds nothing left to do.
    assert workers.worker_run(test_id=test.pk, worker_token="lost") == 0


def test_running_an_invocation_twice_leaves_one_grade_and_one_set_of_tool_calls(staff, catalog):
    test = catalog.start_queued(staff, model_ids=[catalog.models[0].pk])
    workers.worker_run(test_id=test.pk, worker_token="w")
    invocation = test.invocations.order_by("position").first()
    calls = ToolCall.objects.filter(invocation=invocation).count()
    first_run = invocation.run_id
    assert workers.invocation_execute(invocation_id=invocation.pk) == InvocationStatus.SUCCEEDED
    Invocation.objects.filter(pk=invocation.pk).update(status=InvocationStatus.RUNNING)
    workers.invocation_execute(invocation_id=invocation.pk)
    invocation.refresh_from_db()
    assert invocation.status == InvocationStatus.SUCCEEDED and invocation.run_id != first_run
    assert ToolCall.objects.filter(invocation=invocation).count() == calls
    assert TestGrade.objects.filter(invocation=invocation).count() == 1
    assert len(invocation.transcript) == 2 * catalog.eval.turns
    # The superseded envelope was closed rather than left running.
    assert Run.objects.get(pk=first_run).finished


def test_a_provider_error_fails_the_cell_and_the_worker_goes_on(staff, catalog, monkeypatch):
    test = catalog.start_queued(staff, scenario_ids=[catalog.scenarios[0].pk])
    real = LocalProvider._complete

    def flaky(self, request):
        if request.model == "echo" and request.task == "agent_turn":
            raise ProviderError("The echo model is down.")
        return real(self, request)

    monkeypatch.setattr(LocalProvider, "_complete", flaky)
    assert workers.worker_run(test_id=test.pk, worker_token="w") == 2
    simulator, echo = test.invocations.order_by("position")
    assert (simulator.status, echo.status) == ("succeeded", "failed")
    assert echo.error == "The echo model is down."
    envelope = Run.objects.get(pk=echo.run_id)
    assert envelope.status == "failed"
    error = Event.objects.get(run=envelope, event_type="GenerationErrorEvent")
    assert error.payload["message"] == "The echo model is down."
    progress = Event.objects.filter(event_type="TestProgressEvent").order_by("id").last()
    assert progress.payload["finished"] is True and progress.payload["counts"]["failed"] == 1


def test_an_unexpected_error_is_recorded_on_the_cell(staff, catalog, monkeypatch):
    test = catalog.start_queued(
        staff, model_ids=[catalog.models[0].pk], scenario_ids=[catalog.scenarios[0].pk]
    )

    def broken(self, result, structure):
        raise RuntimeError("grader exploded")

    monkeypatch.setattr(conversation.Conversation, "graded", broken)
    workers.worker_run(test_id=test.pk, worker_token="w")
    invocation = test.invocations.get()
    assert invocation.status == "failed" and invocation.error == "RuntimeError: grader exploded"
    assert not TestGrade.objects.filter(invocation=invocation).exists()
