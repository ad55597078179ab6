"""The families of this app: test (the fan-out), invocation (one cell) and benchmark (the grid)."""

from __future__ import annotations

from glow.core.registry import Facet, Family, registry
from tests_app import api, lifecycle, selectors
from tests_app import filters as f
from tests_app import serializers as s
from tests_app.models import Invocation, Test


def test_context(test: Test) -> str:
    axes = test.axes or {}
    return (
        f"Test: {test.title} ({test.status})\nEval: {test.eval.title}, {test.eval.turns} turns\n"
        f"{len(axes.get('model_ids', []))} models x {len(axes.get('scenario_ids', []))} scenarios"
        f" x {len(axes.get('agent_ids', []))} agents, concurrency {test.concurrency}"
    )


def invocation_context(invocation: Invocation) -> str:
    lines = [f"Invocation: {invocation.title} ({invocation.status})"]
    lines.extend(
        f"{message.get('role')}: {message.get('content')}"
        for message in invocation.transcript or []
    )
    return "\n".join(lines)


def invocation_problems(invocation: Invocation) -> list[dict]:
    if invocation.error:
        return [{"code": invocation.status, "message": invocation.error, "field": None}]
    return []


FAMILIES = [
    Family(
        name="test",
        plural="tests",
        model=Test,
        viewset=api.TestViewSet,
        output_serializer=s.TestOut,
        write_serializer=s.TestWrite,
        creatable=False,  # test/start creates tests
        filterset=f.TestFilterSet,
        facets=[
            Facet(
                name="eval",
                param="eval_ids",
                field="eval_id",
                label="eval__title",
                search_param="eval_search",
            ),
            Facet(
                name="department",
                param="department_ids",
                field="department_id",
                label="department__name",
                search_param="department_search",
            ),
        ],
        scope=selectors.test_scope,
        writer=lifecycle.test_write,
        context=test_context,
        description="A model x scenario x agent fan-out of an eval: one invocation per cell.",
    ),
    Family(
        name="invocation",
        plural="invocations",
        model=Invocation,
        viewset=api.InvocationViewSet,
        output_serializer=s.InvocationOut,
        filterset=f.InvocationFilterSet,
        facets=[
            Facet(
                name="model",
                param="model_ids",
                field="model_id",
                label="model__title",
                search_param="model_search",
            ),
            Facet(
                name="scenario",
                param="scenario_ids",
                field="scenario_id",
                label="scenario__title",
                search_param="scenario_search",
            ),
            Facet(
                name="agent",
                param="agent_ids",
                field="agent_id",
                label="agent__title",
                search_param="agent_search",
            ),
        ],
        scope=selectors.invocation_scope,
        context=invocation_context,
        problems=invocation_problems,
        description="One cell of a test: an agent on a model talking with a scenario's persona.",
    ),
    Family(
        name="benchmark",
        plural="benchmarks",
        viewset=api.BenchmarkViewSet,
        description="The read-only grid of a test: per-cell scores, tokens, cost; per-axis means.",
    ),
]


def register_all() -> None:
    for family in FAMILIES:
        registry.register(family)
