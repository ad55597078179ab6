"""Staff pages of tests: the list, the benchmark heatmap and an invocation's trace."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from decimal import Decimal

from django import forms
from django.shortcuts import redirect, render
from django.urls import reverse

from glow.core.errors import ApplicationError, NotFound
from glow.core.registry import registry
from glow.core.selectors import artifact_queryset, artifact_search
from system.ledger import session_touch
from system.staff import staff_page
from tests_app import compare, lifecycle, selectors
from tests_app.models import DONE, TestStatus

PAGE_SIZE = 50


def heat(percent: float | None) -> str:
    """Red (0 %) through amber to green (100 %); no grade yet is grey."""
    if percent is None:
        return "background: #eef1f6"
    hue = round(max(0.0, min(100.0, percent)) * 1.2)
    return f"background: hsl({hue}, 70%, 82%)"


def _score(value, total) -> str:
    return "—" if value is None else f"{value:g}/{total}"


def interval_bar(low, mean, high, *, lowest: float = 0.0, highest: float = 100.0) -> dict | None:
    """Where a mean and its interval sit on a lowest..highest track, in percent of its width."""
    if mean is None:
        return None
    span = highest - lowest

    def at(value):
        return round(max(0.0, min(100.0, (value - lowest) * 100 / span)), 1)

    left = at(low) if low is not None else at(mean)
    right = at(high) if high is not None else at(mean)
    return {"left": left, "width": max(0.5, round(right - left, 1)), "mean": at(mean)}


def _figure(value) -> str:
    return "—" if value is None else f"{value:g}"


def cell_title(stat: dict, runs: list[dict], labels: dict) -> str:
    """The hover text: what the cell is, its mean and interval over repeats, per standard
    group, and every staff note on it."""
    lines = [
        f"{labels[str(stat['model_id'])]} · {labels[str(stat['scenario_id'])]} · "
        f"{labels[str(stat['agent_id'])]}",
        f"Runs: {stat['runs']} ({stat['n']} graded)",
        "Status: "
        + ", ".join(
            f"{count} {status}" if len(runs) > 1 else status
            for status, count in Counter(run["status"] for run in runs).items()
        ),
        f"Mean: {_figure(stat['mean'])}%"
        + (
            f", 95% interval {_figure(stat['ci_low'])} to {_figure(stat['ci_high'])}"
            if stat["ci_low"] is not None
            else ""
        ),
    ]
    lines.extend(
        f"{group['name']}: {_figure(group['mean'])}%"
        + (
            f" ({_figure(group['ci_low'])} to {_figure(group['ci_high'])})"
            if group["ci_low"] is not None
            else ""
        )
        for group in stat["groups"]
    )
    for run in runs:
        for note in run["feedback"]:
            where = "whole invocation" if note["scope"] == "invocation" else "tool call"
            lines.append(
                f"Staff on {note['name']} ({where}, run {run['repeat'] + 1}): "
                f"{note['score']:g} — {note['feedback']}"
            )
        if run["error"]:
            lines.append(f"Error (run {run['repeat'] + 1}): {run['error']}")
    tokens = sum(run["tokens"] for run in runs)
    cost = sum(Decimal(run["cost"]) for run in runs)
    lines.append(f"Tokens: {tokens} · Cost: ${cost}")
    latencies = sorted(run["latency_ms"] for run in runs if run.get("latency_ms") is not None)
    if latencies:
        lines.append(f"Model latency: {latencies[len(latencies) // 2]} ms (median of the runs)")
    return "\n".join(lines)


def heatmap(grid: dict) -> dict:
    """Rows are model x agent pairs, columns scenarios; the last column and row are means. Each
    cell is the mean over its repeated runs, with its 95% interval drawn."""
    axes = grid["axes"]
    labels = {
        str(entry["id"]): entry["title"]
        for name in ("models", "scenarios", "agents")
        for entry in axes[name]
    }
    runs_of: dict = {}
    for cell in grid["cells"]:
        runs_of.setdefault(
            (str(cell["model_id"]), str(cell["scenario_id"]), str(cell["agent_id"])), []
        ).append(cell)
    by_key = {
        (stat["model_id"], stat["scenario_id"], stat["agent_id"]): stat
        for stat in grid["cell_stats"]
    }
    rows = []
    for model in axes["models"]:
        for agent in axes["agents"]:
            cells = []
            for scenario in axes["scenarios"]:
                key = (str(model["id"]), str(scenario["id"]), str(agent["id"]))
                stat, runs = by_key.get(key), runs_of.get(key, [])
                cells.append(
                    None
                    if stat is None
                    else {
                        **stat,
                        "invocation_id": runs[0]["invocation_id"],
                        "status": runs[0]["status"] if len(runs) == 1 else f"{len(runs)} runs",
                        "tokens": sum(run["tokens"] for run in runs),
                        "style": heat(stat["mean"]),
                        "hover": cell_title(stat, runs, labels),
                        "bar": interval_bar(stat["ci_low"], stat["mean"], stat["ci_high"]),
                        "half": None
                        if stat["ci_high"] is None
                        else round((stat["ci_high"] - stat["ci_low"]) / 2, 1),
                    }
                )
            means = [cell["mean"] for cell in cells if cell and cell["mean"] is not None]
            mean = round(sum(means) / len(means), 1) if means else None
            rows.append(
                {
                    "model": model,
                    "agent": agent,
                    "cells": cells,
                    "mean": mean,
                    "mean_style": heat(mean),
                }
            )
    scenario_means = [
        {**scenario, "style": heat(scenario["mean_percent"])} for scenario in axes["scenarios"]
    ]
    return {
        "rows": rows,
        "scenarios": axes["scenarios"],
        "scenario_means": scenario_means,
        "overall_style": heat(grid["means"]["mean_percent"]),
        "models": [{**entry, "style": heat(entry["mean_percent"])} for entry in axes["models"]],
        "agents": [{**entry, "style": heat(entry["mean_percent"])} for entry in axes["agents"]],
        "legend": [{"percent": percent, "style": heat(percent)} for percent in range(0, 101, 20)],
        "groups": [
            {**group, "bar": interval_bar(group["ci_low"], group["mean"], group["ci_high"])}
            for group in grid["group_stats"]
        ],
    }


@staff_page
def test_list(request):
    result = artifact_search(
        actor=request.actor,
        family=registry.get("test"),
        params={"page_size": PAGE_SIZE, "show_archived": request.GET.get("archived") == "1"},
    )
    for test in result.rows:
        test.done_count = sum(getattr(test, f"{status}_count") for status in DONE)
    return render(
        request,
        "tests_app/test_list.html",
        {"tests": result.rows, "total_count": result.total_count, "actor": request.actor},
    )


class TestStartForm(forms.Form):
    """What test/start takes, as pickers over the rows the actor may use."""

    eval = forms.ModelChoiceField(queryset=None, label="Eval (its rubric grades every cell)")
    models = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, label="Models"
    )
    scenarios = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, label="Scenarios"
    )
    agents = forms.ModelMultipleChoiceField(
        queryset=None, widget=forms.CheckboxSelectMultiple, label="Agents"
    )
    title = forms.CharField(required=False, max_length=300, label="Title (optional)")
    concurrency = forms.IntegerField(
        required=False, min_value=1, max_value=64, label="Cells run at once (optional)"
    )

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        for name, family in (
            ("eval", "eval"),
            ("models", "model"),
            ("scenarios", "scenario"),
            ("agents", "agent"),
        ):
            rows = artifact_queryset(
                actor=actor, family=registry.get(family), include_archived=False
            )
            self.fields[name].queryset = rows.order_by("title")


@staff_page
def test_new(request):
    form = TestStartForm(request.POST or None, actor=request.actor)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            test, _ = lifecycle.test_start(
                actor=request.actor,
                session=session_touch(actor=request.actor, client_kind="browser", auth="session"),
                eval_id=data["eval"].pk,
                model_ids=[row.pk for row in data["models"]],
                scenario_ids=[row.pk for row in data["scenarios"]],
                agent_ids=[row.pk for row in data["agents"]],
                title=data["title"],
                concurrency=data["concurrency"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.detail)
        else:
            return redirect(reverse("staff-test", kwargs={"pk": test.pk}))
    return render(request, "tests_app/test_new.html", {"form": form, "actor": request.actor})


def _watch_url(test_id) -> str:
    """The test's group channel (runs' events and TestProgressEvent), as the API's watch serves it."""
    from tests_app.models import Test

    group_id = Test.objects.filter(pk=test_id).values_list("group_id", flat=True).first()
    return f"/api/v5/artifacts/test/watch?group_id={group_id}" if group_id else ""


@staff_page
def benchmark(request, pk):
    grid = selectors.benchmark_grid(actor=request.actor, test_id=pk)
    baselines = (
        artifact_queryset(actor=request.actor, family=registry.get("test"))
        .filter(eval_id=grid["eval_id"])
        .exclude(pk=pk)
        .order_by("-created_at")
        .values_list("pk", "title")[:50]
    )
    return render(
        request,
        "tests_app/benchmark.html",
        {
            "grid": grid,
            "map": heatmap(grid),
            "fidelity": selectors.persona_fidelity_by_model(actor=request.actor, test_id=pk),
            "total_cost": Decimal(grid["means"]["cost"]),
            "live": grid["status"] == TestStatus.RUNNING,
            "watch_url": _watch_url(grid["test_id"]),
            "baselines": list(baselines),
            "progress": progress(grid["counts"]),
            "actor": request.actor,
        },
    )


def progress(counts: dict) -> dict:
    """Queued, running, done and failed cells (halted ones count as failed)."""
    return {
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
        "done": counts.get("succeeded", 0) + counts.get("completed", 0),
        "failed": counts.get("failed", 0) + counts.get("terminated", 0),
    }


@staff_page
def benchmark_compare(request, pk):
    """Two agents, two models, or this test against a baseline: benchmark/compare, drawn."""
    params = request.GET
    kind = params.get("kind", "agents")
    try:
        if kind == "baseline":
            result = compare.benchmark_compare(
                actor=request.actor, test_id=pk, baseline_test_id=_uuid(params.get("baseline"))
            )
        else:
            pair = [_uuid(params.get("a")), _uuid(params.get("b"))]
            result = compare.benchmark_compare(
                actor=request.actor,
                test_id=pk,
                **{"model_ids" if kind == "models" else "agent_ids": pair},
            )
        error = ""
    except ApplicationError as exc:
        if isinstance(exc, NotFound):
            raise
        result, error = None, exc.detail
    if result is not None:
        span = max(
            [abs(v) for p in result["pairs"] + result["group_pairs"] for v in _ends(p)] + [10]
        )
        for pair in result["pairs"] + result["group_pairs"]:
            low, high = pair["difference_ci"] or (None, None)
            pair["bar"] = interval_bar(low, pair["difference"], high, lowest=-span, highest=span)
        ci = result["difference_ci"] or [None, None]
        result["bar"] = interval_bar(
            ci[0], result["mean_difference"], ci[1], lowest=-span, highest=span
        )
        result["zero"] = 50.0
        result["span"] = round(span, 1)
    grid = selectors.benchmark_grid(actor=request.actor, test_id=pk)
    return render(
        request,
        "tests_app/benchmark_compare.html",
        {"grid": grid, "result": result, "error": error, "actor": request.actor},
        status=400 if error else 200,
    )


def _ends(pair: dict) -> list[float]:
    values = [pair["difference"], *(pair["difference_ci"] or [])]
    return [value for value in values if value is not None]


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ApplicationError("Choose what to compare.", fields={"a": ["Choose one."]})


@staff_page
def invocation_trace(request, pk):
    trace = selectors.invocation_trace(actor=request.actor, invocation_id=pk)
    for item in trace["items"]:
        if item["kind"] == "tool_call":
            item["arguments_text"] = json.dumps(item["arguments"], ensure_ascii=False)
            item["result_text"] = json.dumps(item["result"], ensure_ascii=False)
    grade = getattr(trace["invocation"], "grade", None)
    return render(
        request,
        "tests_app/invocation.html",
        {
            "invocation": trace["invocation"],
            "trace": trace,
            "grade": grade,
            "actor": request.actor,
        },
    )
