"""The engine against OpenAI-compatible servers: the same rows as the local simulator, a real cap
on calls in flight, each run's own latency, and 429 Retry-After and 500s retried within bounds."""

from __future__ import annotations

import pytest
from django.db.models import Sum

from bench.latency_server import LatencyServer
from glow.catalog.tests.factories import AIModelFactory, ScenarioFactory
from system.models import Group, Run
from tests.support.fakeserver import FakeOpenAIServer
from tests_app.engine import workers
from tests_app.models import TestGrade
from tests_app.tests.test_engine import assert_books_balance, outcome

pytestmark = pytest.mark.django_db


def remote_model(catalog, base_url: str, **fields):
    return AIModelFactory(
        organization=catalog.organization,
        title=f"Remote {fields.get('provider_model', 'model')}",
        provider="openai",
        base_url=base_url,
        **{"provider_model": "echo", **fields},
    )


def test_a_grid_on_remote_models_writes_what_the_local_simulator_writes(staff, catalog):
    """Echo models answer the same text locally and through an OpenAI-compatible server: the
    cells' transcripts, runs, tokens, cost, grades, events and the books are the same."""
    local = catalog.models[1]  # the local simulator's echo model
    with FakeOpenAIServer() as server:
        remote = remote_model(
            catalog,
            server.base_url,
            input_price_per_million=local.input_price_per_million,
            output_price_per_million=local.output_price_per_million,
        )
        on_local = catalog.start_queued(staff, concurrency=16, model_ids=[local.pk])
        on_remote = catalog.start_queued(staff, concurrency=16, model_ids=[remote.pk])
        assert workers.worker_run(test_id=on_local.pk, worker_token="a") == 2
        assert workers.worker_run(test_id=on_remote.pk, worker_token="b") == 2
        assert len(server.requests) == 2  # the agent's turn of each cell went over HTTP

    assert [cell["status"] for cell in outcome(on_local)] == ["succeeded"] * 2
    assert outcome(on_remote) == outcome(on_local)
    assert_books_balance(on_remote)

    def books(test):
        group = Group.objects.get(pk=test.group_id)
        return group.run_count, group.total_tokens, group.total_cost

    assert books(on_remote) == books(on_local)
    providers = set(
        Run.objects.filter(group_id=on_remote.group_id, kind="agent_turn").values_list(
            "provider", flat=True
        )
    )
    assert providers == {"openai"}
    for test in (on_local, on_remote):
        test.refresh_from_db()
        assert test.status == "finished"


@pytest.fixture
def latency_server(settings):
    """Every call of a test (agent, persona, grader) to a server answering after 60 ms."""
    with LatencyServer(median=0.06, sigma=0.0) as server:
        settings.GLOW_AI_PROVIDER = "openai"
        settings.GLOW_OPENAI_BASE_URL = server.base_url
        yield server


def many_cells(catalog, count: int) -> list:
    return [
        ScenarioFactory(
            organization=catalog.organization, department=catalog.department, title=f"S{n}"
        ).pk
        for n in range(count)
    ]


def test_the_tests_concurrency_caps_calls_in_flight_and_runs_record_their_own_latency(
    staff, catalog, latency_server
):
    model = remote_model(catalog, latency_server.base_url)
    test = catalog.start_queued(
        staff, concurrency=3, model_ids=[model.pk], scenario_ids=many_cells(catalog, 9)
    )
    assert workers.worker_run(test_id=test.pk, worker_token="w") == 9
    stats = latency_server.stats()
    assert stats["calls"] == 27  # agent, persona and grader per cell
    assert stats["max_in_flight"] == 3
    assert set(test.invocations.values_list("status", flat=True)) == {"succeeded"}
    assert TestGrade.objects.filter(invocation__test=test).count() == 9
    latencies = sorted(
        Run.objects.filter(group_id=test.group_id)
        .exclude(kind="invocation")
        .values_list("latency_ms", flat=True)
    )
    # Each run's own call (the server waits 60 ms), not its cell's three calls or a batch's
    # wall time; the client, the server and the database share one process (and its GIL) here.
    assert 60 <= latencies[len(latencies) // 2] < 150


def test_the_providers_own_cap_holds_whatever_the_tests_concurrency(
    staff, catalog, latency_server, settings
):
    settings.GLOW_PROVIDER_MAX_IN_FLIGHT = 2
    model = remote_model(catalog, latency_server.base_url)
    test = catalog.start_queued(
        staff, concurrency=8, model_ids=[model.pk], scenario_ids=many_cells(catalog, 8)
    )
    assert workers.worker_run(test_id=test.pk, worker_token="w") == 8
    assert latency_server.stats()["max_in_flight"] == 2


def test_429_with_retry_after_and_500s_are_retried_within_bounds(staff, catalog, latency_server):
    model = remote_model(catalog, latency_server.base_url)
    test = catalog.start_queued(
        staff, concurrency=1, model_ids=[model.pk], scenario_ids=many_cells(catalog, 2)
    )
    first, second = test.invocations.order_by("position")
    # The first cell's agent call: a 429 asking for 0.4 s, then a 500, then an answer.
    latency_server.fail_next(429, 1, retry_after=0.4)
    latency_server.fail_next(500, 1)
    workers.invocation_execute(
        invocation_id=workers.invocation_claim(test_id=test.pk, worker_token="a")
    )
    first.refresh_from_db()
    assert first.status == "succeeded"
    agent_call = Run.objects.get(artifact_id=first.pk, kind="agent_turn")
    assert agent_call.status == "succeeded"
    assert agent_call.latency_ms >= 400 + 60  # the wait it was asked for, and the answer
    # The second cell's agent call: 500 on every attempt (two retries): the cell fails.
    latency_server.fail_next(500, 3)
    workers.invocation_execute(
        invocation_id=workers.invocation_claim(test_id=test.pk, worker_token="b")
    )
    second.refresh_from_db()
    assert second.status == "failed"
    assert "HTTP 500 after 3 attempts" in second.error
    assert latency_server.stats()["statuses"].count(500) == 4
    assert Run.objects.get(artifact_id=second.pk, kind="agent_turn").status == "failed"
    test.refresh_from_db()
    assert test.status == "finished"
    assert_books_balance(test)
    assert Run.objects.filter(group_id=test.group_id).aggregate(n=Sum("total_tokens"))["n"] > 0
