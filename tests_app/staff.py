"""Staff pages of tests: the list, the benchmark heatmap and an invocation's trace."""

from __future__ import annotations

import json
from decimal import Decimal

from django.shortcuts import render

from glow.core.registry import registry
from glow.core.selectors import artifact_search
from system.staff import staff_page
from tests_app import selectors
from tests_app.models import DONE

PAGE_SIZE = 50


def heat(percent: float | None) -> str:
    """Red (0 %) through amber to green (100 %); no grade yet is grey."""
    if percent is None:
        return "background: #eef1f6"
    hue = round(max(0.0, min(100.0, percent)) * 1.2)
    return f"background: hsl({hue}, 70%, 82%)"


def _score(value, total) -> str:
    return "—" if value is None else f"{value:g}/{total}"


def cell_title(cell: dict, labels: dict) -> str:
    """The hover text: what the cell is and every figure it has."""
    lines = [
        f"{labels[str(cell['model_id'])]} · {labels[str(cell['scenario_id'])]} · "
        f"{labels[str(cell['agent_id'])]}",
        f"Status: {cell['status']}",
        f"Score: {_score(cell['score'], cell['total_points'])}"
        + (f" ({cell['percent']:g}%)" if cell["percent"] is not None else ""),
    ]
    lines.extend(
        f"{group['name']}: {_score(group['score'], group['total_points'])}"
        for group in cell["groups"]
    )
    lines.append(f"Tokens: {cell['tokens']} · Cost: ${cell['cost']}")
    if cell.get("latency_ms") is not None:
        lines.append(f"Model latency: {cell['latency_ms']} ms")
    if cell["error"]:
        lines.append(f"Error: {cell['error']}")
    return "\n".join(lines)


def heatmap(grid: dict) -> dict:
    """Rows are model x agent pairs, columns scenarios; the last column and row are means."""
    axes = grid["axes"]
    labels = {
        str(entry["id"]): entry["title"]
        for name in ("models", "scenarios", "agents")
        for entry in axes[name]
    }
    by_key = {
        (str(cell["model_id"]), str(cell["scenario_id"]), str(cell["agent_id"])): cell
        for cell in grid["cells"]
    }
    rows = []
    for model in axes["models"]:
        for agent in axes["agents"]:
            cells = []
            for scenario in axes["scenarios"]:
                cell = by_key.get((str(model["id"]), str(scenario["id"]), str(agent["id"])))
                cells.append(
                    None
                    if cell is None
                    else {
                        **cell,
                        "style": heat(cell["percent"]),
                        "hover": cell_title(cell, labels),
                    }
                )
            percents = [cell["percent"] for cell in cells if cell and cell["percent"] is not None]
            mean = round(sum(percents) / len(percents), 1) if percents else None
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


@staff_page
def benchmark(request, pk):
    grid = selectors.benchmark_grid(actor=request.actor, test_id=pk)
    return render(
        request,
        "tests_app/benchmark.html",
        {
            "grid": grid,
            "map": heatmap(grid),
            "total_cost": Decimal(grid["means"]["cost"]),
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
