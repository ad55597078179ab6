"""Benchmark: promptfoo's grid shape, 10 models x 5 agents x 20 scenarios, from test/start to the last cell graded.

Every cell is one turn (the agent on an echo model, which answers its input; the scenario's
persona replies) and one check (a rubric of one standard, graded by the local provider). The
test is started through the HTTP API of a uvicorn process in the production profile and run by
real Celery worker processes; the figure is the time from sending test/start to the last
invocation's finished_at (graded and committed), with a target of 1.5 s. Also reported: the
queries one cell costs (one cell run in this process with the query log on).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m bench.fanout_grid [--runs 3] [--workers 4] [--drop]

It works in its own database (test_<name>_grid of DATABASE_URL), kept for the next run unless
--drop, and its own Celery queue.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from decimal import Decimal

from bench import (
    bench_database as own_database,
)
from bench import (
    bench_organization,
    bench_rubric,
    celery_workers,
    django_on_services,
    figure,
    production_env,
    serve,
    start_body,
)

TARGET_SECONDS = 1.5
GRID = (10, 5, 20)  # models, agents, scenarios
ORG_NAME = "Bench University (grid)"
RUN_TIMEOUT_SECONDS = 300.0


def _echo_model(n: int) -> dict:
    return {"provider": "local", "provider_model": "echo"}


def catalog(
    *,
    org_name: str = ORG_NAME,
    admin_username: str = "bench-grid-admin",
    model_title: str = "Echo model {n}",
    model_fields=_echo_model,
):
    """The bench organization's admin, its one-turn eval with a one-check rubric, ten models
    (local echo unless `model_fields(n)` says otherwise), five agents and twenty scenarios
    (idempotent). remote_grid builds the same grid on its latency server's models."""
    from glow.catalog import models as m

    admin, row = bench_organization(name=org_name, admin_username=admin_username)
    rubric = bench_rubric(
        row,
        "Grid check",
        [
            {
                "name": "Check",
                "standards": [
                    {
                        "name": "Answers",
                        "description": "Acknowledges the student and answers.",
                        "points": 1,
                    }
                ],
            }
        ],
    )
    evaluation = row(m.Eval, "Grid eval", rubric=rubric, turns=1)
    models = [
        row(
            m.AIModel,
            model_title.format(n=n),
            **model_fields(n),
            input_price_per_million=Decimal("0.10"),
            output_price_per_million=Decimal("0.20"),
        )
        for n in range(GRID[0])
    ]
    agents = [
        row(m.Agent, f"Grid agent {n}", system_prompt=f"You are teaching assistant {n}.")
        for n in range(GRID[1])
    ]
    scenarios = []
    for n in range(GRID[2]):
        persona = row(m.Persona, f"Grid student {n}", traits=["curious"], intensity=1 + n % 9)
        scenarios.append(
            row(
                m.Scenario,
                f"Grid scenario {n}",
                persona=persona,
                context="The student asks when the problem set is due.",
            )
        )
    return admin, evaluation, models, agents, scenarios


def queries_per_cell(admin, evaluation, models, agents, scenarios, *, cells: int, concurrency: int):
    """(queries, milliseconds) per cell of `cells` cells run by the runner in this process, as
    one worker task of a test of this concurrency runs them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from system.ledger import session_touch
    from tests_app.engine import workers
    from tests_app.lifecycle import test_start

    session = session_touch(actor=admin, client_kind="api", auth="api_key")
    test, _ = test_start(
        actor=admin,
        session=session,
        eval_id=evaluation.pk,
        model_ids=[models[0].pk],
        scenario_ids=[row.pk for row in scenarios[:cells]],
        agent_ids=[agents[0].pk],
        title=f"Grid: {cells} cells counted",
        concurrency=concurrency,
        dispatch=False,
    )
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        executed = workers.worker_run(test_id=test.pk, worker_token="bench-count")
        elapsed = (time.perf_counter() - started) * 1000
    if executed != cells:
        raise SystemExit(f"the counted test ran {executed} of {cells} invocations")
    return len(captured) / cells, elapsed / cells


def _cpu_busy() -> tuple[int, int]:
    """(busy, idle) jiffies of every core so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, idle


def run_grid(client, payload: dict, cells: int) -> tuple[float, float, int, bool]:
    """(seconds to the last cell graded, milliseconds test/start took, cells succeeded, whether
    a TestProgressEvent said finished: what a group watcher such as `glow test watch` ends on)."""
    from django.db.models import Max

    from system.models import Event
    from tests_app.models import DONE, Invocation

    busy_before = _cpu_busy()
    sent = time.time()
    response = client.post("/test/start", json=payload)
    answered_ms = (time.time() - sent) * 1000
    if response.status_code != 200:
        raise SystemExit(f"test/start answered {response.status_code}: {response.text[:300]}")
    rows = Invocation.objects.filter(test_id=response.json()["test_id"])
    done = [str(status) for status in DONE]
    while rows.filter(status__in=done).count() < cells:
        if time.time() - sent > RUN_TIMEOUT_SECONDS:
            raise SystemExit(f"only {rows.filter(status__in=done).count()} of {cells} finished")
        time.sleep(0.1)  # the finish is read from max(finished_at): polling less loads less
    last: datetime = rows.aggregate(last=Max("finished_at"))["last"]
    busy, idle = (now - then for now, then in zip(_cpu_busy(), busy_before, strict=True))
    print(f"  machine busy {busy / (busy + idle):.0%} from test/start to the poll's last look")
    told = Event.objects.filter(
        group_id=response.json()["group_id"],
        event_type="TestProgressEvent",
        payload__finished=True,
    ).exists()
    return last.timestamp() - sent, answered_ms, rows.filter(status="succeeded").count(), told


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed grids")
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="the test's concurrency (64: 4 tasks of 16)"
    )
    parser.add_argument("--drop", action="store_true", help="drop the bench database after")
    args = parser.parse_args(argv)

    if not django_on_services("fanout_grid"):
        return 0
    import httpx

    from glow.accounts.services import api_key_create

    with own_database("grid", keep=not args.drop) as database:
        admin, evaluation, models, agents, scenarios = catalog()
        counted = {
            size: queries_per_cell(
                admin, evaluation, models, agents, scenarios, cells=size, concurrency=concurrency
            )
            for size, concurrency in ((1, 4), (16, 64))
        }
        key = api_key_create(profile=admin).plaintext
        env = production_env(database)
        cells = GRID[0] * GRID[1] * GRID[2]
        print(f"grid benchmark: {cells} cells, {args.workers} Celery worker processes")
        with (
            serve(env) as (url,),
            celery_workers(env, processes=args.workers),
            httpx.Client(
                base_url=f"{url}/api/v5/artifacts", headers={"X-Api-Key": key}, timeout=60
            ) as client,
        ):
            # A small grid first: every worker process imports, connects and warms its caches.
            warm = start_body(
                evaluation,
                models=models[:1],
                agents=agents,
                scenarios=scenarios,
                concurrency=args.concurrency,
                title="Grid warm-up",
            )
            run_grid(client, warm, len(agents) * len(scenarios))
            results = []
            for number in range(args.runs):
                payload = start_body(
                    evaluation,
                    models=models,
                    agents=agents,
                    scenarios=scenarios,
                    concurrency=args.concurrency,
                    title=f"Grid run {number + 1}",
                )
                seconds, answered_ms, succeeded, told = run_grid(client, payload, cells)
                print(
                    f"  run {number + 1}: {seconds:.2f} s to the last cell graded "
                    f"(test/start answered in {answered_ms:.0f} ms), {succeeded} succeeded"
                    f"{'' if told else ', no tally said finished'}",
                    flush=True,
                )
                results.append((seconds, succeeded, told))
    times = [seconds for seconds, _, _ in results]
    all_succeeded = all(succeeded == cells for _, succeeded, _ in results)
    all_told = all(told for _, _, told in results)
    p50 = statistics.median(times)
    figure(
        f"grid 10x5x20 test/start -> last cell graded ({args.workers} workers, "
        f"concurrency {args.concurrency}, {args.runs} runs)",
        f"< {TARGET_SECONDS} s",
        f"{p50:.2f} s",
        p50 < TARGET_SECONDS,
        p95=f"max {max(times):.2f} s",
        ratio=f"{p50 / TARGET_SECONDS:.1f}x target",
    )
    figure(
        "grid cells succeeded",
        f"{cells} per run",
        f"{min(s for _, s, _ in results)}",
        all_succeeded,
    )
    figure(
        "grid: a TestProgressEvent says finished (what a group watcher ends on)",
        "every run",
        f"{sum(told for _, _, told in results)} of {len(results)} runs",
        all_told,
    )
    for size, (queries, cell_ms) in counted.items():
        figure(
            f"grid queries per cell, {'one cell alone' if size == 1 else f'a batch of {size}'}",
            "-",
            f"{queries:.1f} queries, {cell_ms:.1f} ms per cell (in process)",
            None,
        )
    figure("grid throughput", "-", f"{cells / p50:.0f} cells/s", None)
    return 0 if p50 < TARGET_SECONDS and all_succeeded and all_told else 1


if __name__ == "__main__":
    sys.exit(main())
