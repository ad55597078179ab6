"""The engine a worker task runs: its cells as coroutines on the model-call loop, their writes in sets."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from glow.ai import CompletionRequest, ProviderError
from glow.ai import calls as model_calls
from glow.catalog.models import Rubric
from glow.core.bulk import bulk_copy, bulk_set
from system import events
from system.gateway import model_cost, provider_for
from system.ledger import provider_of, runs_booked
from system.models import Run, RunStatus
from tests_app.engine.claims import CLAIM_SECONDS, _restart, invocations_claim, lease_seconds, share
from tests_app.engine.conversation import Conversation
from tests_app.engine.slots import (
    TEST_PROGRESS_EVENT,
    WRITTEN_FIELDS,
    CellHalted,
    SlotCatalog,
    Writes,
    _envelope_params,
    _ids,
    _tally_before,
)
from tests_app.models import (
    Invocation,
    InvocationStatus,
    Test,
    TestGrade,
    TestStatus,
)
from tests_app.selectors import test_progress

logger = logging.getLogger(__name__)


# While cells talk, what they did reaches the database at most this late.
FLUSH_SECONDS = 0.25
# A cell that ended is written at most this late (its slot is reused at once: see claims).
END_FLUSH_SECONDS = 0.1
# A worker that got its full share asks for another this soon.
RAMP_SECONDS = 0.03


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
            from tests_app.lifecycle import test_recover_schedule

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
            _rubric, structure = self.rubric
            _run, result = await self._call(cell, "grade", None, cell.grade_request(structure))
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
        run.cost = model_cost(model=model, usage=result.usage)
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
