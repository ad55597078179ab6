"""`python -m bench [name ...]`: run the benchmark modules of bench/ and print their figures as a table.

Each module runs in its own process (its own Django setup and database) with a time limit;
a module that fails, times out or reports a figure over budget makes the exit status 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

import bench

TIME_LIMIT_SECONDS = 600


def discover() -> list[str]:
    names = []
    for module in pkgutil.iter_modules(bench.__path__):
        if module.name.startswith("_"):
            continue
        spec = importlib.util.find_spec(f"bench.{module.name}")
        if spec and spec.origin and "def main(" in Path(spec.origin).read_text():
            names.append(module.name)
    return sorted(names)


def run(name: str, extra: list[str]) -> tuple[int, list[list[str]], float]:
    started = time.monotonic()
    print(f"== bench.{name}", flush=True)
    process = subprocess.Popen(
        [sys.executable, "-m", f"bench.{name}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rows = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(bench.FIGURE_PREFIX):
                rows.append(line.rstrip("\n").split("\t")[1:])
            print(f"   {line}", end="", flush=True)
        code = process.wait(timeout=TIME_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        code = -1
    return code, rows, time.monotonic() - started


HEADER = ["benchmark", "figure", "budget", "measured (p50 or value)", "p95", "ratio", "result"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [HEADER, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def core_speed() -> float:
    """Seconds one core takes for a fixed pure-Python loop: the grid is CPU-bound, so its figure
    moves with this from host to host even when the code and the load are the same."""
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return time.perf_counter() - started


def machine() -> str:
    """What the figures were measured on, and how busy it was."""

    def output(*command: str) -> str:
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except OSError:
            return "?"

    memory = next(
        (line.split(":")[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal")),
        "?",
    )  # fmt: skip
    return "\n".join(
        [
            f"- nproc: {os.cpu_count()}, memory: {memory}",
            f"- one core's speed: {core_speed():.2f} s for 10,000,000 Python loop additions "
            "(hosts of one kind differ: compare figures across runs with this)",
            f"- uname -a: {output('uname', '-a')}",
            f"- Python {sys.version.split()[0]}; {output('psql', '--version')}",
            f"- load average before the run (1, 5, 15 min): {os.getloadavg()}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available})")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as Markdown")
    argv = sys.argv[1:] if argv is None else argv
    # Options after `--` go to the one benchmark named: python -m bench generation -- --watchers 200
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    unknown = sorted(set(args.names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available}")
    if extra and len(args.names) != 1:
        parser.error(f"options {extra} go to one benchmark: name it")
    summary, failed = [], False
    host = machine()
    started = time.monotonic()
    for name in args.names or available:
        code, rows, seconds = run(name, extra)
        summary.extend([name, *row] for row in rows)
        summary.append([name, "wall time of the benchmark", "-", f"{seconds:.0f} s", "-", "-", "-"])
        if code != 0 or not rows:
            summary.append(
                [
                    name,
                    "exit status",
                    "0",
                    f"{code} after {seconds:.0f} s",
                    "-",
                    "-",
                    "FAIL" if code else "-",
                ]
            )
        failed = failed or code != 0 or any(row[-1] == "FAIL" for row in rows)
    elapsed = time.monotonic() - started
    print()
    print(table(summary))
    print(f"\nAll benchmarks: {elapsed:.0f} s on\n{host}")
    if args.markdown:
        Path(args.markdown).write_text(
            f"{markdown(summary)}\n\nAll benchmarks: {elapsed:.0f} s.\n\n{host}\n"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
