"""Runs a test's invocations: claim one within the concurrency limit, converse, record tools, grade.

Every model call is a system.Run in the test's group (through system.services.model_call). Each
invocation also has an envelope Run (kind "invocation") whose events are its lifecycle on the
group's SSE channel. Whoever halts an invocation (stop, terminate, complete) finishes that
envelope; the runner only notices the status change and stops writing.

A test with a high concurrency is run in batches: one worker claims several cells and advances
them together, turn by turn (system.services.model_call_many, system.events.event_emit_many),
so a thousand one-turn cells cost tens of statements per batch instead of a hundred per cell; a
batch whose every call the local simulator answers is computed in memory and written at its end,
in the one transaction that holds its rows (about a dozen statements for the batch).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from glow.ai import CompletionRequest, ProviderError
from glow.catalog.models import Rubric, Tool
from glow.core.bulk import bulk_copy, bulk_set
from system import events
from system.models import FINISHED, Run, RunStatus
from system.services import (
    model_call,
    model_call_many,
    provider_of,
    run_create,
    run_finish,
    run_mark_running,
    runs_booked,
)
from tests_app.models import (
    GradeSource,
    Invocation,
    InvocationStatus,
    Test,
    TestGrade,
    TestStatus,
    ToolCall,
)
from tests_app.selectors import test_progress

logger = logging.getLogger(__name__)

TOOL_CALL_EVENT = "InvocationToolCallEvent"
TEST_PROGRESS_EVENT = "TestProgressEvent"
# A test's concurrency is shared by at most this many worker tasks; each claims its share of the
# slots as one batch (concurrency 4: four tasks of one cell, as if unbatched; 64: four of 16).
WORKERS_PER_TEST = 4
MAX_BATCH = 25

GRADE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "groups": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"group_id": {"type": "string"}, "score": {"type": "number"}},
                "required": ["group_id", "score"],
            },
        },
        "feedback": {"type": "string"},
    },
    "required": ["score", "groups", "feedback"],
}


def batch_size(concurrency: int) -> int:
    """Cells one worker task claims at once for a test of this concurrency."""
    return max(1, min(MAX_BATCH, concurrency // WORKERS_PER_TEST))


def worker_run(*, test_id: Any, worker_token: str) -> int:
    """One worker slot: resume what this token had claimed (a redelivered task), then drain the queue."""
    executed = 0
    resumed = list(
        Invocation.objects.filter(
            test_id=test_id, status=InvocationStatus.RUNNING, worker_token=worker_token
        ).values_list("pk", flat=True)
    )
    for invocation_id in resumed:
        invocation_execute(invocation_id=invocation_id)
        executed += 1
    catalog = SlotCatalog()
    while claimed := invocations_claim(test_id=test_id, worker_token=worker_token):
        if len(claimed) == 1:
            invocation_execute(invocation_id=claimed[0].pk)
        else:
            invocations_execute(invocations=claimed, catalog=catalog)
        executed += len(claimed)
    return executed


def invocation_claim(*, test_id: Any, worker_token: str):
    """The next queued invocation, marked running, if the test has a free slot; else None."""
    claimed = invocations_claim(test_id=test_id, worker_token=worker_token, limit=1)
    return claimed[0].pk if claimed else None


@transaction.atomic
def invocations_claim(
    *, test_id: Any, worker_token: str, limit: int | None = None
) -> list[Invocation]:
    """The next queued invocations (at most `limit`, else the test's batch size), marked running,
    within the test's free slots, in position order; an empty list when none is free or none is
    queued.

    The test row lock serialises claims, so the running count never exceeds the limit; the
    conditional UPDATE is what makes a claim exclusive on SQLite too (no row locks there).
    """
    test = (
        Test.objects.select_for_update()
        .filter(pk=test_id)
        .values_list("status", "concurrency")
        .first()
    )
    if test is None or test[0] != TestStatus.RUNNING:
        return []
    concurrency = test[1]
    running = Invocation.objects.filter(test_id=test_id, status=InvocationStatus.RUNNING).count()
    wanted = min(concurrency - running, limit or batch_size(concurrency))
    if wanted <= 0:
        return []
    queued = Invocation.objects.filter(test_id=test_id, status=InvocationStatus.QUEUED)
    fields = {
        "status": InvocationStatus.RUNNING,
        "worker_token": worker_token,
        "started_at": timezone.now(),
        "finished_at": None,
        "error": "",
    }
    if connection.features.has_select_for_update_skip_locked:
        # The rows are locked by this transaction: one UPDATE claims them all, and the rows read
        # here are the ones the runner goes on with (no second read).
        claimed = list(queued.select_for_update(skip_locked=True).order_by("position")[:wanted])
        Invocation.objects.filter(pk__in=[row.pk for row in claimed]).update(**fields)
        for row in claimed:
            for name, value in fields.items():
                setattr(row, name, value)
        return claimed
    won = []
    for candidate in queued.order_by("position").values_list("pk", flat=True)[: wanted + 2]:
        if len(won) == wanted:
            break
        if Invocation.objects.filter(pk=candidate, status=InvocationStatus.QUEUED).update(**fields):
            won.append(candidate)
    return list(Invocation.objects.filter(pk__in=won).order_by("position")) if won else []


def invocation_execute(*, invocation_id: Any) -> str:
    """Run one claimed invocation to its end; answers its final status. Safe to run twice."""
    invocation = (
        Invocation.objects.select_related(
            "test__eval", "test__group", "model", "scenario__persona", "agent"
        )
        .filter(pk=invocation_id)
        .first()
    )
    if invocation is None or invocation.status != InvocationStatus.RUNNING:
        return invocation.status if invocation else ""
    if invocation.test.group is None:
        return _fail(invocation, None, "The test's group no longer exists.")
    envelope = _begin(invocation)
    conversation = Conversation(invocation, envelope)
    try:
        if not conversation.run() or not conversation.grade():
            return InvocationStatus.TERMINATED
    except ProviderError as exc:
        return _fail(invocation, envelope, str(exc))
    except Exception as exc:  # a worker must survive one bad cell and go on with the next
        logger.exception("Invocation %s failed", invocation.pk)
        return _fail(invocation, envelope, f"{type(exc).__name__}: {exc}")
    return _succeed(invocation, envelope, conversation)


class SlotCatalog:
    """The rows a worker slot's batches share (the test with its eval and group; models,
    scenarios with their personas, agents with their tools, the eval's rubric), each read once for the whole slot: joined to
    every invocation of every batch, reading them was a sixth of the grid's CPU. A slot drains
    one test, so it runs against the catalog as it was when the slot first read it."""

    def __init__(self) -> None:
        self.tests: dict = {}
        self.models: dict = {}
        self.scenarios: dict = {}
        self.agents: dict = {}
        self.tools: dict = {}
        self.rubrics: dict = {}

    def attach(self, invocations: list[Invocation]) -> None:
        """Set each invocation's model, scenario (with persona) and agent, reading the missing."""
        from glow.catalog.models import Agent, Model, Scenario

        for cache, field, queryset in (
            (self.models, "model_id", Model.objects.all()),
            (self.scenarios, "scenario_id", Scenario.objects.select_related("persona")),
            (self.agents, "agent_id", Agent.objects.all()),
        ):
            missing = {getattr(row, field) for row in invocations} - cache.keys()
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

    def test(self, test_id) -> Test:
        """The test with its eval and group (what a batch reads of it does not change while it
        runs: its status is read by every claim)."""
        if test_id not in self.tests:
            self.tests[test_id] = Test.objects.select_related("eval", "group").get(pk=test_id)
        return self.tests[test_id]

    def rubric(self, rubric_id) -> tuple[Rubric, list[dict]]:
        if rubric_id not in self.rubrics:
            rubric = Rubric.objects.prefetch_related("groups__standards").get(pk=rubric_id)
            self.rubrics[rubric_id] = (rubric, rubric.structure())
        return self.rubrics[rubric_id]


def invocations_execute(
    *,
    invocations: list[Invocation] | None = None,
    invocation_ids: list | None = None,
    catalog: SlotCatalog | None = None,
) -> None:
    """Run claimed invocations of one test together, turn by turn: the rows invocations_claim
    answered, or those of `invocation_ids` still running.

    Each gets what invocation_execute gives it (an envelope run and its events, a run per model
    call, transcript, tool calls, grade), written for the whole batch at every step. A re-run
    (an earlier envelope to supersede) or a test whose group is gone goes alone.
    """
    if invocations is None:
        invocations = list(
            Invocation.objects.filter(
                pk__in=invocation_ids, status=InvocationStatus.RUNNING
            ).order_by("position")
        )
    if not invocations:
        return
    catalog = catalog or SlotCatalog()
    test = catalog.test(invocations[0].test_id)
    for invocation in invocations:
        invocation.test = test
    fresh = [row for row in invocations if row.run_id is None and test.group is not None]
    for invocation in invocations:
        if invocation.run_id is not None or test.group is None:
            invocation_execute(invocation_id=invocation.pk)
    if fresh:
        catalog.attach(fresh)
        Batch(fresh, catalog=catalog).run()


class Batch:
    """Invocations of one test advanced in lock-step; `cells` are those still running.

    When every call of the batch is the local simulator's (answered at once, nothing to wait
    for), the batch is computed in memory and written at its end in one transaction that locks
    its rows first: about a dozen statements for the whole batch instead of five or six per step,
    and a halt that arrives meanwhile waits for it (tens of milliseconds) and finds its cells
    finished.

    Otherwise each step is written as it ends, so a slow model's progress is visible. Every such
    write first locks the batch's rows that are still running, in primary-key order (as
    tests_app.services._halt does, so the two never deadlock): a cell halted meanwhile is dropped
    there and nothing more is written for it, as Conversation._save does for one.
    """

    def __init__(self, invocations: list[Invocation], catalog: SlotCatalog) -> None:
        self.invocations = invocations
        self.catalog = catalog
        self.test = invocations[0].test
        self.group = self.test.group
        self.cells: list[Conversation] = []
        # The persona and the grader run on the default provider (model None).
        models = [None, *(invocation.model for invocation in invocations)]
        self.at_once = all(provider_of(model)[0] == "local" for model in models)
        # What an at-once batch writes at its end, in the order its steps made it.
        self.runs: list[Run] = []
        self.tool_rows: list[ToolCall] = []
        self.items: list[tuple[Run, str, dict]] = []
        self.failed: list[tuple[Conversation, str]] = []
        self.grades: dict[Conversation, dict] = {}

    def run(self) -> None:
        try:
            if self.at_once:
                with transaction.atomic():
                    if self._lock_invocations():
                        self._steps()
                        self._write()
            else:
                self._steps()
        except Exception as exc:  # the worker goes on with the next batch; these cells failed
            logger.exception("A batch of test %s failed", self.test.pk)
            message = f"{type(exc).__name__}: {exc}"
            if self.cells and not self.at_once:
                for cell in self.cells:
                    _fail(cell.invocation, cell.envelope, message)
            else:
                # Nothing of an at-once batch was kept: there is no envelope to fail.
                for invocation in self.invocations:
                    _fail(invocation, None, message)

    def _steps(self) -> None:
        self._begin()
        for turn in range(1, self.test.eval.turns + 1):
            self._agent_turn(turn)
            self._persona_turn(turn)
        self._grade()

    # -- steps ------------------------------------------------------------------------------------

    def _begin(self) -> None:
        """_begin for every invocation: envelopes, reset progress, the first progress event."""
        tools = self.catalog.tools
        now = timezone.now()
        cells = []
        envelopes = []
        for invocation in self.invocations:
            envelope = Run(
                organization_id=self.group.organization_id,
                group=self.group,
                session_id=self.group.session_id,
                profile_id=self.group.profile_id,
                kind="invocation",
                family="test",
                model=invocation.model,
                provider=invocation.model.provider,
                provider_model=invocation.model.provider_model,
                artifact_id=invocation.pk,
                params=_envelope_params(invocation),
                status=RunStatus.RUNNING,
                started_at=now,
            )
            envelopes.append(envelope)
            invocation.run_id = envelope.pk
            cell = Conversation(invocation, envelope, tools=tools.get(invocation.agent_id, []))
            self._copy_progress(cell)
            cells.append(cell)
        items = [
            (
                cell.envelope,
                events.PROGRESS,
                {
                    **_ids(cell.invocation),
                    "completed_resources": 0,
                    "total_resources": cell.turns + 1,
                    "percentage": 0,
                    "last_completed_resource": None,
                },
            )
            for cell in cells
        ]
        if self.at_once:
            self.items += items
            self.cells = cells
            return
        # Never begun (no envelope yet): no tool calls or grade of an earlier run to remove.
        with transaction.atomic():
            bulk_copy(envelopes)
            bulk_set(
                Invocation.objects.filter(status=InvocationStatus.RUNNING),
                self.invocations,
                ["run_id", "error", *PROGRESS_FIELDS],
            )
            events.event_emit_many(items=items)
        # Only now do the envelopes exist for a failure to be recorded on.
        self.cells = cells

    def _agent_turn(self, turn: int) -> None:
        answered = self._calls(
            "agent_turn",
            [(cell, cell.invocation.model, cell.agent_request()) for cell in self.cells],
        )
        tool_rows, tool_events = [], []
        for cell, run, result in answered:
            rows = cell.tool_rows(turn, result, run)
            cell.agent_answered(turn, run, result, rows)
            tool_rows += rows
            tool_events += cell.tool_events(turn, rows)
        if self.at_once:
            self.tool_rows += tool_rows
            self.items += tool_events
        else:
            self._save(tool_rows=tool_rows, items=tool_events)

    def _persona_turn(self, turn: int) -> None:
        answered = self._calls(
            "persona_reply", [(cell, None, cell.persona_request()) for cell in self.cells]
        )
        for cell, run, result in answered:
            cell.persona_answered(turn, run, result)
        items = [(cell.envelope, events.PROGRESS, cell.turn_progress(turn)) for cell in self.cells]
        if self.at_once:
            self.items += items
        else:
            self._save(items=items)

    def _grade(self) -> None:
        """Conversation.grade and _succeed for every cell, the writes in one transaction."""
        if not self.cells:
            return
        rubric, structure = self.catalog.rubric(self.test.eval.rubric_id)
        answered = self._calls(
            "grade", [(cell, None, cell.grade_request(rubric, structure)) for cell in self.cells]
        )
        grades = {}
        for cell, _run, result in answered:
            try:
                grades[cell] = cell.graded(result, structure)
            except Exception as exc:
                logger.exception("Invocation %s failed", cell.invocation.pk)
                self._drop(cell, exc)
        self.cells = [cell for cell in self.cells if cell in grades]
        if self.at_once:
            self.grades = grades
            return
        now = timezone.now()
        with transaction.atomic():
            if not self._lock_running():
                return
            bulk_copy(
                [TestGrade(invocation=cell.invocation, **grades[cell]) for cell in self.cells]
            )
            Invocation.objects.filter(pk__in=[cell.invocation.pk for cell in self.cells]).update(
                status=InvocationStatus.SUCCEEDED, finished_at=now
            )
            envelopes = self._finish_envelopes(now)
            finished = bulk_set(
                Run.objects.exclude(status__in=[s.value for s in FINISHED]),
                envelopes,
                ["status", "finished_at", "latency_ms", "error", "output"],
            )
            if finished:
                runs_booked(
                    group_id=self.group.pk,
                    session_id=self.group.session_id,
                    runs=finished,
                    started=min(envelope.started_at for envelope in envelopes),
                    finished=now,
                )
            events.event_emit_many(items=self._final_items())
        self.cells = []

    def _write(self) -> None:
        """An at-once batch's writes, in the transaction that locked its rows: every run, tool
        call, grade and event its steps made; the cells that failed on the way end as _fail ends
        them, after what they had done before."""
        now = timezone.now()
        failed = [cell for cell, _ in self.failed]
        envelopes = self._finish_envelopes(now)
        bulk_copy([*self.runs, *envelopes, *(cell.envelope for cell in failed)])
        bulk_copy(self.tool_rows)
        for cell in self.cells:
            cell.invocation.status = InvocationStatus.SUCCEEDED
            cell.invocation.finished_at = now
        for cell in [*self.cells, *failed]:
            self._copy_progress(cell)
        bulk_set(
            Invocation.objects.all(),
            [cell.invocation for cell in [*self.cells, *failed]],
            ["run_id", "error", "status", "finished_at", *PROGRESS_FIELDS],
        )
        bulk_copy(
            [TestGrade(invocation=cell.invocation, **self.grades[cell]) for cell in self.cells]
        )
        if failed:
            ended = {cell.envelope.pk for cell in failed}
            events.event_emit_many(items=[item for item in self.items if item[0].pk in ended])
            for cell, message in self.failed:
                _fail(cell.invocation, cell.envelope, message)
        if self.runs or envelopes:
            # Every batch of the test books into the same group and session rows, locked from
            # here to the commit: late, so batches wait on each other briefly, and before the
            # tally, so the last batch to commit counts every other (its tally says finished).
            runs_booked(
                group_id=self.group.pk,
                session_id=self.group.session_id,
                runs=len(self.runs) + len(envelopes),
                tokens=sum(run.total_tokens for run in self.runs),
                cost=sum((run.cost for run in self.runs), Decimal("0")),
                started=min(run.started_at for run in [*self.runs, *envelopes]),
                finished=now,
            )
        if self.cells:
            graded = {cell.envelope.pk for cell in self.cells}
            events.event_emit_many(
                items=[item for item in self.items if item[0].pk in graded] + self._final_items()
            )
        self.cells = []

    # -- helpers ----------------------------------------------------------------------------------

    def _finish_envelopes(self, now) -> list[Run]:
        """The graded cells' envelopes, succeeded at `now` (not written)."""
        envelopes = []
        for cell in self.cells:
            envelope = cell.envelope
            envelope.status = RunStatus.SUCCEEDED
            envelope.finished_at = now
            envelope.latency_ms = int((now - envelope.started_at).total_seconds() * 1000)
            envelope.error = ""
            envelope.output = f"{cell.score}/{cell.total_points}"
            envelopes.append(envelope)
        return envelopes

    def _final_items(self) -> list[tuple[Run, str, dict]]:
        """The graded cells' last events. The test's tally (once their rows say succeeded)
        comes after every cell's completion: a group watcher stops at the first that says
        finished, so none may come before another cell's GenerationCompleteEvent."""
        tally = test_progress(test_id=self.test.pk)
        items, tallies = [], []
        for cell in self.cells:
            ids = _ids(cell.invocation)
            summary = f"{cell.score}/{cell.total_points}"
            artifact = str(cell.invocation.pk)
            items += [
                (cell.envelope, events.SAVED, {**ids, "artifact_id": artifact}),
                (
                    cell.envelope,
                    events.COMPLETE,
                    {
                        **ids,
                        "success": True,
                        "message": f"Invocation finished and graded {summary}.",
                        "artifact_id": artifact,
                        "status": InvocationStatus.SUCCEEDED,
                    },
                ),
            ]
            tallies.append(
                (
                    cell.envelope,
                    TEST_PROGRESS_EVENT,
                    {**ids, "status": InvocationStatus.SUCCEEDED, **tally},
                )
            )
        return items + tallies

    def _calls(self, kind: str, calls: list[tuple[Conversation, Any, CompletionRequest]]):
        """One model call per cell; a cell whose call failed is failed (as invocation_execute
        fails it) and dropped. Answers (cell, run, result) for the others."""
        if not calls:
            return []
        booked = model_call_many(
            group=self.group,
            kind=kind,
            family="test",
            calls=[(model, request, cell.invocation.pk) for cell, model, request in calls],
            write=not self.at_once,
        )
        if self.at_once:
            self.runs += [run for run, _ in booked]
        answered = []
        for (cell, _, _), (run, outcome) in zip(calls, booked, strict=True):
            if isinstance(outcome, Exception):
                self._drop(cell, outcome)
            else:
                answered.append((cell, run, outcome))
        self.cells = [cell for cell, _, _ in answered]
        return answered

    def _drop(self, cell: Conversation, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
        if self.at_once:
            self.failed.append((cell, message))  # failed in _write, after what it did before
        else:
            _fail(cell.invocation, cell.envelope, message)

    @staticmethod
    def _locked(pks: list) -> set:
        """Which of `pks` are still running, their rows locked until the transaction ends."""
        return set(
            Invocation.objects.select_for_update()
            .filter(pk__in=pks, status=InvocationStatus.RUNNING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def _lock_invocations(self) -> bool:
        running = self._locked([invocation.pk for invocation in self.invocations])
        self.invocations = [row for row in self.invocations if row.pk in running]
        return bool(self.invocations)

    def _lock_running(self) -> bool:
        """Keep the cells still running, their rows locked until the transaction ends."""
        running = self._locked([cell.invocation.pk for cell in self.cells])
        self.cells = [cell for cell in self.cells if cell.invocation.pk in running]
        return bool(self.cells)

    def _save(self, *, tool_rows: list[ToolCall] = (), items: list = ()) -> None:
        """Conversation._save for every cell, with the turn's tool calls and events."""
        if not self.cells:
            return
        with transaction.atomic():
            if not self._lock_running():
                return
            live = {cell.invocation.pk for cell in self.cells}
            ToolCall.objects.bulk_create(row for row in tool_rows if row.invocation_id in live)
            for cell in self.cells:
                self._copy_progress(cell)
            bulk_set(
                Invocation.objects.all(), [cell.invocation for cell in self.cells], PROGRESS_FIELDS
            )
            named = {str(pk) for pk in live}
            events.event_emit_many(
                items=[item for item in items if item[2]["invocation_id"] in named]
            )

    @staticmethod
    def _copy_progress(cell: Conversation) -> None:
        for name, value in cell.progress_fields().items():
            setattr(cell.invocation, name, value)


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


@transaction.atomic
def _begin(invocation: Invocation) -> Run:
    """A fresh start: earlier tool calls, grade and transcript go (a re-run replaces them)."""
    if invocation.run_id:
        previous = Run.objects.filter(pk=invocation.run_id).first()
        if previous is not None:
            run_finish(run=previous, status=RunStatus.FAILED, error="Superseded by a new run.")
    ToolCall.objects.filter(invocation=invocation).delete()
    TestGrade.objects.filter(invocation=invocation).delete()
    envelope = run_create(
        group=invocation.test.group,
        kind="invocation",
        model=invocation.model,
        family="test",
        artifact_id=invocation.pk,
        params=_envelope_params(invocation),
    )
    run_mark_running(run=envelope)
    Invocation.objects.filter(pk=invocation.pk).update(
        run_id=envelope.pk,
        transcript=[],
        input_tokens=0,
        output_tokens=0,
        total_tokens=0,
        cost=Decimal("0"),
        error="",
    )
    invocation.run_id = envelope.pk
    events.event_emit(
        run=envelope,
        event_type=events.PROGRESS,
        payload={
            **_ids(invocation),
            "completed_resources": 0,
            "total_resources": invocation.test.eval.turns + 1,
            "percentage": 0,
            "last_completed_resource": None,
        },
    )
    return envelope


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


class Conversation:
    """The agent (on the cell's model) and the scenario's persona, for the eval's number of turns.

    Transcript roles are "agent" and "persona". The local simulator reads the attempt
    convention ("user" is the teaching assistant, here the agent; "assistant" the student).
    The invocation's tokens and cost are the agent's calls on the model under test; persona
    and grader calls are counted in the test's group like every run.
    """

    def __init__(self, invocation: Invocation, envelope: Run, tools: list | None = None) -> None:
        self.invocation = invocation
        self.envelope = envelope
        self.test = invocation.test
        self.turns = self.test.eval.turns
        self.transcript: list[dict] = []
        if tools is None:
            tools = list(Tool.objects.filter(agents=invocation.agent).order_by("name"))
        self.tools = tools
        self.tool_position = 0
        self.input_tokens = self.output_tokens = 0
        self.cost = Decimal("0")
        self.score: Decimal | None = None
        self.total_points = 0

    # -- shapes the providers read ------------------------------------------------------------

    def _persona(self) -> dict:
        persona = self.invocation.scenario.persona
        return {
            "name": persona.title.split(",")[0],
            "traits": persona.traits,
            "description": persona.description,
            "intensity": persona.intensity,
            "voice": persona.voice,
        }

    def _scenario(self) -> dict:
        scenario = self.invocation.scenario
        return {"title": scenario.title, "context": scenario.context}

    def _simulator_transcript(self, *, with_ids: bool = False) -> list[dict]:
        turns = []
        for index, message in enumerate(self.transcript):
            entry = {
                "role": "user" if message["role"] == "agent" else "assistant",
                "content": message["content"],
            }
            if with_ids:
                entry["id"] = str(index)
            turns.append(entry)
        return turns

    def _chat(self, *, speaker: str) -> list[dict]:
        """OpenAI-style messages from `speaker`'s side: its own lines are "assistant"."""
        return [
            {
                "role": "assistant" if message["role"] == speaker else "user",
                "content": message["content"],
            }
            for message in self.transcript
        ]

    def _agent_system(self) -> str:
        agent = self.invocation.agent
        lines = [agent.system_prompt or f"You are {agent.title}."]
        if self.tools:
            lines.append("Tools you may call:")
            lines.extend(f"- {tool.name}: {tool.description or tool.title}" for tool in self.tools)
        lines.append(f"Situation: {self.invocation.scenario.context}")
        return "\n".join(lines)

    # -- the conversation ---------------------------------------------------------------------

    def run(self) -> bool:
        """False when the invocation was halted meanwhile."""
        for turn in range(1, self.turns + 1):
            if not self._agent_turn(turn) or not self._persona_turn(turn):
                return False
            events.event_emit(
                run=self.envelope, event_type=events.PROGRESS, payload=self.turn_progress(turn)
            )
        return True

    def turn_progress(self, turn: int) -> dict:
        return {
            **_ids(self.invocation),
            "completed_resources": turn,
            "total_resources": self.turns + 1,
            "percentage": round(turn * 100 / (self.turns + 1)),
            "last_completed_resource": f"turn {turn}",
        }

    def _call(self, *, kind: str, model, request: CompletionRequest):
        run = run_create(
            group=self.test.group,
            kind=kind,
            model=model,
            family="test",
            artifact_id=self.invocation.pk,
        )
        result = model_call(run=run, request=request)
        return run, result

    def _agent_turn(self, turn: int) -> bool:
        run, result = self._call(
            kind="agent_turn", model=self.invocation.model, request=self.agent_request()
        )
        tool_calls = self._record_tools(turn, self.tool_rows(turn, result, run), run)
        self.agent_answered(turn, run, result, tool_calls)
        return self._save()

    def agent_request(self) -> CompletionRequest:
        agent = self.invocation.agent
        return CompletionRequest(
            messages=[
                {"role": "system", "content": self._agent_system()},
                *self._chat(speaker="agent"),
            ],
            model=self.invocation.model.provider_model,
            task="agent_turn",
            context={
                "agent": {
                    "title": agent.title,
                    "system_prompt": agent.system_prompt,
                    "tools": [
                        {"name": tool.name, "schema": tool.json_schema, "description": tool.title}
                        for tool in self.tools
                    ],
                },
                "transcript": self._simulator_transcript(),
                "scenario": self._scenario(),
                "persona": self._persona(),
            },
        )

    def agent_answered(self, turn: int, run: Run, result, tool_calls: list[ToolCall]) -> None:
        """The agent's line and usage (the invocation's own), once its tool calls are saved."""
        self.input_tokens += run.input_tokens
        self.output_tokens += run.output_tokens
        self.cost += run.cost
        self.transcript.append(
            {
                "role": "agent",
                "content": result.text,
                "turn": turn,
                "run_id": str(run.pk),
                "tool_call_ids": [str(call.pk) for call in tool_calls],
                "created_at": timezone.now().isoformat(),
            }
        )

    def tool_rows(self, turn: int, result, run: Run) -> list[ToolCall]:
        """Tools are declared in the catalog as schemas only: the call is recorded, not executed."""
        calls = (result.data or {}).get("tool_calls") if isinstance(result.data, dict) else None
        by_name = {tool.name: tool for tool in self.tools}
        rows = []
        for call in calls or []:
            if not isinstance(call, dict):
                continue
            name = str(call.get("name") or "")[:100]
            tool = by_name.get(name)
            outcome = (
                {"simulated": True, "content": tool.description or tool.title}
                if tool is not None
                else {"error": f"The agent has no tool named {name!r}."}
            )
            arguments = call.get("arguments")
            rows.append(
                ToolCall(
                    invocation=self.invocation,
                    position=self.tool_position,
                    turn=turn,
                    name=name,
                    arguments=arguments if isinstance(arguments, dict) else {"value": arguments},
                    result=outcome,
                    run=run,
                )
            )
            self.tool_position += 1
        return rows

    def tool_events(self, turn: int, rows: list[ToolCall]) -> list[tuple[Run, str, dict]]:
        return [
            (
                self.envelope,
                TOOL_CALL_EVENT,
                {
                    **_ids(self.invocation),
                    "tool_call_id": str(row.pk),
                    "name": row.name,
                    "turn": turn,
                },
            )
            for row in rows
        ]

    def _record_tools(self, turn: int, rows: list[ToolCall], run: Run) -> list[ToolCall]:
        ToolCall.objects.bulk_create(rows)
        for envelope, event_type, payload in self.tool_events(turn, rows):
            events.event_emit(run=envelope, event_type=event_type, payload=payload)
        return rows

    def _persona_turn(self, turn: int) -> bool:
        run, result = self._call(kind="persona_reply", model=None, request=self.persona_request())
        self.persona_answered(turn, run, result)
        return self._save()

    def persona_request(self) -> CompletionRequest:
        agent_line = self.transcript[-1]["content"]
        persona = self.invocation.scenario.persona
        return CompletionRequest(
            messages=[
                {
                    "role": "system",
                    "content": f"You are {persona.title}, a student. {persona.description}\n"
                    f"Situation: {self.invocation.scenario.context}",
                },
                *self._chat(speaker="persona"),
            ],
            task="persona_reply",
            context={
                "persona": self._persona(),
                "scenario": self._scenario(),
                "transcript": self._simulator_transcript()[:-1],
                "learner_message": agent_line,
            },
        )

    def persona_answered(self, turn: int, run: Run, result) -> None:
        self.transcript.append(
            {
                "role": "persona",
                "content": result.text,
                "turn": turn,
                "run_id": str(run.pk),
                "tool_call_ids": [],
                "created_at": timezone.now().isoformat(),
            }
        )

    def _save(self) -> bool:
        """Persist progress while still running: zero rows updated means someone halted it."""
        return bool(
            Invocation.objects.filter(
                pk=self.invocation.pk, status=InvocationStatus.RUNNING
            ).update(**self.progress_fields())
        )

    def progress_fields(self) -> dict:
        return {
            "transcript": self.transcript,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
        }

    # -- grading --------------------------------------------------------------------------------

    def grade(self) -> bool:
        """The eval's rubric grades the agent's lines; the grade's groups feed the benchmark."""
        rubric = Rubric.objects.prefetch_related("groups__standards").get(
            pk=self.test.eval.rubric_id
        )
        structure = rubric.structure()
        _run, result = self._call(
            kind="grade", model=None, request=self.grade_request(rubric, structure)
        )
        defaults = self.graded(result, structure)
        with transaction.atomic():
            if not Invocation.objects.filter(
                pk=self.invocation.pk, status=InvocationStatus.RUNNING
            ).exists():
                return False
            TestGrade.objects.update_or_create(invocation=self.invocation, defaults=defaults)
        return True

    def grade_request(self, rubric: Rubric, structure: list[dict]) -> CompletionRequest:
        transcript_text = "\n".join(
            f"{message['role']}: {message['content']}" for message in self.transcript
        )
        return CompletionRequest(
            messages=[
                {
                    "role": "system",
                    "content": "Grade the agent's messages against the rubric. Answer JSON with "
                    "score, groups [{group_id, score}] and feedback.",
                },
                {
                    "role": "user",
                    "content": f"Rubric: {structure}\n\nTranscript:\n{transcript_text}",
                },
            ],
            task="grade",
            context={
                "rubric": {"title": rubric.title, "groups": structure},
                "transcript": self._simulator_transcript(with_ids=True),
                "pass_threshold": (self.test.eval.settings or {}).get("pass_threshold", 70),
            },
            json_schema=GRADE_SCHEMA,
        )

    def graded(self, result, structure: list[dict]) -> dict:
        """The grader's answer as the TestGrade's fields; sets score and total_points."""
        data = result.data if isinstance(result.data, dict) else {}
        answered = {
            str(item.get("group_id")): item.get("score")
            for item in data.get("groups") or []
            if isinstance(item, dict)
        }
        groups = []
        for group in structure:
            raw = answered.get(group["id"])
            score = _clamp(raw if isinstance(raw, int | float) else 0, group["total_points"])
            groups.append(
                {
                    "standard_group_id": group["id"],
                    "name": group["name"],
                    "score": float(score),
                    "total_points": group["total_points"],
                }
            )
        self.total_points = sum(group["total_points"] for group in structure)
        self.score = sum((Decimal(str(group["score"])) for group in groups), Decimal("0"))
        return {
            "organization_id": self.invocation.organization_id,
            "score": self.score,
            "total_points": self.total_points,
            "full": bool(self.total_points) and self.score == self.total_points,
            "source": GradeSource.AUTO,
            "groups": groups,
            "feedback": str(data.get("feedback") or "")[:4000],
            "graded_by": None,
        }


def _clamp(value: float, ceiling: int) -> Decimal:
    return max(Decimal("0"), min(Decimal(ceiling), Decimal(str(round(float(value), 2)))))


def _succeed(invocation: Invocation, envelope: Run, conversation: Conversation) -> str:
    with transaction.atomic():
        finished = Invocation.objects.filter(
            pk=invocation.pk, status=InvocationStatus.RUNNING
        ).update(status=InvocationStatus.SUCCEEDED, finished_at=timezone.now())
        if not finished:
            return InvocationStatus.TERMINATED
        summary = f"{conversation.score}/{conversation.total_points}"
        run_finish(run=envelope, status=RunStatus.SUCCEEDED, output=summary)
        events.event_emit(
            run=envelope,
            event_type=events.SAVED,
            payload={**_ids(invocation), "artifact_id": str(invocation.pk)},
        )
        events.event_emit(
            run=envelope,
            event_type=events.COMPLETE,
            payload={
                **_ids(invocation),
                "success": True,
                "message": f"Invocation finished and graded {summary}.",
                "artifact_id": str(invocation.pk),
                "status": InvocationStatus.SUCCEEDED,
            },
        )
        _progress(invocation, envelope, InvocationStatus.SUCCEEDED)
    return InvocationStatus.SUCCEEDED


def _fail(invocation: Invocation, envelope: Run | None, message: str) -> str:
    with transaction.atomic():
        failed = Invocation.objects.filter(
            pk=invocation.pk, status=InvocationStatus.RUNNING
        ).update(status=InvocationStatus.FAILED, error=message[:4000], finished_at=timezone.now())
        if envelope is None:
            return InvocationStatus.FAILED if failed else InvocationStatus.TERMINATED
        run_finish(run=envelope, status=RunStatus.FAILED, error=message)
        if not failed:
            return InvocationStatus.TERMINATED
        events.event_emit(
            run=envelope,
            event_type=events.ERROR,
            payload={
                **_ids(invocation),
                "resource_type": "invocation",
                "resource_id": str(invocation.pk),
                "message": message,
                "status": InvocationStatus.FAILED,
            },
        )
        _progress(invocation, envelope, InvocationStatus.FAILED)
    return InvocationStatus.FAILED


def _progress(invocation: Invocation, envelope: Run, status: str) -> None:
    """After each invocation ends, the test's tally: a group watcher stops at finished: true."""
    events.event_emit(
        run=envelope,
        event_type=TEST_PROGRESS_EVENT,
        payload={**_ids(invocation), "status": status, **test_progress(test_id=invocation.test_id)},
    )
