"""Reads for tests: scoping, access, the benchmark grid, an invocation's trace, export rows."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from glow.catalog.models import StandardGroup
from glow.core.registry import registry
from glow.core.selectors import artifact_access, artifact_queryset
from system.models import Event, Run
from tests_app.models import DONE, Feedback, Invocation, Test, ToolCall


def test_scope(queryset: QuerySet, actor, prefix: str = "") -> QuerySet:
    """Staff tooling: admins see the organization, instructors their departments' tests and their own."""
    if actor.is_admin:
        return queryset
    if actor.is_instructor:
        return queryset.filter(
            Q(**{f"{prefix}department__isnull": True})
            | Q(**{f"{prefix}department_id__in": actor.department_ids()})
            | Q(**{f"{prefix}started_by": actor})
        )
    return queryset.none()


def invocation_scope(queryset: QuerySet, actor) -> QuerySet:
    return test_scope(queryset, actor, prefix="test__")


def test_access(*, actor, pk: Any, for_update: bool = False) -> Test:
    return artifact_access(actor=actor, family=registry.get("test"), pk=pk, for_update=for_update)


def invocation_access(*, actor, pk: Any, for_update: bool = False) -> Invocation:
    return artifact_access(
        actor=actor, family=registry.get("invocation"), pk=pk, for_update=for_update
    )


def test_progress(*, test_id: Any) -> dict:
    counts = dict(
        Invocation.objects.filter(test_id=test_id)
        .order_by()
        .values("status")
        .annotate(total=Count("pk"))
        .values_list("status", "total")
    )
    total = sum(counts.values())
    done = sum(counts.get(str(status), 0) for status in DONE)
    return {
        "done": done,
        "total": total,
        "percentage": round(done * 100 / total) if total else 100,
        "finished": done == total,
        "counts": counts,
    }


# -- benchmark ------------------------------------------------------------------------------------


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _percent(score: float | None, total: int) -> float | None:
    if score is None or not total:
        return None
    return round(score * 100 / total, 1)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _group_scores(invocation: Invocation, groups: list, feedback: dict) -> list[dict]:
    """Staff feedback for a standard group (mean over tool calls) wins over the grader's score."""
    grade = getattr(invocation, "grade", None)
    graded = {}
    if grade is not None:
        graded = {str(item.get("standard_group_id")): item.get("score") for item in grade.groups}
    scores = []
    for group in groups:
        score = None
        if grade is not None:
            score = feedback.get((grade.pk, group.pk), graded.get(str(group.pk)))
        score = _number(score) if isinstance(score, Decimal) else score
        scores.append(
            {
                "standard_group_id": group.pk,
                "name": group.name,
                "score": None if score is None else round(float(score), 2),
                "total_points": group.points,
                "percent": _percent(score, group.points),
            }
        )
    return scores


def _cell(invocation: Invocation, groups: list, feedback: dict) -> dict:
    grade = getattr(invocation, "grade", None)
    score = _number(grade.score) if grade is not None else None
    total = grade.total_points if grade is not None else sum(group.points for group in groups)
    return {
        "model_id": invocation.model_id,
        "scenario_id": invocation.scenario_id,
        "agent_id": invocation.agent_id,
        "invocation_id": invocation.pk,
        "grade_id": grade.pk if grade is not None else None,
        "status": invocation.status,
        "score": score,
        "total_points": total,
        "percent": _percent(score, total),
        "groups": _group_scores(invocation, groups, feedback),
        "input_tokens": invocation.input_tokens,
        "output_tokens": invocation.output_tokens,
        "tokens": invocation.total_tokens,
        "cost": str(invocation.cost),
        "error": invocation.error,
    }


def _nearest_rank(values: list[int], pct: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)), 1) - 1]


def _latency(cells: list[dict]) -> dict:
    """p50 and p95 of the cells' latency_ms (the model under test answering: its runs' own)."""
    values = [cell["latency_ms"] for cell in cells if cell["latency_ms"] is not None]
    return {
        "latency_p50_ms": _nearest_rank(values, 50),
        "latency_p95_ms": _nearest_rank(values, 95),
    }


def _cell_latencies(test: Test, invocations: list[Invocation]) -> dict:
    """Each cell's latency: the sum of its agent turns' latency_ms in its latest run (one query)."""
    started = {invocation.pk: invocation.started_at for invocation in invocations}
    totals: dict = {}
    if test.group_id is None:
        return totals
    for artifact_id, begun, latency in Run.objects.filter(
        group_id=test.group_id, kind="agent_turn", status="succeeded"
    ).values_list("artifact_id", "started_at", "latency_ms"):
        since = started.get(artifact_id)
        if latency is None or since is None or begun < since:
            continue  # an earlier run of a cell that ran again
        totals[artifact_id] = totals.get(artifact_id, 0) + latency
    return totals


def _axis(name: str, order: list[str], cells: list[dict], labels: dict) -> list[dict]:
    key = f"{name}_id"
    seen = [pk for pk in order if pk in labels]
    seen += [pk for pk in labels if pk not in seen]
    entries = []
    for pk in seen:
        mine = [cell for cell in cells if str(cell[key]) == pk]
        entries.append(
            {
                "id": pk,
                "title": labels[pk],
                "cell_count": len(mine),
                "mean_score": _mean([c["score"] for c in mine if c["score"] is not None]),
                "mean_percent": _mean([c["percent"] for c in mine if c["percent"] is not None]),
                "tokens": sum(c["tokens"] for c in mine),
                "cost": str(sum((Decimal(c["cost"]) for c in mine), Decimal("0"))),
                **_latency(mine),
            }
        )
    return entries


def benchmark_grid(*, actor, test_id: Any) -> dict:
    """The model x scenario x agent grid of a test: a fixed number of queries for any size."""
    family = registry.get("test")
    test = artifact_access(
        actor=actor,
        family=family,
        pk=test_id,
        queryset=artifact_queryset(actor=actor, family=family).select_related("eval"),
    )
    groups = list(
        StandardGroup.objects.filter(rubric_id=test.eval.rubric_id)
        .annotate(points=Coalesce(Sum("standards__points"), 0))
        .order_by("position", "name")
    )
    invocations = list(
        Invocation.objects.filter(test=test)
        .select_related("model", "scenario", "agent", "grade")
        .order_by("position", "created_at")
    )
    feedback = {
        (row["grade_id"], row["standard_group_id"]): row["mean"]
        for row in Feedback.objects.filter(grade__invocation__test=test)
        .order_by()
        .values("grade_id", "standard_group_id")
        .annotate(mean=Avg("score"))
    }
    latencies = _cell_latencies(test, invocations)
    cells = [
        {**_cell(invocation, groups, feedback), "latency_ms": latencies.get(invocation.pk)}
        for invocation in invocations
    ]
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    for invocation in invocations:
        labels["model"][str(invocation.model_id)] = invocation.model.title
        labels["scenario"][str(invocation.scenario_id)] = invocation.scenario.title
        labels["agent"][str(invocation.agent_id)] = invocation.agent.title
    axes = test.axes or {}
    total_points = sum(group.points for group in groups)
    statuses: dict[str, int] = defaultdict(int)
    for cell in cells:
        statuses[cell["status"]] += 1
    return {
        "benchmark_id": test.pk,
        "test_id": test.pk,
        "title": test.title,
        "status": test.status,
        "eval_id": test.eval_id,
        "eval_title": test.eval.title,
        "total_points": total_points,
        "standard_groups": [
            {"standard_group_id": group.pk, "name": group.name, "total_points": group.points}
            for group in groups
        ],
        "axes": {
            plural: _axis(
                name, [str(pk) for pk in axes.get(f"{name}_ids", [])], cells, labels[name]
            )
            for name, plural in (
                ("model", "models"),
                ("scenario", "scenarios"),
                ("agent", "agents"),
            )
        },
        "cells": cells,
        "means": {
            "mean_score": _mean([c["score"] for c in cells if c["score"] is not None]),
            "mean_percent": _mean([c["percent"] for c in cells if c["percent"] is not None]),
            "tokens": sum(c["tokens"] for c in cells),
            "cost": str(sum((Decimal(c["cost"]) for c in cells), Decimal("0"))),
            "graded_count": sum(1 for c in cells if c["score"] is not None),
            **_latency(cells),
        },
        "counts": dict(statuses),
        "cell_count": len(cells),
    }


# -- trace ----------------------------------------------------------------------------------------


def invocation_trace(*, actor, invocation_id: Any) -> dict:
    """Messages in order with each agent turn's tool calls after it, the lifecycle events, the runs."""
    family = registry.get("invocation")
    invocation = artifact_access(
        actor=actor,
        family=family,
        pk=invocation_id,
        queryset=artifact_queryset(actor=actor, family=family).select_related(
            "test", "model", "scenario", "agent"
        ),
    )
    tool_calls = list(ToolCall.objects.filter(invocation=invocation).order_by("position"))
    by_id = {str(call.pk): call for call in tool_calls}
    events = (
        list(Event.objects.filter(run_id=invocation.run_id).order_by("seq"))
        if invocation.run_id
        else []
    )
    runs = list(
        Run.objects.filter(group_id=invocation.test.group_id, artifact_id=invocation.pk)
        .exclude(pk=invocation.run_id)
        .order_by("created_at")
    )
    items = []
    for index, message in enumerate(invocation.transcript or []):
        items.append({"kind": "message", "position": index, **message})
        for call_id in message.get("tool_call_ids") or []:
            call = by_id.get(str(call_id))
            if call is not None:
                items.append({"kind": "tool_call", **tool_call_body(call)})
    return {
        "invocation": invocation,
        "items": items,
        "tool_calls": [tool_call_body(call) for call in tool_calls],
        "events": [
            {
                "seq": event.seq,
                "event_type": event.event_type,
                "payload": event.payload,
                "created_at": event.created_at,
            }
            for event in events
        ],
        "runs": [
            {
                "run_id": run.pk,
                "kind": run.kind,
                "status": run.status,
                "provider_model": run.provider_model,
                "input_tokens": run.input_tokens,
                "output_tokens": run.output_tokens,
                "cost": str(run.cost),
                "latency_ms": run.latency_ms,
                "error": run.error,
                "created_at": run.created_at,
            }
            for run in runs
        ],
    }


def tool_call_body(call: ToolCall) -> dict:
    return {
        "tool_call_id": call.pk,
        "position": call.position,
        "turn": call.turn,
        "name": call.name,
        "arguments": call.arguments,
        "result": call.result,
        "created_at": call.created_at,
    }


def export_invocations(*, test: Test, invocation_id: Any = None) -> QuerySet:
    """Rows for an export, eager-loaded so streaming them in chunks costs a fixed number of queries."""
    queryset = (
        Invocation.objects.filter(test=test)
        .select_related("model", "scenario", "agent", "grade")
        .prefetch_related("tool_calls")
        .order_by("position", "created_at")
    )
    if invocation_id is not None:
        queryset = queryset.filter(pk=invocation_id)
    return queryset
