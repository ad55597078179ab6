"""benchmark/compare: two agents or two models over the cells they share, or a test against its
baseline; paired statistics over cells, and which cells differ beyond the noise of repeats."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from glow.core import stats
from glow.core.errors import ApplicationError
from tests_app.selectors import benchmark_grid, cell_key


def _round(value, digits: int = 2):
    return None if value is None else round(value, digits)


def _labels(grid: dict) -> dict[str, str]:
    return {
        str(entry["id"]): entry["title"]
        for name in ("models", "scenarios", "agents")
        for entry in grid["axes"][name]
    }


def _pair(key: dict, label: str, first: list[float], second: list[float], group=None) -> dict:
    """One cell (or one standard group of a cell): each side's mean with its interval over
    repeats, the difference second - first and its Welch interval, and a verdict."""
    a, b = stats.mean_interval(first), stats.mean_interval(second)
    difference = None if a.mean is None or b.mean is None else b.mean - a.mean
    interval = stats.difference_interval(first, second)
    if interval is None:
        verdict = "not enough runs"
    elif interval[0] > 0:
        verdict = "better"
    elif interval[1] < 0:
        verdict = "worse"
    else:
        verdict = "no clear difference"
    return {
        "key": key,
        "label": label,
        "standard_group_id": group,
        "a": a.as_dict(),
        "b": b.as_dict(),
        "difference": _round(difference),
        "difference_ci": [_round(interval[0]), _round(interval[1])] if interval else None,
        "verdict": verdict,
    }


def _percents(cells: list[dict]) -> list[float]:
    return [cell["percent"] for cell in cells if cell["percent"] is not None]


def _group_percents(cells: list[dict], group_id) -> list[float]:
    return [
        entry["percent"]
        for cell in cells
        for entry in cell["groups"]
        if entry["standard_group_id"] == group_id and entry["percent"] is not None
    ]


def _summary(pairs: list[dict]) -> dict:
    """Paired over cells: each cell's mean difference is one pair (repeats are averaged first,
    so a cell counts once however often it ran)."""
    differences = [pair["difference"] for pair in pairs if pair["difference"] is not None]
    interval = stats.paired_bootstrap_ci(differences)
    return {
        "n_pairs": len(differences),
        "mean_difference": _round(sum(differences) / len(differences)) if differences else None,
        "difference_ci": [_round(interval[0]), _round(interval[1])] if interval else None,
        "sign_test_p": _round(stats.sign_test_p(differences), 4),
        "wilcoxon_p": _round(stats.wilcoxon_p(differences), 4),
    }


def _side(grid: dict, axis: str, pk) -> dict:
    titles = {str(entry["id"]): entry["title"] for entry in grid["axes"][axis]}
    if str(pk) not in titles:
        field = "agent_ids" if axis == "agents" else "model_ids"
        raise ApplicationError(
            f"{pk} is not one of this test's {axis}.",
            code="not_in_test",
            fields={field: [f"Not in this test: {pk}."]},
        )
    return {"id": pk, "title": titles[str(pk)]}


def _within(grid: dict, axis: str, first, second) -> dict:
    """Two agents (or models) of one test, paired over the other two axes."""
    name = axis[:-1]
    a, b = _side(grid, axis, first), _side(grid, axis, second)
    labels = _labels(grid)
    others = [other for other in ("model", "scenario", "agent") if other != name]
    runs: dict = defaultdict(lambda: {"a": [], "b": []})
    for cell in grid["cells"]:
        side = {str(a["id"]): "a", str(b["id"]): "b"}.get(str(cell[f"{name}_id"]))
        if side is not None:
            runs[tuple(str(cell[f"{other}_id"]) for other in others)][side].append(cell)
    pairs = []
    for key, sides in runs.items():
        if not sides["a"] or not sides["b"]:
            continue  # a cell only one side ran is no pair
        pairs.append(
            _pair(
                dict(zip([f"{other}_id" for other in others], key, strict=True)),
                " · ".join(labels[pk] for pk in key),
                _percents(sides["a"]),
                _percents(sides["b"]),
            )
        )
    return {"kind": axis, "a": a, "b": b, "pairs": pairs, "group_pairs": []}


def _against(grid: dict, baseline: dict) -> dict:
    """A run against its baseline: the same cells and standard groups, regressions and
    improvements beyond the noise of repeats."""
    labels = {**_labels(baseline), **_labels(grid)}
    before: dict = defaultdict(list)
    after: dict = defaultdict(list)
    for cell in baseline["cells"]:
        before[cell_key(cell)].append(cell)
    for cell in grid["cells"]:
        after[cell_key(cell)].append(cell)
    pairs, group_pairs = [], []
    groups = [(g["standard_group_id"], g["name"]) for g in grid["standard_groups"]]
    for key in [key for key in after if key in before]:
        ids = dict(zip(("model_id", "scenario_id", "agent_id"), key, strict=True))
        label = " · ".join(labels[pk] for pk in key)
        pairs.append(_pair(ids, label, _percents(before[key]), _percents(after[key])))
        for group_id, group_name in groups:
            group_pairs.append(
                _pair(
                    ids,
                    f"{label} · {group_name}",
                    _group_percents(before[key], group_id),
                    _group_percents(after[key], group_id),
                    group=group_id,
                )
            )
    return {
        "kind": "tests",
        "a": {"id": baseline["test_id"], "title": baseline["title"]},
        "b": {"id": grid["test_id"], "title": grid["title"]},
        "pairs": pairs,
        "group_pairs": group_pairs,
    }


def benchmark_compare(
    *, actor, test_id: Any, agent_ids=None, model_ids=None, baseline_test_id=None
) -> dict:
    """b against a (the second agent or model against the first; the test against its
    baseline): per cell, overall paired statistics, and the cells that differ."""
    grid = benchmark_grid(actor=actor, test_id=test_id)
    given = [
        name
        for name, value in (
            ("agent_ids", agent_ids),
            ("model_ids", model_ids),
            ("baseline_test_id", baseline_test_id),
        )
        if value
    ]
    if len(given) != 1:
        raise ApplicationError(
            "Give exactly one of agent_ids, model_ids or baseline_test_id.",
            code="compare_what",
            fields={"agent_ids": ["Two agents, two models, or a baseline test."]},
        )
    pair = agent_ids or model_ids
    if pair and len(pair) != 2:
        raise ApplicationError(
            "Name exactly two to compare: A, then B.",
            code="compare_two",
            fields={given[0]: ["Exactly two ids."]},
        )
    if baseline_test_id is not None:
        baseline = benchmark_grid(actor=actor, test_id=baseline_test_id)
        if baseline["eval_id"] != grid["eval_id"]:
            raise ApplicationError(
                "The baseline test measures another eval.",
                code="other_eval",
                fields={"baseline_test_id": ["Not the same eval."]},
            )
        found = _against(grid, baseline)
    elif agent_ids:
        found = _within(grid, "agents", *agent_ids)
    else:
        found = _within(grid, "models", *model_ids)
    every = found["pairs"] + found["group_pairs"]
    return {
        **found,
        "test_id": grid["test_id"],
        **_summary(found["pairs"]),
        "differing": [pair for pair in found["pairs"] if pair["verdict"] in ("better", "worse")],
        "regressions": [pair for pair in every if pair["verdict"] == "worse"],
        "improvements": [pair for pair in every if pair["verdict"] == "better"],
    }
