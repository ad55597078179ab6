"""Benchmark: how soon a learner sees the persona's reply start, offline, on the path the Chat
page takes.

DESIGN.md section 7: with the offline simulator, the first streamed text arrives within 300 ms of
send. Measured as the browser does it: an SSE stream on the attempt's group (`attempt/watch`)
is open, `attempt/message` is POSTed, and the clock stops at the first `ChatDeltaEvent` of the
reply; the whole reply (the POST's answer) is reported too. The simulator streams at the
embedded profile's typing pace (GLOW_LOCAL_STREAM_DELAY=0.07 s between chunks), so "whole" is
mostly that pace, by design.

Two profiles, each on one uvicorn process with the demo data:
- embedded (what `make run` serves): SQLite under a temporary GLOW_VAR_DIR, events in-process;
- production (what `make serve` runs): PostgreSQL (test_<DATABASE_URL's name>_persona_reply)
  and Redis carrying the events between processes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_ci REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python -m bench.persona_reply [--messages 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    bench_database,
    embedded_env,
    figure,
    manage,
    percentile,
    production_env,
    serve,
    setup_django,
)
from glow.cli.sse import SSEParser  # noqa: E402

FIRST_TEXT_BUDGET_MS = 300.0
PACE = "0.07"
LEARNER = "learner2"
LINES = [
    "Hi, thanks for coming in. What would you like to work on today?",
    "I hear that this has been frustrating. Can you show me where you got stuck?",
    "That makes sense. What have you tried so far?",
    "Let's agree on a next step: try the base case first, then come back on Thursday.",
]


async def _measure(url: str, key: str, messages: int) -> tuple[list[float], list[float]]:
    import httpx

    headers = {"X-Api-Key": key}
    firsts, wholes = [], []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        api = "/api/v5/artifacts/attempt/"
        homes = (await client.post("/api/v5/artifacts/home/search", json={})).json()["homes"]
        attempt = None
        sent = 0
        while sent < messages:
            if attempt is None:
                attempt = (
                    await client.post(api + "start", json={"home_id": homes[0]["id"]})
                ).json()
                chat_id = attempt["attempt_chat_id"]
                said = 0
            first_delta: asyncio.Future = asyncio.get_running_loop().create_future()

            async def watch(group_id: str, future: asyncio.Future) -> None:
                async with client.stream(
                    "GET", api + "watch", params={"group_id": group_id}, timeout=None
                ) as stream:
                    parser = SSEParser()
                    async for line in stream.aiter_lines():
                        event = parser.line(line)
                        if event is not None and event.event == "ChatDeltaEvent":
                            data = event.json()
                            if data.get("index") == 0 and not future.done():
                                future.set_result(time.perf_counter())

            watcher = asyncio.create_task(watch(attempt["group_id"], first_delta))
            await asyncio.sleep(0.3)  # the stream is subscribed, as a page's is before a send
            started = time.perf_counter()
            answer = await client.post(
                api + "message",
                json={
                    "attempt_id": attempt["attempt_id"],
                    "chat_id": chat_id,
                    "message": LINES[said % len(LINES)],
                },
            )
            finished = time.perf_counter()
            answer.raise_for_status()
            try:
                first = await asyncio.wait_for(first_delta, timeout=10)
            finally:
                watcher.cancel()
            firsts.append((first - started) * 1000)
            wholes.append((finished - started) * 1000)
            sent += 1
            said += 1
            if said == len(LINES):
                attempt = None  # a fresh attempt: conversations stay the length people have
    return firsts, wholes


def _report(profile: str, firsts: list[float], wholes: list[float]) -> bool:
    p50, p95 = percentile(firsts, 50), percentile(firsts, 95)
    ok = p50 <= FIRST_TEXT_BUDGET_MS and p95 <= FIRST_TEXT_BUDGET_MS
    figure(
        f"persona reply, first streamed text ({profile}, n={len(firsts)})",
        f"<= {FIRST_TEXT_BUDGET_MS:.0f} ms",
        f"{p50:.0f} ms",
        ok,
        p95=f"{p95:.0f} ms",
    )
    figure(
        f"persona reply, whole reply at {PACE} s/chunk ({profile})",
        "-",
        f"{percentile(wholes, 50):.0f} ms",
        None,
        p95=f"{percentile(wholes, 95):.0f} ms",
    )
    return ok


def _key(env: dict[str, str]) -> str:
    return manage(env, "createapikey", LEARNER).strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=30)
    args = parser.parse_args(argv)
    results = []

    with tempfile.TemporaryDirectory(prefix="glow-bench-embedded-") as var:
        embedded = embedded_env(var, GLOW_LOCAL_STREAM_DELAY=PACE)
        key = _key(embedded)
        with serve(embedded) as urls:
            firsts, wholes = asyncio.run(_measure(urls[0], key, args.messages))
        results.append(_report("embedded", firsts, wholes))

    setup_django()
    with bench_database("persona_reply", keep=False) as database:
        env = production_env(database, GLOW_LOCAL_STREAM_DELAY=PACE)
        manage(env, "glow_demo")
        key = _key(env)
        with serve(env) as urls:
            firsts, wholes = asyncio.run(_measure(urls[0], key, args.messages))
        results.append(_report("production", firsts, wholes))
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
