"""`glow --help` and one `glow` call, timed as a user runs them: a fresh process each time.

One uvicorn process serves the embedded profile with the demo data. The CLI's schema cache
(its own XDG_CACHE_HOME) is filled by one warm-up run, so each timed run revalidates it with
If-None-Match and reads the commands from disk on the 304. Measured, interleaved run by run:
- `glow --help`: process start to exit (interpreter start, imports, the 304, the help text);
- `glow personas search --body ...`: process start to exit;
- that search's own request, made from this (warm) process on a fresh connection as the CLI
  makes it; the call's CLI overhead is the CLI's time minus its request's time, run by run.
Wall time moves with the machine's load (other processes take the cores); the CPU time the
process itself used (user + system) is reported beside it. The CLI's modules are compiled to
bytecode first, as `pip install` does (PYTHONDONTWRITEBYTECODE would leave them uncompiled).
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import embedded_env, figure, manage, percentile, serve  # noqa: E402

HELP_BUDGET_S = 0.3
OVERHEAD_BUDGET_S = 0.15
GLOW = Path(sys.executable).parent / "glow"
BODY = {"page_size": 5}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall seconds from spawn to exit; the process's CPU seconds appended to `cpu`."""
    used = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} exited {done.returncode}:\n{done.stderr[-2000:]}")
    if cpu is not None:
        cpu.append(children_cpu() - used)
    return seconds


def request_seconds(url: str, key: str) -> float:
    """The search request alone: a new connection, the CLI's headers and body, the whole answer."""
    parts = urlsplit(url)
    body = json.dumps(BODY).encode()
    headers = {
        "Authorization": f"Bearer {key}",
        "User-Agent": "glow-cli/bench",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("POST", f"{parts.path}/persona/search", body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    seconds = time.perf_counter() - started
    if answer.status != 200:
        raise SystemExit(f"persona/search answered {answer.status}")
    return seconds


def report(name: str, values: list[float], budget: float | None) -> None:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    figure(
        f"{name} (n={len(values)})",
        f"< {budget * 1000:.0f} ms" if budget else "-",
        f"{p50 * 1000:.0f} ms",
        None if budget is None else p50 < budget,
        p95=f"{p95 * 1000:.0f} ms",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    compileall.compile_dir(ROOT / "glow" / "cli", quiet=1)
    compileall.compile_file(ROOT / "glow" / "__init__.py", quiet=1)
    with tempfile.TemporaryDirectory(prefix="glow-bench-cli-") as var:
        server_env = embedded_env(
            var, DEBUG="false", SECURE_SSL_REDIRECT="false", GLOW_THROTTLE_READ="1000000/min"
        )
        key = manage(server_env, "createapikey", "admin").strip().splitlines()[-1]
        with serve(server_env) as urls:
            base = f"{urls[0]}/api/v5/artifacts"
            cli_env = {
                **server_env,
                "GLOW_INSTANCE_URL": base,
                "GLOW_TOKEN": key,
                "XDG_CACHE_HOME": f"{var}/cache",
            }
            call = [str(GLOW), "personas", "search", "--body", json.dumps(BODY)]
            started = time.perf_counter()
            timed([str(GLOW), "--help"], cli_env)  # fetches the schema, fills the cache
            first = time.perf_counter() - started
            timed(call, cli_env)
            request_seconds(base, key)
            python, helps, calls, requests, overheads = [], [], [], [], []
            python_cpu, help_cpu, call_cpu = [], [], []
            for _ in range(args.runs):
                python.append(timed([sys.executable, "-c", "pass"], cli_env, python_cpu))
                helps.append(timed([str(GLOW), "--help"], cli_env, help_cpu))
                calls.append(timed(call, cli_env, call_cpu))
                requests.append(request_seconds(base, key))
                overheads.append(calls[-1] - requests[-1])
    figure("glow --help, no cache yet (fetches the schema)", "-", f"{first * 1000:.0f} ms", None)
    report("glow --help, cached schema revalidated (304)", helps, HELP_BUDGET_S)
    report("glow personas search, whole process", calls, None)
    report("persona/search request alone (warm client)", requests, None)
    report("glow call's own overhead (process - request)", overheads, OVERHEAD_BUDGET_S)
    report("python -c pass, wall (interpreter start, for scale)", python, None)
    report("glow --help, CPU time of the process", help_cpu, None)
    report("glow personas search, CPU time of the process", call_cpu, None)
    report("python -c pass, CPU time", python_cpu, None)
    print(f"load average after the runs: {os.getloadavg()}")
    ok = percentile(helps, 50) < HELP_BUDGET_S and percentile(overheads, 50) < OVERHEAD_BUDGET_S
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
