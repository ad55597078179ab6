"""Benchmark: the 10 x 5 x 20 grid at real model latency, beside promptfoo on the same server.

Every model call of the grid (the agent on each of ten models, the scenario's persona, the
rubric grader: three per cell) goes to bench.latency_server, an OpenAI-compatible server in
its own process answering after a seeded log-normal latency (median 200 ms, sigma 0.6). The
test is started through the HTTP API of a uvicorn process in the production profile and run
by real Celery worker processes, at concurrency 16 and 64. For each run it prints:

- wall: test/start sent -> the last cell graded and committed;
- floor: the sum of the server's latencies over the concurrency (what a client that always
  kept `concurrency` calls in flight, and spent nothing else, would take);
- ratio wall / floor; calls in flight at most, as the server saw them;
- per-run latency_ms p50 and p95 as Glow recorded them, beside the server's own p50.

Then promptfoo (pinned in bench/promptfoo/package.json, installed by this bench into
var/promptfoo) runs the same grid shape (10 providers x 5 prompts x 20 tests: one call per
cell, no grader) with -j equal to Glow's concurrency against the same server, timed from
its start to its exit: wall, floor, ratio, in flight, and wall per model call beside Glow's.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.remote_grid [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import (
    ROOT,
    celery_workers,
    django_on_services,
    figure,
    percentile,
    production_env,
    serve,
    start_body,
)
from bench import bench_database as own_database
from bench.fanout_grid import _cpu_busy
from bench.fanout_grid import catalog as grid_catalog

GRID = (10, 5, 20)  # models, agents, scenarios
ORG_NAME = "Bench University (remote grid)"
RUN_TIMEOUT_SECONDS = 240.0
BUDGET = {16: 1.2, 64: 1.3}  # wall within this many times the floor
PROMPTFOO_DIR = ROOT / "var" / "promptfoo"


def catalog(base_url: str):
    """fanout_grid's grid (admin, one-turn eval, ten models, five agents, twenty scenarios) with
    its ten models on the latency server (idempotent)."""
    from glow.catalog import models as m

    admin, evaluation, models, agents, scenarios = grid_catalog(
        org_name=ORG_NAME,
        admin_username="bench-remote-grid-admin",
        model_title="Latency model {n}",
        model_fields=lambda n: {"provider": m.Provider.OPENAI, "provider_model": f"latency-{n}"},
    )
    m.AIModel.objects.filter(pk__in=[model.pk for model in models]).update(base_url=base_url)
    return admin, evaluation, models, agents, scenarios


class ServerProcess:
    """bench.latency_server in its own process (its CPU is not the clients')."""

    def __init__(self) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="latency-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.latency_server", "--median", "0.2", "--sigma", "0.6"],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while "listening" not in Path(self.log.name).read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the latency server did not start: {Path(self.log.name).read_text()}"
                )
            time.sleep(0.05)
        self.base_url = Path(self.log.name).read_text().split("listening ")[1].split()[0]
        self.root = self.base_url.removesuffix("/v1")

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"{self.root}/stats", timeout=10).json()

    def reset(self) -> None:
        import httpx

        httpx.post(f"{self.root}/reset", timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


def cpu_seconds(marker: str) -> float:
    """CPU time (user + system) so far of every process whose command line holds `marker`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def run_glow(client, payload: dict, cells: int, server: ServerProcess, queue: str) -> dict:
    """One grid through Glow: wall, the server's figures, Glow's per-run latencies."""
    from django.db.models import Max

    from system.models import Run
    from tests_app.models import DONE, Invocation, Test

    server.reset()
    busy_before = _cpu_busy()
    workers_before = cpu_seconds(queue)
    sent = time.time()
    response = client.post("/test/start", json=payload)
    if response.status_code != 200:
        raise SystemExit(f"test/start answered {response.status_code}: {response.text[:300]}")
    test_id = response.json()["test_id"]
    rows = Invocation.objects.filter(test_id=test_id)
    done = [str(status) for status in DONE]
    while rows.filter(status__in=done).count() < cells:
        if time.time() - sent > RUN_TIMEOUT_SECONDS:
            raise SystemExit(f"only {rows.filter(status__in=done).count()} of {cells} finished")
        time.sleep(0.1)
    last = rows.aggregate(last=Max("finished_at"))["last"]
    busy, idle = (now - then for now, then in zip(_cpu_busy(), busy_before, strict=True))
    workers_cpu = cpu_seconds(queue) - workers_before
    stats = server.stats()
    latencies = list(
        Run.objects.filter(group_id=response.json()["group_id"])
        .exclude(kind="invocation")
        .values_list("latency_ms", flat=True)
    )
    return {
        "wall": last.timestamp() - sent,
        "succeeded": rows.filter(status="succeeded").count(),
        "finished": Test.objects.get(pk=test_id).status == "finished",
        "busy": busy / (busy + idle),
        "stats": stats,
        "run_p50": statistics.median(latencies),
        "run_p95": percentile(latencies, 95),
        "runs": len(latencies),
        "cpu": workers_cpu,
    }


def promptfoo_install() -> Path | None:
    """promptfoo as pinned in bench/promptfoo/package.json, installed into var/promptfoo."""
    pinned = ROOT / "bench" / "promptfoo" / "package.json"
    binary = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"
    installed = PROMPTFOO_DIR / "package.json"
    current = binary.exists() and installed.exists() and installed.read_text() == pinned.read_text()
    if not current and not _npm_install(pinned, installed, binary):
        return None
    # promptfoo 0.120.0 installed as a dependency looks for its migrations in <package>/drizzle
    # (they ship in dist/drizzle) and exits at start-up: point the one at the other.
    package = PROMPTFOO_DIR / "node_modules" / "promptfoo"
    if not (package / "drizzle").exists() and (package / "dist" / "drizzle").exists():
        (package / "drizzle").symlink_to(package / "dist" / "drizzle")
    return binary


def _npm_install(pinned: Path, installed: Path, binary: Path) -> bool:
    if shutil.which("npm") is None:
        print("  promptfoo: npm not found, skipped")
        return False
    PROMPTFOO_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(pinned, installed)
    print("  installing promptfoo (npm install into var/promptfoo) ...", flush=True)
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PROMPTFOO_DIR,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0 or not binary.exists():
        print(f"  promptfoo install failed: {result.stderr[-2000:]}")
        return False
    return True


def promptfoo_config(base_url: str, agents, scenarios) -> dict:
    """The grid's shape for promptfoo: ten models, five agent prompts, twenty scenarios."""
    return {
        "description": "Glow grid 10 x 5 x 20 against the latency server",
        "prompts": [
            {"id": f"agent-{n}", "raw": f"{agent.system_prompt} {{{{question}}}}"}
            for n, agent in enumerate(agents)
        ],
        "providers": [
            {
                "id": f"openai:chat:latency-{n}",
                "label": f"latency-{n}",
                "config": {"apiBaseUrl": base_url, "apiKey": "not-needed"},
            }
            for n in range(GRID[0])
        ],
        "tests": [
            {"vars": {"question": f"{scenario.title}: {scenario.context}"}}
            for scenario in scenarios
        ],
    }


def run_promptfoo(binary: Path, config: dict, concurrency: int, server: ServerProcess) -> dict:
    with tempfile.TemporaryDirectory(prefix="glow-promptfoo-") as work:
        path = Path(work) / "promptfooconfig.yaml"
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        env = {
            **os.environ,
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_CONFIG_DIR": work,
            "OPENAI_API_KEY": "not-needed",
        }
        command = [str(binary), "eval", "-c", str(path), "-j", str(concurrency), "--no-cache"]
        command += ["--no-progress-bar", "--no-table", "-o", str(Path(work) / "out.json")]
        server.reset()
        busy_before = _cpu_busy()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
        wall = time.time() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - children.ru_utime + after.ru_stime - children.ru_stime
        busy, idle = (now - then for now, then in zip(_cpu_busy(), busy_before, strict=True))
        if result.returncode not in (0, 100):  # 100: some test "failed" (no assertions here)
            print(f"  promptfoo exited {result.returncode}: {result.stderr[-2000:]}")
        return {"wall": wall, "stats": server.stats(), "busy": busy / (busy + idle), "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--no-promptfoo", action="store_true")
    parser.add_argument("--drop", action="store_true", help="drop the bench database after")
    args = parser.parse_args(argv)

    if not django_on_services("remote_grid"):
        return 0
    import httpx

    from glow.accounts.services import api_key_create

    binary = None if args.no_promptfoo else promptfoo_install()
    server = ServerProcess()
    cells = GRID[0] * GRID[1] * GRID[2]
    glow: dict[int, dict] = {}
    foo: dict[int, dict] = {}
    try:
        with own_database("remote_grid", keep=not args.drop) as database:
            admin, evaluation, models, agents, scenarios = catalog(server.base_url)
            key = api_key_create(profile=admin).plaintext
            env = production_env(
                database,
                GLOW_AI_PROVIDER="openai",
                GLOW_OPENAI_BASE_URL=server.base_url,
                OPENAI_API_KEY="not-needed",
            )

            def body(concurrency: int, title: str, model_rows=models) -> dict:
                return start_body(
                    evaluation,
                    models=model_rows,
                    agents=agents,
                    scenarios=scenarios,
                    concurrency=concurrency,
                    title=title,
                )

            print(f"remote grid: {cells} cells, {args.workers} Celery worker processes")
            with (
                serve(env) as (url,),
                celery_workers(env, processes=args.workers),
                httpx.Client(
                    base_url=f"{url}/api/v5/artifacts", headers={"X-Api-Key": key}, timeout=60
                ) as client,
            ):
                # A small grid first: every worker process imports, connects and warms up.
                queue = env["CELERY_TASK_DEFAULT_QUEUE"]
                run_glow(client, body(64, "Remote grid warm-up", models[:1]), 100, server, queue)
                for concurrency in args.concurrency:
                    result = run_glow(
                        client,
                        body(concurrency, f"Remote grid c{concurrency}"),
                        cells,
                        server,
                        queue,
                    )
                    glow[concurrency] = result
                    report_glow(concurrency, result)
            if binary is not None:
                config = promptfoo_config(server.base_url, agents, scenarios)
                for concurrency in args.concurrency:
                    foo[concurrency] = run_promptfoo(binary, config, concurrency, server)
                    report_promptfoo(concurrency, foo[concurrency])
    finally:
        server.stop()
    return verdicts(glow, foo, cells)


def floor_of(result: dict, concurrency: int) -> float:
    return result["stats"]["sum_ms"] / 1000 / concurrency


def report_glow(concurrency: int, result: dict) -> None:
    stats = result["stats"]
    floor = floor_of(result, concurrency)
    print(
        f"  glow c{concurrency}: wall {result['wall']:.2f} s, floor {floor:.2f} s "
        f"(sum {stats['sum_ms'] / 1000:.0f} s over {stats['calls']} calls), ratio "
        f"{result['wall'] / floor:.2f}, in flight at most {stats['max_in_flight']}, "
        f"run latency_ms p50 {result['run_p50']:.0f} / p95 {result['run_p95']:.0f} (server p50 "
        f"{statistics.median(stats['latencies_ms']):.0f}), {result['succeeded']} succeeded, "
        f"machine busy {result['busy']:.0%}, Celery workers' CPU {result['cpu']:.1f} s "
        f"({result['cpu'] / stats['calls'] * 1000:.2f} ms per call)",
        flush=True,
    )


def report_promptfoo(concurrency: int, result: dict) -> None:
    stats = result["stats"]
    floor = floor_of(result, concurrency) or float("nan")
    print(
        f"  promptfoo -j {concurrency}: wall {result['wall']:.2f} s (start-up included), floor "
        f"{floor:.2f} s over {stats['calls']} calls, ratio {result['wall'] / floor:.2f}, in flight "
        f"at most {stats['max_in_flight']}, machine busy {result['busy']:.0%}, promptfoo's CPU "
        f"{result['cpu']:.1f} s ({result['cpu'] / max(1, stats['calls']) * 1000:.2f} ms per call)",
        flush=True,
    )


def verdicts(glow: dict, foo: dict, cells: int) -> int:
    ok = True
    for concurrency, result in glow.items():
        stats = result["stats"]
        floor = floor_of(result, concurrency)
        ratio = result["wall"] / floor
        budget = BUDGET.get(concurrency)
        passed = budget is None or ratio <= budget
        ok = ok and passed and result["succeeded"] == cells and result["finished"]
        figure(
            f"remote grid c{concurrency}: test/start -> last cell graded ({stats['calls']} calls, "
            f"{result['succeeded']} cells succeeded, busy {result['busy']:.0%})",
            f"<= {budget}x floor" if budget else "-",
            f"{result['wall']:.2f} s",
            passed if budget else None,
            p95=f"floor {floor:.2f} s",
            ratio=f"{ratio:.2f}x floor",
        )
        figure(
            f"remote grid c{concurrency}: calls in flight at most (server)",
            f"{concurrency}",
            f"{stats['max_in_flight']}",
            None,
        )
        server_p50 = statistics.median(stats["latencies_ms"])
        close = abs(result["run_p50"] - server_p50) <= 20
        ok = ok and close
        figure(
            f"remote grid c{concurrency}: run latency_ms p50 vs the server's p50",
            "within 20 ms",
            f"{result['run_p50']:.0f} ms (server {server_p50:.0f} ms)",
            close,
            p95=f"{result['run_p95']:.0f} ms",
        )
        figure(
            f"remote grid c{concurrency}: Celery workers' CPU per model call",
            "-",
            f"{result['cpu'] / stats['calls'] * 1000:.2f} ms",
            None,
            ratio=f"{result['cpu']:.1f} CPU-s in all",
        )
        per_call = result["wall"] / stats["calls"] * 1000
        pf = foo.get(concurrency)
        if pf is not None:
            pf_stats = pf["stats"]
            pf_floor = floor_of(pf, concurrency) or float("nan")
            pf_per_call = pf["wall"] / max(1, pf_stats["calls"]) * 1000
            figure(
                f"promptfoo -j {concurrency}: start -> exit ({pf_stats['calls']} calls, "
                f"in flight at most {pf_stats['max_in_flight']}, busy {pf['busy']:.0%})",
                "-",
                f"{pf['wall']:.2f} s",
                None,
                p95=f"floor {pf_floor:.2f} s",
                ratio=f"{pf['wall'] / pf_floor:.2f}x floor",
            )
            figure(
                f"promptfoo -j {concurrency}: its CPU per model call",
                "-",
                f"{pf['cpu'] / max(1, pf_stats['calls']) * 1000:.2f} ms",
                None,
                ratio=f"{pf['cpu']:.1f} CPU-s in all",
            )
            better = per_call <= pf_per_call
            if concurrency == 64:
                ok = ok and better
            figure(
                f"wall per model call at c{concurrency}: Glow vs promptfoo",
                "<= promptfoo's" if concurrency == 64 else "-",
                f"{per_call:.1f} ms",
                better if concurrency == 64 else None,
                ratio=f"promptfoo {pf_per_call:.1f} ms",
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
