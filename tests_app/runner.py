"""Runs a test's invocations: one engine for every provider, calls in flight, writes in sets.

A worker task (tests_app.tasks.invocations_drain) runs an Engine: it claims queued cells within
the test's concurrency, and each cell runs as a coroutine on the process's model-call loop
(glow.ai.calls): the agent on the cell's model, the scenario's persona, then the rubric grader,
each call awaited on its own, so a cell moves on the moment its own call answers and a slow
call holds nobody else. Every call has its own Run (request sent to last byte, tokens, cost).
The local simulator is a provider that answers at once on the same path.

The database is written by the engine's own thread, never by the loop: what the cells did
since the last write (runs, tool calls, transcripts, events, grades, ends) goes in one
transaction of a dozen statements whatever the number of cells, every few tens of
milliseconds while cells end, at most FLUSH_SECONDS apart while they talk.

Durable: a claim is a lease that the engine renews while it lives; a cell whose worker died is
queued again once its lease has run out (test_recover, scheduled when a worker leaves cells of
others behind and when a worker process starts), and restarts from its beginning. Every write
locks the engine's still-running rows first, in primary-key order (as tests_app.services._halt
does, so the two never deadlock), and keeps only those it still holds: a cell halted, or taken
over after its lease ran out, gets no further write, so a cell is graded once. The write that
ends a test's last cell marks the test finished.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from glow.ai import CompletionRequest, ProviderError, cost_for
from glow.ai import calls as model_calls
from glow.catalog.models import Rubric, Tool
from glow.core.bulk import bulk_copy, bulk_set
from system import events
from system.models import FINISHED, Group, Run, RunStatus
from system.services import provider_for, provider_of, runs_booked
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
# A test's concurrency is shared by this many worker tasks; each claims a share at a time.
WORKERS_PER_TEST = 4
# While cells talk, what they did reaches the database at most this late.
FLUSH_SECONDS = 0.25
# A cell that ended is written at most this late (its slot is reused at once: see claims).
END_FLUSH_SECONDS = 0.1
# A worker that got its full share asks for another this soon.
RAMP_SECONDS = 0.03
# A worker with room that got less asks again when a cell of its own ends, or this late.
CLAIM_SECONDS = 0.1
SUPERSEDED = "Superseded by a new run."

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


def share(concurrency: int) -> int:
    """Cells one worker task claims at a time (it may hold up to the whole concurrency)."""
    return max(1, math.ceil(concurrency / WORKERS_PER_TEST))


def lease_seconds() -> float:
    return float(getattr(settings, "GLOW_TEST_LEASE_SECONDS", 60.0))


def worker_run(*, test_id: Any, worker_token: str) -> int:
    """One worker task: resume what this token had claimed (a redelivered task), then drain the
    queue; answers how many cells it ran."""
    return Engine(test_id=test_id, worker_token=worker_token).run()


def invocation_claim(*, test_id: Any, worker_token: str):
    """The next queued invocation, marked running, if the test has a free slot; else None."""
    claimed, _ = invocations_claim(test_id=test_id, worker_token=worker_token, limit=1)
    return claimed[0].pk if claimed else None


def invocation_execute(*, invocation_id: Any) -> str:
    """Run one claimed (running) invocation to its end; answers its final status."""
    row = Invocation.objects.filter(pk=invocation_id).values_list("test_id", "worker_token").first()
    if row is None:
        return ""
    Engine(test_id=row[0], worker_token=row[1], only=[invocation_id]).run()
    return Invocation.objects.filter(pk=invocation_id).values_list("status", flat=True).first()


@transaction.atomic
def invocations_claim(
    *, test_id: Any, worker_token: str, limit: int | None = None, freed: int = 0
) -> tuple[list[Invocation], bool]:
    """The next queued invocations (at most `limit`, else the test's share), marked running
    under a fresh lease, within the test's free slots, in position order; and whether any is
    left queued. A cell whose lease ran out is claimable again, and counts as no slot.

    The test row lock serialises claims, so the running count never exceeds the concurrency;
    the conditional UPDATE is what makes a claim exclusive on SQLite too (no row locks there).
    A claimed cell that ran before (a re-run, a dead worker's) starts over: its earlier
    envelope is closed and its tool calls and grade go, in this transaction.
    """
    test = (
        Test.objects.select_for_update()
        .filter(pk=test_id)
        .values_list("status", "concurrency", "group_id")
        .first()
    )
    if test is None or test[0] != TestStatus.RUNNING:
        return [], False
    now = timezone.now()
    rows = Invocation.objects.filter(test_id=test_id)
    lapsed = Q(status=InvocationStatus.RUNNING, lease_expires_at__lt=now)
    live = Q(status=InvocationStatus.RUNNING) & ~lapsed
    counts = rows.aggregate(
        held=Count("pk", filter=live),
        mine=Count("pk", filter=live & Q(worker_token=worker_token)),
        others=Count("worker_token", distinct=True, filter=live & ~Q(worker_token=worker_token)),
    )
    # Workers share the concurrency evenly (a worker alone may take all of it): those holding
    # cells and those that recently asked in vain. Else the one that claimed first refills its
    # own slots for the whole run. Fairness only: the cap itself is the count above.
    waiting = _waiting(test_id, worker_token, now)
    fair = math.ceil(test[1] / (counts["others"] + len(waiting) + 1)) - (counts["mine"] - freed)
    wanted = min(test[1] - counts["held"] + freed, limit or share(test[1]), fair)
    claimable = rows.filter(Q(status=InvocationStatus.QUEUED) | lapsed)
    if wanted <= 0:
        left = claimable.exists()
        if left and counts["mine"] == freed:
            _waiting(test_id, worker_token, now, add=True)
        return [], left
    fields = {
        "status": InvocationStatus.RUNNING,
        "worker_token": worker_token,
        "started_at": now,
        "finished_at": None,
        "error": "",
        "lease_expires_at": now + timedelta(seconds=lease_seconds()),
    }
    if connection.features.has_select_for_update_skip_locked:
        # The rows are locked by this transaction: one UPDATE claims them all, and the rows read
        # here are the ones the engine goes on with (no second read).
        claimed = list(
            claimable.select_for_update(skip_locked=True).order_by("position")[: wanted + 1]
        )
        left = len(claimed) > wanted
        claimed = claimed[:wanted]
        Invocation.objects.filter(pk__in=[row.pk for row in claimed]).update(**fields)
    else:
        candidates = list(claimable.order_by("position").values_list("pk", flat=True)[: wanted + 3])
        won = []
        for candidate in candidates:
            if len(won) == wanted:
                break
            taken = Invocation.objects.filter(
                Q(status=InvocationStatus.QUEUED) | lapsed, pk=candidate
            ).update(**fields)
            if taken:
                won.append(candidate)
        claimed = list(Invocation.objects.filter(pk__in=won).order_by("position"))
        left = claimable.exclude(pk__in=won).exists()
    for row in claimed:
        for name, value in fields.items():
            setattr(row, name, value)
    _restart(claimed, group_id=test[2], now=now)
    return claimed, left


def _waiting(test_id: Any, worker_token: str, now, *, add: bool = False) -> list[str]:
    """Other workers of the test that asked for cells in the last second and got none (kept in
    the cache: a hint for sharing, so a lost write only makes sharing less even)."""
    from glow.core.caching import cache_call

    key = f"tests_app:waiting:{test_id}"
    stamp = now.timestamp()
    found = cache_call("get", key) or {}
    recent = {token: at for token, at in found.items() if stamp - at < 1.0}
    if add:
        recent[worker_token] = stamp
        cache_call("set", key, recent, 60)
    return [token for token in recent if token != worker_token]


def _restart(rows: list[Invocation], *, group_id: Any, now) -> None:
    """Cells that ran before start over: the earlier envelope ends as superseded (booked like
    run_finish books it), and the earlier tool calls and grade go."""
    previous = [row for row in rows if row.run_id is not None]
    if not previous:
        return
    ids = [row.pk for row in previous]
    ended = Run.objects.filter(pk__in=[row.run_id for row in previous]).exclude(
        status__in=[status.value for status in FINISHED]
    )
    first = min((row.started_at or now for row in previous), default=now)
    closed = ended.update(status=RunStatus.FAILED, finished_at=now, error=SUPERSEDED)
    if closed and group_id is not None:
        session_id = Group.objects.filter(pk=group_id).values_list("session_id", flat=True).first()
        runs_booked(
            group_id=group_id, session_id=session_id, runs=closed, started=first, finished=now
        )
    ToolCall.objects.filter(invocation_id__in=ids).delete()
    TestGrade.objects.filter(invocation_id__in=ids).delete()


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
        from glow.catalog.models import Agent, Model, ParameterSet, Scenario

        for cache, name, queryset in (
            (self.models, "model_id", Model.objects.all()),
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


class Engine:
    """One worker task's cells of one test (see the module docstring)."""

    def __init__(self, *, test_id: Any, worker_token: str, only: list | None = None) -> None:
        self.test_id = test_id
        self.token = worker_token
        self.only = only
        self.catalog = SlotCatalog()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.cells: dict[Any, Conversation] = {}  # held: claimed, their end not yet written
        self.talking = 0  # held cells that have not ended
        self.pending = Writes()
        self.executed = 0
        self.test: Test | None = None
        self.rubric: tuple[Rubric, list[dict]] | None = None

    # -- the worker's loop --------------------------------------------------------------------

    def run(self) -> int:
        self.test = self.catalog.test(self.test_id)
        if self.test is None:
            return 0
        self._start(self._adopted())
        queue_left = self.only is None
        next_claim = 0.0
        last_flush = last_renew = time.monotonic()
        renew_every = lease_seconds() / 3
        concurrency = self.test.concurrency
        claimed_after = 0  # cells ended when this engine last claimed
        while True:
            now = time.monotonic()
            with self.lock:
                ended, dirty, talking = len(self.pending.ended), bool(self.pending), self.talking
            # A cell that ended holds no call: its slot is free before its end is written.
            freed = len(self.cells) - talking
            if freed > claimed_after:
                next_claim = min(next_claim, now)
            if ended and talking == 0:
                # Nothing in flight (the local simulator answers at once): write first, then
                # claim a whole share again, as one batch.
                self.flush()
                claimed_after = 0
                last_flush = last_renew = time.monotonic()
                next_claim = 0.0
                continue
            if ended and now - last_flush >= END_FLUSH_SECONDS:
                self.flush()
                claimed_after = 0
                last_flush = last_renew = time.monotonic()
                continue
            if queue_left and now >= next_claim and talking < concurrency:
                wanted = min(max(share(concurrency), freed), concurrency - talking)
                claimed, queue_left = invocations_claim(
                    test_id=self.test_id, worker_token=self.token, limit=wanted, freed=freed
                )
                self._start(claimed)
                claimed_after = freed
                # A full share: take another soon (a worker alone fills the concurrency in a
                # few steps; workers starting together take turns). Else the slots are
                # others': ask again when a cell of ours ends, or a while later.
                next_claim = now + (RAMP_SECONDS if len(claimed) == wanted else CLAIM_SECONDS)
                continue
            if not self.cells:
                if not queue_left:
                    break
                # Cells are queued but the slots are others': wait for one to free.
                self.wake.wait(timeout=max(0.001, next_claim - now))
                self.wake.clear()
                continue
            since = now - last_flush
            if (
                (ended and (talking == 0 or since >= END_FLUSH_SECONDS))
                or (dirty and since >= FLUSH_SECONDS)
                or now - last_renew >= renew_every
            ):
                self.flush()
                claimed_after = 0
                last_flush = last_renew = time.monotonic()
                continue
            wait = FLUSH_SECONDS - since if dirty else renew_every - (now - last_renew)
            if ended:
                wait = END_FLUSH_SECONDS - since
            if queue_left and talking < concurrency:
                wait = min(wait, next_claim - now)
            self.wake.wait(timeout=max(0.001, wait))
            self.wake.clear()
        if self.only is None:
            from tests_app.services import test_recover_schedule

            test_recover_schedule(test_id=self.test_id)
        return self.executed

    def _adopted(self) -> list[Invocation]:
        """What this token holds already (a redelivered task), or the invocations asked for."""
        rows = Invocation.objects.filter(test_id=self.test_id, status=InvocationStatus.RUNNING)
        rows = rows.filter(pk__in=self.only) if self.only is not None else rows
        rows = list(rows.filter(worker_token=self.token).order_by("position"))
        if rows:
            with transaction.atomic():
                now = timezone.now()
                Invocation.objects.filter(pk__in=[row.pk for row in rows]).update(
                    lease_expires_at=now + timedelta(seconds=lease_seconds())
                )
                _restart(rows, group_id=self.test.group_id, now=now)
        return rows

    def _start(self, invocations: list[Invocation]) -> None:
        """Each claimed invocation becomes a cell talking on the loop: a new envelope (written
        with the cell's first write) and its first progress event."""
        if not invocations:
            return
        self.executed += len(invocations)
        test = self.test
        if test.group is None:
            Invocation.objects.filter(pk__in=[row.pk for row in invocations]).update(
                status=InvocationStatus.FAILED,
                error="The test's group no longer exists.",
                finished_at=timezone.now(),
            )
            return
        if self.rubric is None:
            self.rubric = self.catalog.rubric(test.eval.rubric_id)
        self.catalog.attach(invocations)
        group = test.group
        now = timezone.now()
        for invocation in invocations:
            invocation.test = test
            envelope = Run(
                organization_id=group.organization_id,
                group=group,
                session_id=group.session_id,
                profile_id=group.profile_id,
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
            invocation.run_id = envelope.pk
            cell = Conversation(
                invocation, envelope, tools=self.catalog.tools.get(invocation.agent_id, [])
            )
            with self.lock:
                self.cells[invocation.pk] = cell
                self.talking += 1
                self.pending.touched[cell] = cell.progress_fields()
                self.pending.items.append(
                    (
                        envelope,
                        events.PROGRESS,
                        {
                            **_ids(invocation),
                            "completed_resources": 0,
                            "total_resources": cell.turns + 1,
                            "percentage": 0,
                            "last_completed_resource": None,
                        },
                    )
                )
            cell.future = model_calls.submit(self._talk(cell))

    # -- a cell, on the loop --------------------------------------------------------------------

    async def _talk(self, cell: Conversation) -> None:
        try:
            for turn in range(1, cell.turns + 1):
                run, result = await self._call(
                    cell, "agent_turn", cell.invocation.model, cell.agent_request()
                )
                with self.lock:
                    rows = cell.tool_rows(turn, result, run)
                    cell.agent_answered(turn, run, result, rows)
                    self.pending.tool_rows += rows
                    self.pending.items += cell.tool_events(turn, rows)
                    self.pending.touched[cell] = cell.progress_fields()
                self.wake.set()
                run, result = await self._call(cell, "persona_reply", None, cell.persona_request())
                with self.lock:
                    cell.persona_answered(turn, run, result)
                    self.pending.items.append(
                        (cell.envelope, events.PROGRESS, cell.turn_progress(turn))
                    )
                    self.pending.touched[cell] = cell.progress_fields()
                self.wake.set()
            rubric, structure = self.rubric
            _run, result = await self._call(
                cell, "grade", None, cell.grade_request(rubric, structure)
            )
            self._end(cell, grade=cell.graded(result, structure))
        except CellHalted:
            pass
        except ProviderError as exc:
            self._end(cell, error=str(exc))
        except Exception as exc:  # the worker survives one bad cell and goes on with the others
            logger.exception("Invocation %s failed", cell.invocation.pk)
            self._end(cell, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.wake.set()

    async def _call(self, cell: Conversation, kind: str, model, request: CompletionRequest):
        """One model call of a cell as its own Run: sent, latency to the last byte, tokens,
        cost, status and error; a failure is booked and raised."""
        if cell.halted:
            raise CellHalted
        group = self.test.group
        provider_name, provider_model = provider_of(model)
        if not request.model or request.model == "glow-local":
            request.model = provider_model or request.model
        run = Run(
            organization_id=group.organization_id,
            group=group,
            session_id=group.session_id,
            profile_id=group.profile_id,
            kind=kind,
            family="test",
            model=model,
            provider=provider_name,
            provider_model=provider_model,
            artifact_id=cell.invocation.pk,
            messages=request.messages[-50:],
        )
        provider = provider_for(run)
        run.started_at = timezone.now()
        sent = time.perf_counter()
        try:
            result = await provider.acomplete(request)
        except Exception as exc:
            run.status = RunStatus.FAILED
            run.latency_ms = round((time.perf_counter() - sent) * 1000)
            run.finished_at = timezone.now()
            message = str(exc) if isinstance(exc, ProviderError) else None
            run.error = (message or f"{type(exc).__name__}: {exc}")[:4000]
            with self.lock:
                self.pending.runs.append(run)
            raise
        run.finished_at = timezone.now()
        run.latency_ms = result.latency_ms
        input_price, output_price = _price(model)
        run.cost = cost_for(
            result.usage, input_price_per_million=input_price, output_price_per_million=output_price
        )
        run.input_tokens = result.usage.input_tokens
        run.output_tokens = result.usage.output_tokens
        run.total_tokens = run.input_tokens + run.output_tokens
        run.output = result.text
        run.status = (
            RunStatus.CANCELLED if result.finish_reason == "cancelled" else RunStatus.SUCCEEDED
        )
        with self.lock:
            self.pending.runs.append(run)
        return run, result

    def _end(self, cell: Conversation, *, grade: dict | None = None, error: str = "") -> None:
        with self.lock:
            if cell.halted:
                return
            cell.ended = True
            cell.grade_fields = grade
            cell.error = error
            self.pending.touched[cell] = cell.progress_fields()
            self.pending.ended.append(cell)
            self.talking -= 1

    # -- writes, on the engine's thread -----------------------------------------------------------

    def flush(self) -> bool:
        """Write what the cells did since the last write, in one transaction; answers whether a
        cell ended (its slot is free)."""
        with self.lock:
            writes, self.pending = self.pending, Writes()
        now = timezone.now()
        with transaction.atomic():
            live = self._lock_held()
            for pk in [pk for pk in self.cells if pk not in live]:
                self._drop(self.cells.pop(pk))
            cells = [cell for cell in writes.touched if cell.invocation.pk in live]
            ended = [cell for cell in writes.ended if cell.invocation.pk in live]
            succeeded = [cell for cell in ended if not cell.error]
            for cell in ended:
                envelope = cell.envelope
                envelope.status = RunStatus.FAILED if cell.error else RunStatus.SUCCEEDED
                envelope.finished_at = now
                envelope.latency_ms = int((now - envelope.started_at).total_seconds() * 1000)
                envelope.error = cell.error[:4000]
                envelope.output = "" if cell.error else f"{cell.score}/{cell.total_points}"
            fresh = [cell.envelope for cell in cells if not cell.envelope_saved]
            bulk_copy([*writes.runs, *fresh])
            for cell in cells:
                cell.envelope_saved = True
            bulk_set(
                Run.objects.all(),
                [cell.envelope for cell in ended if cell.envelope not in fresh],
                ["status", "finished_at", "latency_ms", "error", "output"],
            )
            bulk_copy([row for row in writes.tool_rows if row.invocation_id in live])
            lease = now + timedelta(seconds=lease_seconds())
            for cell in cells:
                invocation = cell.invocation
                for name, value in writes.touched[cell].items():
                    setattr(invocation, name, value)
                invocation.lease_expires_at = lease
                if cell in ended:
                    invocation.status = (
                        InvocationStatus.FAILED if cell.error else InvocationStatus.SUCCEEDED
                    )
                    invocation.finished_at = now
                    invocation.error = cell.error[:4000]
            bulk_set(Invocation.objects.all(), [cell.invocation for cell in cells], WRITTEN_FIELDS)
            quiet = [pk for pk in live if pk not in {cell.invocation.pk for cell in cells}]
            if quiet:
                Invocation.objects.filter(pk__in=quiet).update(lease_expires_at=lease)
            bulk_copy(
                [TestGrade(invocation=cell.invocation, **cell.grade_fields) for cell in succeeded]
            )
            booked = len(writes.runs) + len(ended)
            if booked:
                # Every write of the test books into the same group and session rows, locked
                # from here to the commit: before the tally, so the last write to commit counts
                # every other one's cells (its tally says finished).
                runs_booked(
                    group_id=self.test.group_id,
                    session_id=self.test.group.session_id,
                    runs=booked,
                    tokens=sum(run.total_tokens for run in writes.runs),
                    cost=sum((run.cost for run in writes.runs), Decimal("0")),
                    started=min(
                        run.started_at for run in [*writes.runs, *(c.envelope for c in ended)]
                    ),
                    finished=now,
                )
            named = {str(pk) for pk in live}
            items = [item for item in writes.items if item[2]["invocation_id"] in named]
            events.event_emit_many(items=items + self._final_items(ended))
            for cell in ended:
                del self.cells[cell.invocation.pk]
        return bool(ended)

    def _lock_held(self) -> set:
        """Which held cells are still this engine's, their rows locked until the commit."""
        if not self.cells:
            return set()
        return set(
            Invocation.objects.select_for_update()
            .filter(
                pk__in=list(self.cells),
                status=InvocationStatus.RUNNING,
                worker_token=self.token,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def _drop(self, cell: Conversation) -> None:
        """A cell halted or taken over: no further call or write for it."""
        with self.lock:
            if not cell.ended:
                self.talking -= 1
            cell.halted = True
        if cell.future is not None:
            cell.future.cancel()

    def _final_items(self, ended: list) -> list[tuple[Run, str, dict]]:
        """The ended cells' last events, then the test's tally once per cell (after every
        completion: a group watcher stops at the first tally that says finished). The write
        that ends the test's last cell marks the test finished."""
        if not ended:
            return []
        items, tallies = [], []
        tally = test_progress(test_id=self.test_id)
        if tally["finished"]:
            Test.objects.filter(pk=self.test_id, status=TestStatus.RUNNING).update(
                status=TestStatus.FINISHED, updated_at=timezone.now()
            )
        for cell in ended:
            ids = _ids(cell.invocation)
            artifact = str(cell.invocation.pk)
            if cell.error:
                status = InvocationStatus.FAILED
                items.append(
                    (
                        cell.envelope,
                        events.ERROR,
                        {
                            **ids,
                            "resource_type": "invocation",
                            "resource_id": artifact,
                            "message": cell.error,
                            "status": status,
                        },
                    )
                )
            else:
                status = InvocationStatus.SUCCEEDED
                summary = f"{cell.score}/{cell.total_points}"
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
                            "status": status,
                        },
                    ),
                ]
            tallies.append((cell.envelope, TEST_PROGRESS_EVENT, {**ids, "status": status}))
        # Each tally counts the cells ended up to its own: a watcher's count goes up by one.
        for index, (_envelope, _kind, payload) in enumerate(tallies):
            payload.update(
                _tally_before(tally, [item[2]["status"] for item in tallies[index + 1 :]])
            )
        return items + tallies


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


def _price(model) -> tuple[Decimal, Decimal]:
    if model is None:
        return Decimal("0"), Decimal("0")
    return model.input_price_per_million, model.output_price_per_million


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
        # The engine's bookkeeping of the cell.
        self.future = None
        self.envelope_saved = False
        self.halted = False
        self.ended = False
        self.grade_fields: dict | None = None
        self.error = ""

    # -- shapes the providers read ------------------------------------------------------------

    def _persona(self) -> dict:
        """The same persona material a learner's chat gives the simulator (attempts.prompts)."""
        persona = self.invocation.scenario.persona
        return {
            "name": persona.title.split(",")[0],
            "traits": persona.traits,
            "description": persona.description,
            "intensity": persona.intensity,
            "voice": persona.voice,
            "goal": persona.goal,
            "concerns": list(persona.concerns or []),
            "phrases": list(persona.phrases or []),
        }

    def _scenario(self) -> dict:
        scenario = self.invocation.scenario
        return {
            "title": scenario.title,
            "context": scenario.context,
            "persona_opens": scenario.persona_opens,
            "opening_line": scenario.opening_line,
            "learner_goal": scenario.learner_goal,
            "concerns": list(scenario.concerns or []),
        }

    def _seeded(self, context: dict) -> dict:
        """Repeats of a cell (test/start `repeats`) differ: the simulator hashes its context,
        so run r carries seed r (run 0 reads as an unrepeated cell)."""
        if self.invocation.seed:
            context["seed"] = self.invocation.seed
        return context

    def _parameters(self) -> dict:
        """The cell's parameter set, else its agent's, as CompletionRequest fields; a set seed
        is offset by the repeat so repeats of a cell still differ."""
        chosen = self.invocation.parameter_set or self.invocation.agent.parameter_set
        options = chosen.options() if chosen is not None else {}
        if "seed" in options:
            options["seed"] += self.invocation.seed
        return options

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

    def turn_progress(self, turn: int) -> dict:
        return {
            **_ids(self.invocation),
            "completed_resources": turn,
            "total_resources": self.turns + 1,
            "percentage": round(turn * 100 / (self.turns + 1)),
            "last_completed_resource": f"turn {turn}",
        }

    def agent_request(self) -> CompletionRequest:
        agent = self.invocation.agent
        return CompletionRequest(
            messages=[
                {"role": "system", "content": self._agent_system()},
                *self._chat(speaker="agent"),
            ],
            model=self.invocation.model.provider_model,
            **self._parameters(),
            task="agent_turn",
            context=self._seeded(
                {
                    "agent": {
                        "title": agent.title,
                        "system_prompt": agent.system_prompt,
                        "tools": [
                            {
                                "name": tool.name,
                                "schema": tool.json_schema,
                                "description": tool.title,
                            }
                            for tool in self.tools
                        ],
                    },
                    "transcript": self._simulator_transcript(),
                    "scenario": self._scenario(),
                    "persona": self._persona(),
                }
            ),
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
            context=self._seeded(
                {
                    "persona": self._persona(),
                    "scenario": self._scenario(),
                    "transcript": self._simulator_transcript()[:-1],
                    "learner_message": agent_line,
                }
            ),
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

    def progress_fields(self) -> dict:
        """The invocation's fields as they stand (a copy: the cell goes on talking)."""
        return {
            "transcript": list(self.transcript),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
        }

    # -- grading ------------------------------------------------------------------------------

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
