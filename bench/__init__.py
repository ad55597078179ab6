"""Performance benchmarks (`make bench`, `python -m bench`): each module here checks DESIGN.md section 7.

A benchmark is a module `bench/<name>.py` with `main(argv=None) -> int` (0: within budget),
runnable alone as `python -m bench.<name>`. It reports each figure with `figure(...)`; the
runner (`python -m bench [name ...]`) runs every module in its own process and prints all
figures as one table.
"""

from __future__ import annotations

import math

FIGURE_PREFIX = "FIGURE\t"


def figure(name: str, budget: str, measured: str, ok: bool | None) -> None:
    """One row of the results table (ok None: informational, no budget)."""
    verdict = "-" if ok is None else ("pass" if ok else "FAIL")
    print(f"{FIGURE_PREFIX}{name}\t{budget}\t{measured}\t{verdict}", flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (0 < pct <= 100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]
