"""The test engine with real Celery workers against the bench's latency server: a grid whose
worker is killed mid-run and replaced grades every cell exactly once, and finishes by itself."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db.models import Count

from bench.latency_server import LatencyServer
from glow.accounts.tests.factories import DepartmentFactory
from glow.catalog.tests.factories import (
    AgentFactory,
    AIModelFactory,
    EvalFactory,
    RubricFactory,
    ScenarioFactory,
)
from system.ledger import session_touch
from system.models import Run
from tests.integration.private_services import spawn_worker
from tests_app import lifecycle
from tests_app.models import Invocation, Test, TestGrade
from tests_app.tasks import invocations_drain

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 3


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return value


@pytest.fixture
def latency_server():
    with LatencyServer(median=0.1, sigma=0.6, seed=22) as server:
        yield server


@pytest.fixture
def env(services_env, latency_server) -> dict:
    """Workers whose persona and grader (and the grid's models) answer from the latency
    server, with a short lease so a dead worker's cells come back quickly."""
    return {
        **services_env,
        "CELERY_TASK_DEFAULT_QUEUE": f"glow-engine-{uuid.uuid4().hex[:8]}",
        "GLOW_AI_PROVIDER": "openai",
        "GLOW_OPENAI_BASE_URL": latency_server.base_url,
        "GLOW_TEST_LEASE_SECONDS": str(LEASE_SECONDS),
    }


def start_grid(org_admin, base_url: str, *, models: int, scenarios: int, concurrency: int):
    organization = org_admin.organization
    department = DepartmentFactory(organization=organization)
    rubric = RubricFactory(organization=organization, department=department, groups=2)
    evaluation = EvalFactory(
        organization=organization, department=department, rubric=rubric, turns=1
    )
    model_rows = [
        AIModelFactory(
            organization=organization,
            title=f"Remote {n}",
            provider="openai",
            provider_model=f"latency-{n}",
            base_url=base_url,
        )
        for n in range(models)
    ]
    scenario_rows = [
        ScenarioFactory(organization=organization, department=department, title=f"S{n}")
        for n in range(scenarios)
    ]
    agent = AgentFactory(organization=organization, department=department)
    test, _ = lifecycle.test_start(
        actor=org_admin,
        session=session_touch(actor=org_admin, client_kind="api", auth="api_key"),
        eval_id=evaluation.pk,
        model_ids=[row.pk for row in model_rows],
        scenario_ids=[row.pk for row in scenario_rows],
        agent_ids=[agent.pk],
        concurrency=concurrency,
        dispatch=False,
    )
    return test


def dispatch(test: Test, queue: str, tasks: int) -> None:
    """What workers_dispatch sends, on this test's own queue."""
    for _ in range(tasks):
        invocations_drain.apply_async(args=[str(test.pk), uuid.uuid4().hex], queue=queue)


def ended(test: Test) -> int:
    return Invocation.objects.filter(
        test=test, status__in=["succeeded", "failed", "terminated"]
    ).count()


def test_a_killed_worker_s_cells_come_back_after_their_lease_and_are_graded_once(
    org_admin, env, latency_server, tmp_path
):
    cells = 40
    test = start_grid(org_admin, latency_server.base_url, models=4, scenarios=10, concurrency=8)
    first = spawn_worker(env, tmp_path)
    dispatch(test, env["CELERY_TASK_DEFAULT_QUEUE"], 4)
    wait_for(lambda: ended(test) >= 8, timeout=90, what="8 cells to end")
    assert Invocation.objects.filter(test=test, status="running").exists()
    first.process.kill()  # SIGKILL: its claimed cells keep their leases, nobody renews them
    first.stop()
    killed = time.monotonic()
    held = Invocation.objects.filter(test=test, status="running").count()
    assert held > 0

    second = spawn_worker(env, tmp_path)  # its start looks for cells left behind
    try:
        wait_for(lambda: ended(test) == cells, timeout=120, what="every cell to end")
        recovered = time.monotonic() - killed
    finally:
        second.stop()

    rows = Invocation.objects.filter(test=test)
    assert set(rows.values_list("status", flat=True)) == {"succeeded"}, second.log()[-3000:]
    assert TestGrade.objects.filter(invocation__test=test).count() == cells
    # Exactly one graded envelope per cell; the dead worker's envelopes ended superseded.
    envelopes = Run.objects.filter(group_id=test.group_id, kind="invocation")
    succeeded = envelopes.filter(status="succeeded").values("artifact_id").annotate(n=Count("pk"))
    assert sorted(row["n"] for row in succeeded) == [1] * cells
    assert not envelopes.filter(status__in=["queued", "running"]).exists()
    # (a cell claimed but not yet written had no envelope to supersede)
    assert 0 < envelopes.filter(error="Superseded by a new run.").count() <= held
    test.refresh_from_db()
    assert test.status == "finished"
    print(
        f"\n{held} cells held by the killed worker; all {cells} graded once "
        f"{recovered:.1f} s after the kill (lease {LEASE_SECONDS} s); "
        f"{latency_server.stats()['calls']} calls served"
    )


def test_a_grid_runs_at_the_latency_floor_with_one_worker(org_admin, env, latency_server, tmp_path):
    """One worker process, 60 cells at concurrency 12: calls in flight reach the cap, and the
    wall time stays near the sum of the server's latencies over the concurrency."""
    test = start_grid(org_admin, latency_server.base_url, models=6, scenarios=10, concurrency=12)
    worker = spawn_worker(env, tmp_path)
    try:
        latency_server.reset()
        sent = time.monotonic()
        dispatch(test, env["CELERY_TASK_DEFAULT_QUEUE"], 4)
        wait_for(lambda: ended(test) == 60, timeout=120, what="every cell to end")
        wall = time.monotonic() - sent
    finally:
        worker.stop()
    stats = latency_server.stats()
    floor = stats["sum_ms"] / 1000 / 12
    assert stats["calls"] == 180
    assert stats["max_in_flight"] == 12
    assert set(Invocation.objects.filter(test=test).values_list("status", flat=True)) == {
        "succeeded"
    }
    # Generous on a shared two-core machine: the bench holds the tight figure.
    assert wall < 2.5 * floor + 3, (wall, floor)
    print(f"\n60 cells: wall {wall:.2f} s, floor {floor:.2f} s, ratio {wall / floor:.2f}")
