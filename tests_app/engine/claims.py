"""Claims: a worker's share of a test's queued cells, held as leases; cells that ran before start over."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from system.ledger import runs_booked
from system.models import FINISHED, Group, Run, RunStatus
from tests_app.models import (
    Invocation,
    InvocationStatus,
    Test,
    TestGrade,
    TestStatus,
    ToolCall,
)

# A test's concurrency is shared by this many worker tasks; each claims a share at a time.
WORKERS_PER_TEST = 4


# A worker with room that got less asks again when a cell of its own ends, or this late.
CLAIM_SECONDS = 0.1
SUPERSEDED = "Superseded by a new run."


def share(concurrency: int) -> int:
    """Cells one worker task claims at a time (it may hold up to the whole concurrency)."""
    return max(1, math.ceil(concurrency / WORKERS_PER_TEST))


def lease_seconds() -> float:
    return float(getattr(settings, "GLOW_TEST_LEASE_SECONDS", 60.0))


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
