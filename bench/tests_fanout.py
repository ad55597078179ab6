"""Benchmark: test/start of 10 models x 20 scenarios x 5 agents, and invocations/second on Celery.

1. test/start over HTTP to a uvicorn process of the production profile (API-key auth, session books, validation, one bulk
   INSERT of 1,000 invocations, workers enqueued to the broker): the answer must come within
   300 ms with all 1,000 invocations committed (DESIGN.md section 7). Reported: p50 and max.
2. Real Celery worker processes and the local provider run a smaller test to the end;
   reported: invocations per second (each is 2 agent turns, 2 persona replies and a grade, so 5
   model calls as Runs, plus events). DESIGN.md sets no budget for this figure.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python -m bench.tests_fanout [--starts 7] [--cells 100] [--workers 4] [--drop]

It works in its own database (test_<name>_tests of DATABASE_URL, kept unless --drop) and its
own Celery queue.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from decimal import Decimal

from bench import bench_organization, bench_rubric, django_on_services, start_body

START_BUDGET_MS = 300.0
GRID = (10, 20, 5)  # models, scenarios, agents
ORG_NAME = "Bench University (tests)"


def catalog():
    """The bench organization's admin and its eval, models, scenarios and agents (idempotent)."""
    from glow.catalog import models as m

    admin, row = bench_organization(name=ORG_NAME, admin_username="bench-tests-admin")
    rubric = bench_rubric(
        row,
        "Bench rubric",
        [
            {
                "name": name,
                "standards": [
                    {"name": f"{name} {n}", "description": text, "points": 2}
                    for n, text in enumerate(
                        ("Acknowledges feelings and asks open questions.",
                         "Explains the policy clearly with next steps.")
                    )
                ],
            }
            for name in ("Empathy", "Guidance", "Policy")
        ],
    )  # fmt: skip
    evaluation = row(m.Eval, "Bench eval", rubric=rubric, turns=2)
    models = [
        row(
            m.AIModel,
            f"Bench model {n}",
            provider=m.Provider.LOCAL,
            provider_model="glow-local",
            input_price_per_million=Decimal("0.50"),
            output_price_per_million=Decimal("1.50"),
        )
        for n in range(GRID[0])
    ]
    scenarios = []
    for n in range(GRID[1]):
        persona = row(
            m.Persona,
            f"Student {n}, worried about a grade",
            traits=["anxious", "polite"],
            intensity=1 + n % 9,
        )
        scenarios.append(
            row(
                m.Scenario,
                f"Bench scenario {n}: regrade request",
                persona=persona,
                context="The student asks for a regrade of problem set 3 after the deadline.",
            )
        )
    tool = row(
        m.Tool,
        "Bench policy lookup",
        name="lookup_policy",
        json_schema={"type": "object", "properties": {"topic": {"type": "string"}}},
    )
    agents = []
    for n in range(GRID[2]):
        agent = row(
            m.Agent,
            f"Bench agent {n}",
            system_prompt="You are a calm, empathetic teaching assistant.",
        )
        agent.tools.set([tool])
        agents.append(agent)
    return admin, evaluation, models, scenarios, agents


def count_start_queries(client, payload: dict) -> int:
    """Queries of one test/start made in this process (the query log is only kept here)."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    # A request resets the query log when it starts: begin the count from an empty log.
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v5/artifacts/test/start", payload, format="json")
        made = len(captured)
    if response.status_code != 200:
        raise SystemExit(f"test/start answered {response.status_code}: {response.content!r}")
    client.post(
        "/api/v5/artifacts/test/stop", {"test_id": response.json()["test_id"]}, format="json"
    )
    return made


def measure_start(client, payload: dict, *, starts: int) -> list[float]:
    """Times test/start over HTTP; each answer must find every invocation committed. The tests
    are stopped at once, so no worker runs them."""
    from tests_app.models import Invocation

    expected = GRID[0] * GRID[1] * GRID[2]
    timings = []
    for attempt in range(starts + 1):  # the first is a warm-up
        started = time.perf_counter()
        response = client.post("/api/v5/artifacts/test/start", json=payload)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"test/start answered {response.status_code}: {response.text}")
        test_id = response.json()["test_id"]
        committed = Invocation.objects.filter(test_id=test_id).count()
        if committed != expected:
            raise SystemExit(f"test/start answered with {committed} of {expected} invocations")
        client.post("/api/v5/artifacts/test/stop", json={"test_id": test_id})
        if attempt:
            timings.append(elapsed)
    return timings


def measure_throughput(client, payload: dict, *, cells: int, timeout: float) -> tuple[float, int]:
    """Seconds from the start request until every invocation finished, and how many succeeded."""
    from tests_app.models import DONE, Invocation

    started = time.perf_counter()
    response = client.post("/api/v5/artifacts/test/start", json=payload)
    if response.status_code != 200:
        raise SystemExit(f"test/start answered {response.status_code}: {response.text}")
    test_id = response.json()["test_id"]
    rows = Invocation.objects.filter(test_id=test_id)
    while time.perf_counter() - started < timeout:
        if rows.filter(status__in=[str(s) for s in DONE]).count() == cells:
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"only {rows.filter(status__in=DONE).count()} of {cells} finished")
    elapsed = time.perf_counter() - started
    return elapsed, rows.filter(status="succeeded").count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=7, help="timed test/start calls")
    parser.add_argument("--cells", type=int, default=100, help="cells of the throughput test")
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the run")
    parser.add_argument("--drop", action="store_true", help="drop the bench database after")
    args = parser.parse_args(argv)

    if not django_on_services("tests_fanout"):
        return 0
    import httpx
    import redis
    from django.conf import settings
    from rest_framework.test import APIClient

    from bench import bench_database, celery_workers, figure, production_env, serve
    from glow.accounts.services import api_key_create
    from glow.celery import app

    # The in-process query count measures the op, not the abuse limits or the HTTPS redirect.
    # Its test is stopped at once; its tasks go to a queue of their own that nobody consumes.
    settings.GLOW_THROTTLE_RATES = {}
    settings.SECURE_SSL_REDIRECT = False
    settings.GLOW_TASK_MODE = "celery"
    discard = f"glow-bench-discard-{uuid.uuid4().hex[:12]}"
    app.conf.task_default_queue = discard
    with bench_database("tests", keep=not args.drop) as database:
        admin, evaluation, models, scenarios, agents = catalog()
        key = api_key_create(profile=admin).plaintext
        local = APIClient()
        local.credentials(HTTP_X_API_KEY=key)
        grid = start_body(evaluation, models=models, agents=agents, scenarios=scenarios)
        queries = count_start_queries(local, grid)
        redis.Redis.from_url(os.environ["REDIS_URL"]).delete(discard)
        env = production_env(database)
        print(
            f"tests fan-out benchmark (PostgreSQL, Celery queue {env['CELERY_TASK_DEFAULT_QUEUE']})"
        )
        with (
            serve(env) as (url,),
            httpx.Client(base_url=url, headers={"X-Api-Key": key}, timeout=60) as client,
        ):
            timings = measure_start(client, grid, starts=args.starts)
            p50, worst = statistics.median(timings), max(timings)
            ok = p50 <= START_BUDGET_MS
            figure(
                "test/start 10x20x5 over HTTP (1,000 invocations committed)",
                f"<= {START_BUDGET_MS:.0f} ms",
                f"{p50:.1f} ms",
                ok,
                p95=f"max {worst:.1f} ms",
            )
            figure("test/start 10x20x5 queries", "-", f"{queries}", None)
            with celery_workers(env, processes=args.workers):
                per_agent = max(1, args.cells // (2 * len(agents)))
                payload = start_body(
                    evaluation,
                    models=models[:2],
                    agents=agents,
                    scenarios=scenarios[:per_agent],
                    concurrency=args.workers,
                    title="Bench throughput",
                )
                cells = 2 * per_agent * len(agents)
                elapsed, succeeded = measure_throughput(
                    client, payload, cells=cells, timeout=args.timeout
                )
        figure(
            f"invocations/second, local provider, {args.workers} Celery processes",
            "none in DESIGN.md section 7",
            f"{cells / elapsed:.2f}/s",
            None if succeeded == cells else False,
            p95=f"{cells} cells in {elapsed:.1f} s, {succeeded} succeeded",
        )
    return 0 if ok and succeeded == cells else 1


if __name__ == "__main__":
    sys.exit(main())
