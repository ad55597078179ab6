"""Benchmark: test/start of 10 models x 20 scenarios x 5 agents, and invocations/second on Celery.

1. test/start through the full Django stack (API-key auth, session books, validation, one bulk
   INSERT of 1,000 invocations, workers enqueued to the broker): the answer must come within
   300 ms with all 1,000 invocations committed (DESIGN.md section 7). Reported: p50 and max.
2. A real Celery worker process (prefork) and the local provider run a smaller test to the end;
   reported: invocations per second (each is 2 agent turns, 2 persona replies and a grade, so 5
   model calls as Runs, plus events). DESIGN.md sets no budget for this figure.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/tests_fanout.py [--starts 7] [--cells 100] [--workers 4] [--keep]

It works in its own database (test_<name> of DATABASE_URL) and its own Celery queue.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
START_BUDGET_MS = 300.0
GRID = (10, 20, 5)  # models, scenarios, agents
ORG_NAME = "Bench University (tests)"
WORKER_READY_SECONDS = 60


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
    import django

    django.setup()


def catalog():
    """The bench organization's admin and its eval, models, scenarios and agents (idempotent)."""
    from django.contrib.auth import get_user_model

    from glow.accounts.models import Organization, Profile
    from glow.catalog import families
    from glow.catalog import models as m

    organization, _ = Organization.objects.get_or_create(name=ORG_NAME)
    user, _ = get_user_model().objects.get_or_create(username="bench-tests-admin")
    admin, _ = Profile.objects.get_or_create(
        user=user, defaults={"organization": organization, "role": "admin"}
    )

    def row(model, title, **fields):
        return model.objects.get_or_create(organization=organization, title=title, defaults=fields)[
            0
        ]

    rubric = row(m.Rubric, "Bench rubric")
    if not rubric.groups.exists():
        families.write_rubric(
            rubric,
            {
                "groups": [
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
                ]
            },
        )  # fmt: skip
    evaluation = row(m.Eval, "Bench eval", rubric=rubric, turns=2)
    models = [
        row(
            m.Model,
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


def body(evaluation, models, scenarios, agents, **extra) -> dict:
    return {
        "eval_id": str(evaluation.pk),
        "model_ids": [str(row.pk) for row in models],
        "scenario_ids": [str(row.pk) for row in scenarios],
        "agent_ids": [str(row.pk) for row in agents],
        **extra,
    }


def measure_start(client, payload: dict, *, starts: int) -> tuple[list[float], int, list[str]]:
    """Times test/start; each answer must find every invocation committed. Answers timings,
    the most queries one start made, and the test ids (stopped at once, so no worker runs them)."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from tests_app.models import Invocation

    expected = GRID[0] * GRID[1] * GRID[2]
    timings, queries, test_ids = [], 0, []
    for attempt in range(starts + 1):  # the first is a warm-up
        # A request resets the query log when it starts: begin the count from an empty log.
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.post("/api/v5/artifacts/test/start", payload, format="json")
            elapsed = (time.perf_counter() - started) * 1000
        # Read now: the log is a view that the next request's reset empties.
        made = len(captured)
        if response.status_code != 200:
            raise SystemExit(f"test/start answered {response.status_code}: {response.content!r}")
        test_id = response.json()["test_id"]
        committed = Invocation.objects.filter(test_id=test_id).count()
        if committed != expected:
            raise SystemExit(f"test/start answered with {committed} of {expected} invocations")
        client.post("/api/v5/artifacts/test/stop", {"test_id": test_id}, format="json")
        test_ids.append(test_id)
        if attempt:
            timings.append(elapsed)
            queries = max(queries, made)
    return timings, queries, test_ids


def worker_env(queue: str) -> dict:
    """The worker reads the bench database (test_<name>) and the same broker."""
    from django.db import connection

    url = urlsplit(os.environ["DATABASE_URL"])
    database = connection.settings_dict["NAME"]
    env = dict(os.environ)
    env["DATABASE_URL"] = urlunsplit(url._replace(path=f"/{database}"))
    env["GLOW_TASK_MODE"] = "celery"
    return env


def start_worker(queue: str, workers: int) -> subprocess.Popen:
    name = f"{queue}@%h"
    command = [
        str(ROOT / ".venv" / "bin" / "celery"),
        "-A",
        "glow",
        "worker",
        "-Q",
        queue,
        "-n",
        name,
        "-c",
        str(workers),
        "-P",
        "prefork",
        "-l",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    return subprocess.Popen(command, cwd=ROOT, env=worker_env(queue))


def wait_for_worker(app, queue: str) -> None:
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if any(queue in name for reply in replies for name in reply):
            return
    raise SystemExit(f"the Celery worker did not answer within {WORKER_READY_SECONDS} s")


def measure_throughput(client, payload: dict, *, cells: int, timeout: float) -> tuple[float, int]:
    """Seconds from the start request until every invocation finished, and how many succeeded."""
    from tests_app.models import DONE, Invocation

    started = time.perf_counter()
    response = client.post("/api/v5/artifacts/test/start", payload, format="json")
    if response.status_code != 200:
        raise SystemExit(f"test/start answered {response.status_code}: {response.content!r}")
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
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args(argv)

    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment
    from rest_framework.test import APIClient

    from bench import figure
    from glow.accounts.services import api_key_create
    from glow.celery import app

    if connection.vendor != "postgresql" or settings.GLOW_TASK_MODE != "celery":
        print("tests_fanout: needs PostgreSQL and a Celery broker (DATABASE_URL, REDIS_URL).")
        return 0
    settings.GLOW_THROTTLE_RATES = {}
    settings.SECURE_SSL_REDIRECT = False
    queue = f"bench-tests-{uuid.uuid4().hex[:8]}"
    # Our own queue: a worker of another checkout on the same broker never takes these tasks.
    app.conf.task_default_queue = queue
    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True)
    worker = None
    try:
        admin, evaluation, models, scenarios, agents = catalog()
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=api_key_create(profile=admin).plaintext)
        print(f"tests fan-out benchmark (PostgreSQL, Celery queue {queue})")

        timings, queries, _ = measure_start(
            client, body(evaluation, models, scenarios, agents), starts=args.starts
        )
        p50, worst = statistics.median(timings), max(timings)
        ok = p50 <= START_BUDGET_MS
        figure(
            "test/start 10x20x5 (1,000 invocations committed), p50",
            f"<= {START_BUDGET_MS:.0f} ms",
            f"{p50:.1f} ms (max {worst:.1f} ms, {queries} queries)",
            ok,
        )

        worker = start_worker(queue, args.workers)
        wait_for_worker(app, queue)
        per_agent = max(1, args.cells // (2 * len(agents)))
        payload = body(
            evaluation,
            models[:2],
            scenarios[:per_agent],
            agents,
            concurrency=args.workers,
            title="Bench throughput",
        )
        cells = 2 * per_agent * len(agents)
        elapsed, succeeded = measure_throughput(client, payload, cells=cells, timeout=args.timeout)
        figure(
            f"invocations/second, local provider, Celery {args.workers} processes",
            "none in DESIGN.md section 7",
            f"{cells / elapsed:.2f}/s ({cells} cells in {elapsed:.1f} s, {succeeded} succeeded)",
            None if succeeded == cells else False,
        )
        return 0 if ok and succeeded == cells else 1
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        connection.close()
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


if __name__ == "__main__":
    sys.exit(main())
