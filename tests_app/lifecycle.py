"""A test's life: the fan-out start, recovery after lost workers, halting, stop, complete, draft/publish."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from glow.catalog.models import Eval
from glow.core.bulk import bulk_insert
from glow.core.errors import ApplicationError
from glow.core.ids import uuid7
from glow.core.registry import registry
from glow.core.selectors import artifact_access
from glow.core.services import artifact_retitle
from system import events
from system.ledger import group_create, run_finish, timeline_record
from system.models import Run, RunStatus
from tests_app.guards import _parameter_set, _scoped_rows, require_open, require_staff
from tests_app.keys import _key_ids
from tests_app.models import (
    ACTIVE,
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    Invocation,
    InvocationStatus,
    Test,
    TestStatus,
)
from tests_app.selectors import (
    test_access,
    test_progress,
)

DEFAULT_MAX_CELLS = 5000


def workers_dispatch(*, test: Test, queued: int) -> int:
    """Enough worker tasks to fill the test's concurrency (at most claims.WORKERS_PER_TEST),
    each claiming its share of cells at a time; each drains the queue, extras just exit."""
    from glow.core.tasks import enqueue
    from tests_app.engine.claims import WORKERS_PER_TEST, share
    from tests_app.tasks import invocations_drain

    count = min(WORKERS_PER_TEST, -(-min(test.concurrency, queued) // share(test.concurrency)))
    for _ in range(count):
        enqueue(invocations_drain, str(test.pk), uuid.uuid4().hex)
    return count


def test_finish_if_done(*, test_id: Any) -> bool:
    """A running test none of whose cells is queued or running any more is finished (the
    engine's last write does this; a halt of the last active cell does it here)."""
    return bool(
        Test.objects.filter(pk=test_id, status=TestStatus.RUNNING)
        .exclude(invocations__status__in=ACTIVE)
        .update(status=TestStatus.FINISHED, updated_at=timezone.now())
    )


@transaction.atomic
def test_recover(*, test_id: Any) -> dict:
    """Cells whose worker stopped renewing its lease go back to the queue, with workers to run
    them; a test with no active cell left is finished; while cells are held, this runs again
    when their leases could next run out. Safe to run any time, any number of times."""
    test = Test.objects.select_for_update().filter(pk=test_id).first()
    if test is None or test.status != TestStatus.RUNNING:
        return {"requeued": 0, "dispatched": 0}
    now = timezone.now()
    requeued = Invocation.objects.filter(
        test=test, status=InvocationStatus.RUNNING, lease_expires_at__lt=now
    ).update(status=InvocationStatus.QUEUED, worker_token="", lease_expires_at=None)
    queued = Invocation.objects.filter(test=test, status=InvocationStatus.QUEUED).count()
    dispatched = workers_dispatch(test=test, queued=queued) if queued else 0
    if not queued and not test_finish_if_done(test_id=test.pk):
        test_recover_schedule(test_id=test.pk)
    elif dispatched:
        _publish_progress(test)
    return {"requeued": requeued, "dispatched": dispatched}


def test_recover_schedule(*, test_id: Any) -> None:
    """test_recover once the earliest lease of the test's running cells could have run out
    (once per test and lease period: every worker that leaves asks)."""
    from glow.core.caching import cache_call
    from tests_app.tasks import test_recover_task

    earliest = (
        Invocation.objects.filter(test_id=test_id, status=InvocationStatus.RUNNING)
        .order_by("lease_expires_at")
        .values_list("lease_expires_at", flat=True)
        .first()
    )
    if earliest is None:
        test_finish_if_done(test_id=test_id)
        return
    delay = max(1.0, (earliest - timezone.now()).total_seconds() + 1.0)
    if settings.GLOW_TASK_MODE != "celery":
        return  # no timer to wait on outside Celery: the next worker start recovers
    if cache_call("add", f"tests_app:recover:{test_id}", 1, max(1, int(delay) - 1)) is False:
        return
    transaction.on_commit(
        lambda: test_recover_task.apply_async(args=[str(test_id)], countdown=delay), robust=True
    )


def tests_recover() -> int:
    """test_recover for every running test with active cells (a worker process starting)."""
    ids = list(
        Test.objects.filter(status=TestStatus.RUNNING, invocations__status__in=ACTIVE)
        .values_list("pk", flat=True)
        .distinct()
    )
    for test_id in ids:
        test_recover(test_id=test_id)
    return len(ids)


@transaction.atomic
def test_start(
    *,
    actor,
    session,
    eval_id: Any,
    model_ids: list,
    scenario_ids: list,
    agent_ids: list,
    title: str = "",
    concurrency: int | None = None,
    key_ids: list | None = None,
    secrets: list[dict] | None = None,
    idempotency_key: str = "",
    dispatch: bool = True,
    repeats: int = 1,
    parameter_id: Any = None,
) -> tuple[Test, bool]:
    """Create the test and one queued invocation per cell and repeat in one INSERT, then start
    its workers. Repeat r of a cell carries seed r, so two agents' r-th runs pair up.

    Answers (test, created); a repeated Idempotency-Key answers the first test, created False.
    """
    require_staff(actor)
    if idempotency_key:
        existing = Test.objects.filter(
            organization_id=actor.organization_id,
            started_by=actor,
            idempotency_key=idempotency_key,
        ).first()
        if existing is not None:
            return existing, False
    repeats = max(1, int(repeats or 1))
    cells = len(set(model_ids)) * len(set(scenario_ids)) * len(set(agent_ids)) * repeats
    limit = getattr(settings, "GLOW_TEST_MAX_CELLS", DEFAULT_MAX_CELLS)
    if cells > limit:
        raise ApplicationError(
            f"{cells} cells (with repeats) is more than the {limit} a test may have.",
            code="too_many_cells",
            fields={"model_ids": [f"At most {limit} model x scenario x agent cells."]},
        )
    evaluation = artifact_access(actor=actor, family=registry.get("eval"), pk=eval_id)
    models = _scoped_rows(actor=actor, family_name="model", ids=model_ids, field="model_ids")
    scenarios = _scoped_rows(
        actor=actor, family_name="scenario", ids=scenario_ids, field="scenario_ids"
    )
    agents = _scoped_rows(actor=actor, family_name="agent", ids=agent_ids, field="agent_ids")
    parameters = _parameter_set(actor=actor, parameter_id=parameter_id)
    keys = _key_ids(actor=actor, key_ids=key_ids, secrets=secrets)
    name = title.strip() or (
        f"{evaluation.title} · {len(models)} models × {len(scenarios)} scenarios × "
        f"{len(agents)} agents"
    )
    test = Test(
        organization_id=actor.organization_id,
        title=name[:300],
        created_by=actor,
        started_by=actor,
        eval=evaluation,
        department_id=evaluation.department_id,
        concurrency=min(concurrency or DEFAULT_CONCURRENCY, MAX_CONCURRENCY),
        axes={
            "model_ids": [str(row.pk) for row in models],
            "scenario_ids": [str(row.pk) for row in scenarios],
            "agent_ids": [str(row.pk) for row in agents],
        },
        repeats=repeats,
        idempotency_key=idempotency_key,
    )
    # The group names the test's id before the row exists: one INSERT each, no UPDATE after.
    test.group = group_create(
        actor=actor, session=session, family="test", name=test.title, artifact_id=test.pk
    )
    if idempotency_key:
        try:
            with transaction.atomic():
                test.save(force_insert=True)
        except IntegrityError:
            # The same Idempotency-Key raced in from a retry: the first one's test is the answer,
            # and this attempt's group and secrets are rolled back with it.
            first = Test.objects.get(
                organization_id=actor.organization_id,
                started_by=actor,
                idempotency_key=idempotency_key,
            )
            transaction.set_rollback(True)
            return first, False
    else:
        test.save(force_insert=True)
    invocations = [
        {
            "id": uuid7(),  # time-ordered, as Artifact ids are: 1,000 appends, not random pages
            "organization_id": actor.organization_id,
            "created_by_id": actor.pk,
            "title": (
                f"{model.title} · {scenario.title} · {agent.title}"
                + (f" · run {repeat + 1}/{repeats}" if repeats > 1 else "")
            )[:300],
            "test_id": test.pk,
            "model_id": model.pk,
            "scenario_id": scenario.pk,
            "agent_id": agent.pk,
            "parameter_set_id": parameters.pk if parameters else None,
            "position": position,
            "repeat": repeat,
            "seed": repeat,
            "key_ids": keys,
        }
        for position, (model, scenario, agent, repeat) in enumerate(
            (model, scenario, agent, repeat)
            for model in models
            for scenario in scenarios
            for agent in agents
            for repeat in range(repeats)
        )
    ]
    bulk_insert(Invocation, invocations)
    test.first_invocation_id = invocations[0]["id"]
    test.invocation_count = len(invocations)
    test.started_key_ids = keys
    timeline_record(
        actor=actor,
        session=session,
        event_type="test.started",
        entity_id=test.pk,
        entity_name=test.title,
        extra_1=f"{cells} invocations",
        extra_2=evaluation.title,
    )
    if dispatch:
        workers_dispatch(test=test, queued=cells)
    return test, True


def invocation_count(test: Test) -> int:
    cached = getattr(test, "invocation_count", None)
    return cached if cached is not None else test.invocations.count()


def started_key_ids(test: Test) -> list[str]:
    """The keys every cell of the start got (a replayed start reads them from its first cell)."""
    cached = getattr(test, "started_key_ids", None)
    if cached is not None:
        return cached
    first = Invocation.objects.filter(pk=first_invocation_id(test)).values_list(
        "key_ids", flat=True
    )
    return list(first.first() or [])


def first_invocation_id(test: Test):
    cached = getattr(test, "first_invocation_id", None)
    if cached is not None:
        return cached
    return (
        Invocation.objects.filter(test=test)
        .order_by("position", "created_at")
        .values_list("pk", flat=True)
        .first()
    )


def _halt(*, queryset, reason: str) -> tuple[int, Any]:
    """Terminate the active invocations of `queryset`; answers (how many, the first one's id).

    Running ones are locked first, so a runner finishing at the same moment either committed
    before (and is kept) or sees the new status and stops writing. Their in-flight model
    calls get the cancel flag, and their envelope runs end here with a terminal error event.
    """
    active = queryset.filter(status__in=ACTIVE)
    # Locked in primary-key order, as a runner's batch locks its rows: the two never deadlock.
    running = list(
        active.filter(status=InvocationStatus.RUNNING)
        .select_for_update(of=("self",))
        .order_by("pk")
        .values_list("pk", "run_id", "test_id")
    )
    first = active.order_by("position", "created_at").values_list("pk", flat=True).first()
    now = timezone.now()
    halted = active.update(
        status=InvocationStatus.TERMINATED, finished_at=now, error=reason, updated_at=now
    )
    running_ids = [pk for pk, _, _ in running]
    if running_ids:
        Run.objects.filter(
            artifact_id__in=running_ids, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        ).update(cancel_requested=True)
    for pk, run_id, test_id in running:
        envelope = Run.objects.filter(pk=run_id).first() if run_id else None
        if envelope is None or envelope.finished:
            continue
        run_finish(run=envelope, status=RunStatus.CANCELLED, error=reason)
        events.event_emit(
            run=envelope,
            event_type=events.ERROR,
            payload={
                "test_id": str(test_id),
                "invocation_id": str(pk),
                "resource_type": "invocation",
                "resource_id": str(pk),
                "message": reason,
                "status": InvocationStatus.TERMINATED,
            },
        )
    return halted, first


def _publish_progress(test: Test, **extra) -> None:
    if test.group_id:
        events.group_publish(
            group_id=test.group_id,
            event_type="TestProgressEvent",
            payload={"test_id": str(test.pk), **test_progress(test_id=test.pk), **extra},
        )


@transaction.atomic
def test_stop(*, actor, session=None, test_id: Any) -> dict:
    """Halt queued and running invocations; finished ones are kept; the test is not finalized."""
    require_staff(actor)
    test = test_access(actor=actor, pk=test_id, for_update=True)
    require_open(test)
    halted, first = _halt(
        queryset=Invocation.objects.filter(test=test), reason=f"Stopped by {actor.name}."
    )
    # Counted once _halt holds the running rows: a batch finishing meanwhile is kept, not halted.
    kept = Invocation.objects.filter(test=test).exclude(status__in=ACTIVE).count() - halted
    Test.objects.filter(pk=test.pk).update(
        status=TestStatus.STOPPED, updated_at=timezone.now(), version=F("version") + 1
    )
    timeline_record(
        actor=actor,
        session=session,
        event_type="test.stopped",
        entity_id=test.pk,
        entity_name=test.title,
        extra_1=f"{halted} halted",
        extra_2=f"{kept} kept",
    )
    _publish_progress(test, stopped=True)
    if halted:
        message = f"Stopped {halted} queued or running invocation(s); {kept} finished kept."
    else:
        message = f"Nothing to stop: all {kept} invocation(s) had already finished."
    return {
        "test_id": test.pk,
        "invocation_id": first,
        "success": True,
        "message": message,
        "stopped_count": halted,
        "kept_count": kept,
    }


@transaction.atomic
def test_complete(*, actor, session=None, test_id: Any, message: str = "") -> Test:
    """The terminal write: active cells are terminated, succeeded ones completed. Idempotent."""
    require_staff(actor)
    test = test_access(actor=actor, pk=test_id, for_update=True)
    if test.status == TestStatus.COMPLETED:
        return test
    _halt(
        queryset=Invocation.objects.filter(test=test),
        reason="Terminated when the test was completed.",
    )
    now = timezone.now()
    Invocation.objects.filter(test=test, status=InvocationStatus.SUCCEEDED).update(
        status=InvocationStatus.COMPLETED, updated_at=now
    )
    Test.objects.filter(pk=test.pk).update(
        status=TestStatus.COMPLETED, completed_at=now, updated_at=now, version=F("version") + 1
    )
    timeline_record(
        actor=actor,
        session=session,
        event_type="test.completed",
        entity_id=test.pk,
        entity_name=test.title,
        extra_1=message[:300],
    )
    _publish_progress(test, completed=True)
    test.refresh_from_db()
    return test


@transaction.atomic
def test_departments_refresh(*, actor) -> int:
    """Re-copy each test's department from its eval (the denormalised column search filters on)."""
    require_staff(actor)
    department = Eval.objects.filter(pk=OuterRef("eval_id")).values("department_id")[:1]
    return (
        Test.objects.filter(organization_id=actor.organization_id)
        .exclude(department_id=Subquery(department))
        .update(department_id=Subquery(department))
    )


@transaction.atomic
def test_retitle(*, actor, family, pk: Any, title: str, version: int | None = None) -> Test:
    """The title op's write for tests: an open test takes a new title, a completed one refuses."""
    require_open(artifact_access(actor=actor, family=family, pk=pk, for_update=True))
    return artifact_retitle(actor=actor, family=family, pk=pk, title=title, version=version)


def test_write(instance: Test, data: dict) -> Test:
    """draft/publish of a test: title, description and concurrency, while it is open."""
    if instance._state.adding:
        raise ApplicationError(
            "Tests are created with test/start.", code="use_start", fields={"data": ["No id."]}
        )
    require_open(instance)
    for name, value in data.items():
        setattr(instance, name, value)
    instance.save()
    return instance
