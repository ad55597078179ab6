"""Benchmark: the generate trigger, and N concurrent SSE watchers on one uvicorn process.

DESIGN.md section 7: the `generate` trigger answers with p95 <= 100 ms; one ASGI process holds
1,000 concurrent watchers with publish-to-receive p99 <= 250 ms. uvicorn runs in the production
profile on its own PostgreSQL database (test_<name>_generation of DATABASE_URL) with Redis;
events are emitted from this process exactly as a Celery worker emits them (stored, then
published through Redis), so each one crosses processes before it reaches the watchers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_ci REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m bench.generation [--watchers 1000] [--events 20] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    bench_database,
    figure,
    percentile,
    production_env,
    raise_file_limit,
    serve,
    setup_django,
)
from glow.cli.sse import SSEParser  # noqa: E402

TRIGGER_BUDGET_MS = 100.0
RECEIVE_BUDGET_MS = 250.0
CONNECT_BATCH = 25  # concurrent connects: each briefly holds a database connection
EVENT_INTERVAL_SECONDS = 0.25
PHASE_TIMEOUT_SECONDS = 60.0


def prepare():
    """An admin with an API key, and an open generate run of theirs to publish on."""
    from django.contrib.auth import get_user_model

    from glow.accounts.models import Organization, Profile
    from glow.accounts.services import api_key_create
    from system.ledger import group_create, run_create, session_touch

    organization = Organization.objects.create(
        name=f"Bench University (generation {uuid.uuid4().hex[:6]})"
    )
    user = get_user_model().objects.create(username=f"bench-generation-{uuid.uuid4().hex[:8]}")
    admin = Profile.objects.create(
        user=user, organization=organization, role="admin", display_name="Bench admin"
    )
    key = api_key_create(profile=admin).plaintext
    session = session_touch(actor=admin, client_kind="api", auth="api_key")
    group = group_create(actor=admin, session=session, family="persona", name="Bench watchers")
    return key, run_create(group=group, kind="generate", family="persona")


def measure_trigger(url: str, key: str, requests: int) -> list[float]:
    import httpx

    body = {"instructions": ["A confused first-year student, intensity 4"]}
    timings = []
    with httpx.Client(base_url=f"{url}/api/v5/artifacts", headers={"X-Api-Key": key}) as client:
        for attempt in range(requests + 20):  # the first 20 warm the process up
            started = time.perf_counter()
            response = client.post("/persona/generate", json=body, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"generate answered {response.status_code}: {response.text[:300]}")
            if attempt >= 20:
                timings.append(elapsed)
    return timings


class Watcher:
    """One SSE client on a raw socket: thousands of them fit one event loop."""

    def __init__(self, host: str, port: int, path: str, key: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Api-Key: {key}\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n"
        ).encode()
        self.host, self.port = host, port
        self.opened = asyncio.Event()
        self.latencies: list[float] = []
        self.error = ""

    async def run(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        except OSError as exc:
            self.error = f"connect: {exc}"
            self.opened.set()
            return
        try:
            writer.write(self.request)
            status = await reader.readline()
            if b" 200 " not in status:
                self.error = status.decode(errors="replace").strip()
                return
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            parser = SSEParser()
            while line := await reader.readline():
                if line.startswith(b": stream open"):
                    self.opened.set()
                event = parser.line(line.decode().rstrip("\r\n"))
                if event is not None and event.data:
                    received = time.time()
                    data = event.json()
                    if "completed_resources" in data:
                        self.latencies.append((received - data["sent_at"]) * 1000)
                    if data.get("success") is not None:
                        return
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.error = str(exc)
        finally:
            self.opened.set()
            writer.close()


def emit(run, *, event_type: str, **payload) -> None:
    """Emit from a worker thread, as a Celery task would; the clock starts once connected."""
    from django.db import connection

    from system.events import event_emit

    connection.ensure_connection()
    try:
        event_emit(run=run, event_type=event_type, payload={**payload, "sent_at": time.time()})
    finally:
        connection.close()


async def measure_watchers(url: str, key: str, run, count: int, events: int):
    host, port = url.removeprefix("http://").split(":")
    path = f"/api/v5/artifacts/persona/watch?run_id={run.pk}"
    watchers = [Watcher(host, int(port), path, key) for _ in range(count)]
    tasks = []
    connect_started = time.monotonic()
    for start in range(0, count, CONNECT_BATCH):
        batch = watchers[start : start + CONNECT_BATCH]
        tasks += [asyncio.create_task(watcher.run()) for watcher in batch]
        await asyncio.wait_for(
            asyncio.gather(*(watcher.opened.wait() for watcher in batch)), PHASE_TIMEOUT_SECONDS
        )
    connect_seconds = time.monotonic() - connect_started
    connected = sum(1 for watcher in watchers if not watcher.error)
    for number in range(1, events + 1):
        await asyncio.to_thread(
            emit,
            run,
            event_type="GenerationProgressEvent",
            completed_resources=number,
            total_resources=events,
            percentage=round(100 * number / events),
            last_completed_resource=f"bench-{number}",
        )
        await asyncio.sleep(EVENT_INTERVAL_SECONDS)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        len(w.latencies) < events for w in watchers if not w.error
    ):
        await asyncio.sleep(0.1)
    await asyncio.to_thread(
        emit,
        run,
        event_type="GenerationCompleteEvent",
        success=True,
        message="bench",
        artifact_id=None,
    )
    _, pending = await asyncio.wait(tasks, timeout=20)
    for task in pending:
        task.cancel()
    samples = [latency for watcher in watchers for latency in watcher.latencies]
    errors = sorted({watcher.error for watcher in watchers if watcher.error})
    return connected, connect_seconds, samples, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20, help="events published to the watchers")
    parser.add_argument("--requests", type=int, default=200, help="timed generate triggers")
    parser.add_argument("--drop", action="store_true", help="drop the bench database after")
    args = parser.parse_args(argv)

    import uvloop

    redis_url = os.environ.get("REDIS_URL", "")
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql" or not redis_url:
        print("generation: needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); skipped.")
        return 0
    raise_file_limit()
    with bench_database("generation", keep=not args.drop) as database:
        # The figures are the ops' own, not the per-key abuse limits'.
        env = production_env(database, GLOW_THROTTLE_GENERATE="", GLOW_THROTTLE_READ="")
        try:
            key, run = prepare()
            with serve(env) as (url,):
                print(
                    f"generation benchmark: uvicorn at {url}, {args.watchers} watchers", flush=True
                )
                timings = measure_trigger(url, key, args.requests)
                # uvloop (as uvicorn uses): the watchers' own reading adds less to each latency.
                connected, connect_seconds, samples, errors = uvloop.run(
                    measure_watchers(url, key, run, args.watchers, args.events)
                )
        finally:
            import redis

            # The triggered tasks nobody will run.
            redis.Redis.from_url(redis_url).delete(env["CELERY_TASK_DEFAULT_QUEUE"])
    for error in errors[:5]:
        print(f"  watcher error: {error}")
    trigger_p95 = percentile(timings, 95)
    receive_p99 = percentile(samples, 99)
    expected = connected * args.events
    checks = [
        trigger_p95 <= TRIGGER_BUDGET_MS,
        connected == args.watchers,
        len(samples) == expected,
        receive_p99 <= RECEIVE_BUDGET_MS,
    ]
    figure(
        "generate trigger over HTTP",
        f"p95 <= {TRIGGER_BUDGET_MS:.0f} ms",
        f"{percentile(timings, 50):.1f} ms",
        checks[0],
        p95=f"{trigger_p95:.1f} ms",
    )
    figure(
        "SSE watchers on one process",
        f"{args.watchers}",
        f"{connected} (connected in {connect_seconds:.1f} s)",
        checks[1],
    )
    figure("SSE events delivered", f"{expected}", f"{len(samples)}", checks[2])
    figure(
        f"SSE publish-to-receive ({connected} watchers), p99 in the p95 column",
        f"p99 <= {RECEIVE_BUDGET_MS:.0f} ms",
        f"{percentile(samples, 50):.1f} ms",
        checks[3],
        p95=f"p99 {receive_p99:.1f} ms",
    )
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
