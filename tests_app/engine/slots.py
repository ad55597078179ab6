"""What an engine's cells share, read once (SlotCatalog), and what they did since the last write (Writes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from glow.catalog.models import Rubric, Tool
from system.models import Run
from tests_app.models import (
    Invocation,
    InvocationStatus,
    Test,
    ToolCall,
)

TOOL_CALL_EVENT = "InvocationToolCallEvent"
TEST_PROGRESS_EVENT = "TestProgressEvent"


class SlotCatalog:
    """The rows an engine's cells share (the test with its eval and group; models, scenarios
    with their personas, agents with their tools, the eval's rubric), each read once for the
    engine's life: a worker drains one test, so it runs against the catalog as it first read it."""

    def __init__(self) -> None:
        self.tests: dict = {}
        self.models: dict = {}
        self.scenarios: dict = {}
        self.agents: dict = {}
        self.parameters: dict = {}
        self.tools: dict = {}
        self.rubrics: dict = {}

    def attach(self, invocations: list[Invocation]) -> None:
        """Set each invocation's model, scenario (with persona) and agent, reading the missing."""
        from glow.catalog.models import Agent, AIModel, ParameterSet, Scenario

        for cache, name, queryset in (
            (self.models, "model_id", AIModel.objects.all()),
            (self.scenarios, "scenario_id", Scenario.objects.select_related("persona")),
            (self.agents, "agent_id", Agent.objects.select_related("parameter_set")),
            (self.parameters, "parameter_set_id", ParameterSet.objects.all()),
        ):
            missing = {getattr(row, name) for row in invocations} - cache.keys() - {None}
            if missing:
                cache.update(queryset.in_bulk(missing))
        missing = {row.agent_id for row in invocations} - self.tools.keys()
        if missing:
            found = _tools_by_agent(missing)
            self.tools.update({agent_id: found.get(agent_id, []) for agent_id in missing})
        for row in invocations:
            row.model = self.models[row.model_id]
            row.scenario = self.scenarios[row.scenario_id]
            row.agent = self.agents[row.agent_id]
            row.parameter_set = self.parameters.get(row.parameter_set_id)

    def test(self, test_id) -> Test | None:
        if test_id not in self.tests:
            self.tests[test_id] = (
                Test.objects.select_related("eval", "group").filter(pk=test_id).first()
            )
        return self.tests[test_id]

    def rubric(self, rubric_id) -> tuple[Rubric, list[dict]]:
        if rubric_id not in self.rubrics:
            rubric = Rubric.objects.prefetch_related("groups__standards").get(pk=rubric_id)
            self.rubrics[rubric_id] = (rubric, rubric.structure())
        return self.rubrics[rubric_id]


class CellHalted(Exception):
    """The cell was halted or taken over: it makes no further call."""


@dataclass
class Writes:
    """What cells did since the last write, in the order they did it (the loop thread appends
    under Engine.lock; the engine's thread takes the whole lot at once)."""

    runs: list[Run] = field(default_factory=list)
    tool_rows: list[ToolCall] = field(default_factory=list)
    items: list[tuple[Run, str, dict]] = field(default_factory=list)
    touched: dict = field(default_factory=dict)  # cell -> its progress fields then
    ended: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.items or self.touched or self.ended)


def _tally_before(tally: dict, later: list[str]) -> dict:
    """test_progress's tally as it stood before the cells of `later` statuses ended."""
    counts = dict(tally["counts"])
    for status in later:
        counts[status] -= 1
        counts[InvocationStatus.RUNNING] = counts.get(InvocationStatus.RUNNING, 0) + 1
    done, total = tally["done"] - len(later), tally["total"]
    return {
        **tally,
        "done": done,
        "percentage": round(done * 100 / total) if total else 100,
        "finished": done == total,
        "counts": {status: count for status, count in counts.items() if count},
    }


WRITTEN_FIELDS = [
    "run_id",
    "transcript",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "status",
    "finished_at",
    "error",
    "lease_expires_at",
]


PROGRESS_FIELDS = ["transcript", "input_tokens", "output_tokens", "total_tokens", "cost"]


def _tools_by_agent(agent_ids: set) -> dict[Any, list[Tool]]:
    """Each agent's tools by name, as Conversation reads them, in one query."""
    through = Tool.agents.through
    tools: dict[Any, list[Tool]] = {}
    for link in through.objects.filter(agent_id__in=agent_ids).select_related("tool"):
        tools.setdefault(link.agent_id, []).append(link.tool)
    for rows in tools.values():
        rows.sort(key=lambda tool: tool.name)
    return tools


def _envelope_params(invocation: Invocation) -> dict:
    """What an invocation's envelope run records of the cell it runs."""
    return {
        "test_id": str(invocation.test_id),
        "invocation_id": str(invocation.pk),
        "scenario_id": str(invocation.scenario_id),
        "agent_id": str(invocation.agent_id),
    }


def _ids(invocation: Invocation) -> dict:
    return {"test_id": str(invocation.test_id), "invocation_id": str(invocation.pk)}
