"""Reads for tests: scoping, access, the benchmark grid, an invocation's trace, export rows."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from glow.ai import fidelity
from glow.catalog.models import StandardGroup
from glow.core import stats
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
    """Staff feedback for a standard group (mean over its rows: tool calls and the invocation as
    a whole) wins over the grader's score."""
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


def _cell(invocation: Invocation, groups: list, feedback: dict, notes: dict) -> dict:
    grade = getattr(invocation, "grade", None)
    score = _number(grade.score) if grade is not None else None
    total = grade.total_points if grade is not None else sum(group.points for group in groups)
    return {
        "model_id": invocation.model_id,
        "scenario_id": invocation.scenario_id,
        "agent_id": invocation.agent_id,
        "invocation_id": invocation.pk,
        "repeat": invocation.repeat,
        "seed": invocation.seed,
        "feedback": notes.get(grade.pk, []) if grade is not None else [],
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
    feedback, notes = _feedback_of(test, groups)
    latencies = _cell_latencies(test, invocations)
    cells = [
        {**_cell(invocation, groups, feedback, notes), "latency_ms": latencies.get(invocation.pk)}
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
        "repeats": test.repeats,
        "cell_stats": cell_stats(cells, groups),
        "group_stats": [
            {
                "standard_group_id": group.pk,
                "name": group.name,
                **stats.mean_interval(
                    [
                        entry["percent"]
                        for cell in cells
                        for entry in cell["groups"]
                        if entry["standard_group_id"] == group.pk and entry["percent"] is not None
                    ]
                ).as_dict(),
            }
            for group in groups
        ],
    }


def _feedback_of(test: Test, groups: list) -> tuple[dict, dict]:
    """Staff feedback of a test in one query: the mean score per (grade, standard group), and
    per grade the notes themselves (on a tool call, or on the invocation as a whole)."""
    names = {group.pk: group.name for group in groups}
    scores: dict = defaultdict(list)
    notes: dict = defaultdict(list)
    rows = (
        Feedback.objects.filter(grade__invocation__test=test)
        .order_by("created_at")
        .values("grade_id", "standard_group_id", "tool_call_id", "score", "feedback")
    )
    for row in rows:
        scores[row["grade_id"], row["standard_group_id"]].append(row["score"])
        notes[row["grade_id"]].append(
            {
                "standard_group_id": row["standard_group_id"],
                "name": names.get(row["standard_group_id"], ""),
                "scope": "tool_call" if row["tool_call_id"] else "invocation",
                "tool_call_id": row["tool_call_id"],
                "score": float(row["score"]),
                "feedback": row["feedback"],
            }
        )
    means = {key: sum(values) / len(values) for key, values in scores.items()}
    return means, notes


def cell_key(cell: dict) -> tuple[str, str, str]:
    return str(cell["model_id"]), str(cell["scenario_id"]), str(cell["agent_id"])


def cell_stats(cells: list[dict], groups: list) -> list[dict]:
    """Per model x scenario x agent cell, over its repeated runs: n, the mean percent with a
    95% interval, the same per standard group, and how much staff feedback it has."""
    by_key: dict = defaultdict(list)
    for cell in cells:
        by_key[cell_key(cell)].append(cell)
    found = []
    for (model_id, scenario_id, agent_id), runs in by_key.items():
        percents = [run["percent"] for run in runs if run["percent"] is not None]
        found.append(
            {
                "model_id": model_id,
                "scenario_id": scenario_id,
                "agent_id": agent_id,
                "runs": len(runs),
                "invocation_ids": [run["invocation_id"] for run in runs],
                **stats.mean_interval(percents).as_dict(),
                "groups": [
                    {
                        "standard_group_id": group.pk,
                        "name": group.name,
                        **stats.mean_interval(
                            [
                                entry["percent"]
                                for run in runs
                                for entry in run["groups"]
                                if entry["standard_group_id"] == group.pk
                                and entry["percent"] is not None
                            ]
                        ).as_dict(),
                        "feedback_count": sum(
                            1
                            for run in runs
                            for note in run["feedback"]
                            if note["standard_group_id"] == group.pk
                        ),
                    }
                    for group in groups
                ],
                "feedback_count": sum(len(run["feedback"]) for run in runs),
            }
        )
    return found


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


def persona_fidelity_by_model(*, actor, test_id: Any) -> list[dict]:
    """Per model that wrote the persona's turns in a test: turns checked and flagged.

    A turn's stored `fidelity_flags` are used when the runner kept them; otherwise the turn
    is checked here (the checks are cheap and pure). Two queries for any size of test.
    """
    test = test_access(actor=actor, pk=test_id)
    invocations = list(
        Invocation.objects.filter(test=test)
        .select_related("scenario__persona")
        .only("transcript", "scenario__title", "scenario__context", "scenario__persona__traits")
    )
    turns = []
    for invocation in invocations:
        scenario = invocation.scenario
        situation = {"title": scenario.title, "context": scenario.context}
        persona = {"traits": scenario.persona.traits}
        earlier: list[str] = []
        for turn in invocation.transcript or []:
            content = str(turn.get("content") or "")
            if turn.get("role") == "persona":
                flags = turn.get("fidelity_flags")
                if flags is None:
                    flags = fidelity.check_reply(
                        content, earlier=earlier, persona=persona, scenario=situation
                    )
                turns.append((turn.get("run_id"), flags))
            earlier.append(content)
    runs = {
        str(row["pk"]): row
        for row in Run.objects.filter(pk__in={run_id for run_id, _ in turns if run_id}).values(
            "pk", "model_id", "model__title", "provider_model"
        )
    }
    by_model: dict[str, dict] = {}
    for run_id, flags in turns:
        run = runs.get(str(run_id)) or {}
        key = str(run.get("model_id") or run.get("provider_model") or "default")
        entry = by_model.setdefault(
            key,
            {
                "model_id": run.get("model_id"),
                "title": run.get("model__title") or run.get("provider_model") or "Default model",
                "flagged": 0,
                "total": 0,
            },
        )
        entry["total"] += 1
        entry["flagged"] += bool(flags)
    for entry in by_model.values():
        entry["rate"] = round(entry["flagged"] / entry["total"], 4)
    return sorted(by_model.values(), key=lambda entry: entry["title"])
