"""Writes for tests: the fan-out start, stop, grade, feedback, decrypt, complete, export; invocations."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import uuid
import zipfile
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Avg, F, Max, OuterRef, Subquery, Sum
from django.utils import timezone

from glow.catalog.models import Eval, Standard, StandardGroup
from glow.core import media
from glow.core.bulk import bulk_insert
from glow.core.caching import cache_call
from glow.core.errors import ApplicationError, NotFound, PermissionDenied, StateError
from glow.core.ids import uuid7
from glow.core.models import Upload, UploadKind
from glow.core.registry import registry
from glow.core.selectors import artifact_access, artifact_queryset
from system import events
from system.models import Run, RunStatus
from system.services import group_create, run_finish, timeline_record
from tests_app import crypto
from tests_app.models import (
    ACTIVE,
    DEFAULT_CONCURRENCY,
    MAX_CONCURRENCY,
    Feedback,
    GradeSource,
    Invocation,
    InvocationStatus,
    SecretKey,
    Test,
    TestGrade,
    TestStatus,
    ToolCall,
)
from tests_app.selectors import (
    benchmark_grid,
    export_invocations,
    invocation_access,
    test_access,
    test_progress,
    tool_call_body,
)

DECRYPT_CACHE_SECONDS = 300
DEFAULT_MAX_CELLS = 5000
EXPORT_VIEWS = ("test", "invocations")


def require_staff(actor) -> None:
    if not actor.is_staff_role:
        raise PermissionDenied("Only instructors and admins may run and grade tests.")


def require_open(test: Test) -> None:
    if test.status == TestStatus.COMPLETED:
        raise StateError(
            "This test is completed: it and its invocations no longer change.",
            code="test_completed",
        )


def _scoped_rows(*, actor, family_name: str, ids, field: str) -> list:
    """Rows in the order given (duplicates dropped); any id the actor cannot see is a 404 naming it."""
    unique = list(dict.fromkeys(ids))
    family = registry.get(family_name)
    rows = {
        row.pk: row for row in artifact_queryset(actor=actor, family=family).filter(pk__in=unique)
    }
    missing = [str(pk) for pk in unique if pk not in rows]
    if missing:
        raise NotFound(
            f"Unknown {field}: {', '.join(missing)}.", code="unknown_ids", fields={field: missing}
        )
    return [rows[pk] for pk in unique]


def _parameter_set(*, actor, parameter_id: Any):
    """The parameter set a test's cells name (404 if the actor cannot see it); None: none."""
    if parameter_id is None:
        return None
    (row,) = _scoped_rows(
        actor=actor, family_name="parameter", ids=[parameter_id], field="parameter_id"
    )
    return row


def _key_ids(*, actor, key_ids, secrets) -> list[str]:
    """Existing keys of the organization plus new secrets, encrypted before they are stored."""
    unique = list(dict.fromkeys(key_ids or []))
    found = set(
        SecretKey.objects.filter(organization_id=actor.organization_id, pk__in=unique).values_list(
            "pk", flat=True
        )
    )
    missing = [str(pk) for pk in unique if pk not in found]
    if missing:
        raise NotFound(
            f"Unknown key_ids: {', '.join(missing)}.",
            code="unknown_ids",
            fields={"key_ids": missing},
        )
    created = [
        secret_key_build(actor=actor, label=secret["label"], value=secret["value"])
        for secret in secrets or []
    ]
    SecretKey.objects.bulk_create(created)
    return [str(pk) for pk in unique] + [str(key.pk) for key in created]


def secret_key_build(*, actor, label: str, value: str) -> SecretKey:
    key = SecretKey(organization_id=actor.organization_id, label=label[:200], created_by=actor)
    key.ciphertext = crypto.encrypt(value, aad=key.aad)
    return key


@transaction.atomic
def secret_key_create(*, actor, label: str, value: str) -> SecretKey:
    require_staff(actor)
    key = secret_key_build(actor=actor, label=label, value=value)
    key.save()
    return key


def workers_dispatch(*, test: Test, queued: int) -> int:
    """Enough worker tasks to fill the test's concurrency (at most runner.WORKERS_PER_TEST),
    each claiming its share of cells at a time; each drains the queue, extras just exit."""
    from glow.core.tasks import enqueue
    from tests_app.runner import WORKERS_PER_TEST, share
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


# -- halting --------------------------------------------------------------------------------------


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


# -- grading --------------------------------------------------------------------------------------


def _rubric_total(test: Test) -> int:
    total = Standard.objects.filter(group__rubric_id=test.eval.rubric_id).aggregate(
        total=Sum("points")
    )["total"]
    return int(total or 0)


def grade_rollup(grade: TestGrade, *, rubric_id, total_from_groups: bool) -> TestGrade:
    """Bring what is derived from a grade's inputs back in line with them: each standard group's
    score is staff feedback's mean over tool calls where there is some, else what the grade held;
    with `total_from_groups`, the grade's score (and `full`) become the sum once every group has
    a score. Nothing is left saying what the inputs no longer say."""
    held = {str(item.get("standard_group_id")): item.get("score") for item in grade.groups or []}
    given = {
        str(row["standard_group_id"]): row["mean"]
        for row in Feedback.objects.filter(grade=grade)
        .values("standard_group_id")
        .annotate(mean=Avg("score"))
    }
    groups = []
    for group in (
        StandardGroup.objects.filter(rubric_id=rubric_id)
        .annotate(points=Sum("standards__points"))
        .order_by("position", "name")
    ):
        key = str(group.pk)
        score = given.get(key, held.get(key))
        groups.append(
            {
                "standard_group_id": key,
                "name": group.name,
                "score": None if score is None else round(float(score), 2),
                "total_points": int(group.points or 0),
            }
        )
    grade.groups = groups
    if total_from_groups and groups and all(item["score"] is not None for item in groups):
        grade.score = Decimal(str(sum(item["score"] for item in groups))).quantize(Decimal("0.01"))
        grade.full = bool(grade.total_points) and grade.score == grade.total_points
    grade.save()
    return grade


@transaction.atomic
def test_grade(
    *,
    actor,
    invocation_id: Any,
    full: bool = False,
    score: Decimal | None = None,
    feedback: str | None = None,
) -> TestGrade:
    """Set an invocation's grade: `full` gives the rubric's total_points, else `score` (0..total)."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    test = Test.objects.select_related("eval").get(pk=invocation.test_id)
    require_open(test)
    if invocation.status in ACTIVE:
        raise StateError(
            f"The invocation is {invocation.status}: grade it once it has finished.",
            code="invocation_active",
        )
    total = _rubric_total(test)
    if full:
        score = Decimal(total)
    elif score is None:
        raise ApplicationError(
            "Give score, or full: true.", fields={"score": ["This field is required."]}
        )
    score = Decimal(str(score))
    if score < 0 or score > total:
        raise ApplicationError(
            f"score must be between 0 and the rubric's {total} points.",
            fields={"score": [f"Between 0 and {total}."]},
        )
    grade = TestGrade.objects.filter(invocation=invocation).first()
    if full:
        groups = [
            {
                "standard_group_id": str(group.pk),
                "name": group.name,
                "score": float(group.points or 0),
                "total_points": int(group.points or 0),
            }
            for group in StandardGroup.objects.filter(rubric_id=test.eval.rubric_id)
            .annotate(points=Sum("standards__points"))
            .order_by("position", "name")
        ]
    else:
        # A total set by hand: the grader's per-group figures no longer add up to it, so they
        # are dropped (feedback given per group still counts, through grade_rollup).
        groups = []
    values = {
        "organization_id": invocation.organization_id,
        "score": score,
        "total_points": total,
        "full": bool(total) and score == total,
        "source": GradeSource.MANUAL,
        "groups": groups,
        "graded_by": actor,
    }
    if feedback is not None:
        values["feedback"] = feedback
    if grade is None:
        grade = TestGrade.objects.create(invocation=invocation, **values)
    else:
        for name, value in values.items():
            setattr(grade, name, value)
        grade.save()
    return grade_rollup(grade, rubric_id=test.eval.rubric_id, total_from_groups=False)


@transaction.atomic
def test_feedback(
    *,
    actor,
    grade_id: Any,
    standard_group_id: Any,
    score: Decimal,
    feedback: str = "",
    tool_call_id: Any = None,
) -> tuple[Feedback, bool]:
    """Upsert the one feedback row of (grade, tool call, standard group); without a tool call
    the row is about the invocation as a whole. Answers (row, created)."""
    require_staff(actor)
    grade = (
        TestGrade.objects.filter(pk=grade_id, organization_id=actor.organization_id)
        .values_list("invocation_id", flat=True)
        .first()
    )
    if grade is None:
        raise NotFound("No grade with that id.")
    try:
        invocation = invocation_access(actor=actor, pk=grade)
    except NotFound:
        raise NotFound("No grade with that id.")
    test = Test.objects.select_related("eval").get(pk=invocation.test_id)
    require_open(test)
    tool_call = None
    if tool_call_id is not None:
        tool_call = ToolCall.objects.filter(
            pk=tool_call_id, invocation__organization_id=actor.organization_id
        ).first()
        if tool_call is None:
            raise NotFound("No tool call with that id.")
        if tool_call.invocation_id != invocation.pk:
            raise ApplicationError(
                "That tool call belongs to another invocation than the grade.",
                fields={"tool_call_id": ["Not a tool call of this grade's invocation."]},
            )
    group = (
        StandardGroup.objects.filter(
            pk=standard_group_id, rubric__organization_id=actor.organization_id
        )
        .annotate(points=Sum("standards__points"))
        .first()
    )
    if group is None:
        raise NotFound("No standard group with that id.")
    if group.rubric_id != test.eval.rubric_id:
        raise ApplicationError(
            "That standard group is not in the eval's rubric.",
            fields={"standard_group_id": ["Not in this test's rubric."]},
        )
    points = int(group.points or 0)
    score = Decimal(str(score))
    if score < 0 or score > points:
        raise ApplicationError(
            f"score must be between 0 and the group's {points} points.",
            fields={"score": [f"Between 0 and {points}."]},
        )
    triple = {
        "grade_id": grade_id,
        "tool_call_id": tool_call.pk if tool_call else None,
        "standard_group_id": group.pk,
    }
    values = {"score": score, "feedback": feedback, "author": actor}
    if tool_call is None:
        # The partial unique index (tool_call IS NULL) has no ON CONFLICT target in the ORM:
        # the grade's row lock makes the look-up and the insert one step.
        TestGrade.objects.select_for_update().filter(pk=grade_id).values("pk").first()
        row = Feedback.objects.filter(**triple).first()
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)
            row.save(update_fields=[*values, "updated_at"])
            return row, False
        row = Feedback.objects.create(organization_id=actor.organization_id, **triple, **values)
        return row, True
    existed = Feedback.objects.filter(**triple).exists()
    # ON CONFLICT DO UPDATE: two racing writers of one triple still leave one row.
    Feedback.objects.bulk_create(
        [Feedback(organization_id=actor.organization_id, **values, **triple)],
        update_conflicts=True,
        unique_fields=["grade", "tool_call", "standard_group"],
        update_fields=["score", "feedback", "author", "updated_at"],
    )
    # The grade's group sums and total follow the feedback (the benchmark reads them too).
    stored = TestGrade.objects.select_for_update().get(pk=grade_id)
    stored.source = GradeSource.MANUAL
    grade_rollup(stored, rubric_id=test.eval.rubric_id, total_from_groups=True)
    return Feedback.objects.get(**triple), not existed


# -- decrypt --------------------------------------------------------------------------------------


def decrypt_cache_key(invocation_id: Any, key_id: Any) -> str:
    return f"tests_app:decrypt:{invocation_id}:{key_id}"


@transaction.atomic
def test_decrypt(
    *, actor, session=None, invocation_id: Any, key_id: Any, bypass_cache: bool = False
) -> dict:
    """Plaintext of a key the invocation holds (else 403); cached briefly, every call audited."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id)
    if str(key_id) not in {str(pk) for pk in invocation.key_ids or []}:
        raise PermissionDenied(
            "That key does not belong to this invocation.", code="key_not_in_invocation"
        )
    cache_key = decrypt_cache_key(invocation.pk, key_id)
    found = None if bypass_cache else cache_call("get", cache_key)
    if found is None:
        key = SecretKey.objects.filter(pk=key_id, organization_id=actor.organization_id).first()
        if key is None:
            raise NotFound("No key with that id.")
        try:
            plaintext = crypto.decrypt(key.ciphertext, aad=key.aad)
        except crypto.DecryptionError:
            raise StateError(
                "This key cannot be decrypted with the server's current secrets key.",
                code="undecryptable",
            )
        found = {"label": key.label, "plaintext": plaintext}
        cache_call("set", cache_key, found, DECRYPT_CACHE_SECONDS)
        cached = False
    else:
        cached = True
    timeline_record(
        actor=actor,
        session=session,
        event_type="test.decrypt",
        entity_id=invocation.pk,
        entity_name=found["label"],
        extra_1=key_id,
        extra_2="cache" if cached else "fresh",
    )
    return {
        "invocation_id": invocation.pk,
        "key_id": key_id,
        "label": found["label"],
        "plaintext": found["plaintext"],
        "cached": cached,
    }


# -- export ---------------------------------------------------------------------------------------

INVOCATION_COLUMNS = [
    "invocation_id",
    "position",
    "model",
    "scenario",
    "agent",
    "status",
    "score",
    "total_points",
    "tool_calls",
    "messages",
    "input_tokens",
    "output_tokens",
    "cost",
    "started_at",
    "finished_at",
    "error",
]


def _iso(value) -> str:
    return value.isoformat() if value else ""


def _invocation_row(invocation: Invocation) -> list:
    grade = getattr(invocation, "grade", None)
    return [
        invocation.pk,
        invocation.position,
        invocation.model.title,
        invocation.scenario.title,
        invocation.agent.title,
        invocation.status,
        "" if grade is None else grade.score,
        "" if grade is None else grade.total_points,
        len(invocation.tool_calls.all()),
        len(invocation.transcript or []),
        invocation.input_tokens,
        invocation.output_tokens,
        invocation.cost,
        _iso(invocation.started_at),
        _iso(invocation.finished_at),
        invocation.error,
    ]


def _invocation_json(invocation: Invocation) -> dict:
    grade = getattr(invocation, "grade", None)
    return {
        "invocation_id": str(invocation.pk),
        "model": invocation.model.title,
        "scenario": invocation.scenario.title,
        "agent": invocation.agent.title,
        "status": invocation.status,
        "transcript": invocation.transcript,
        "tool_calls": [tool_call_body(call) for call in invocation.tool_calls.all()],
        "grade": None
        if grade is None
        else {
            "grade_id": str(grade.pk),
            "score": grade.score,
            "total_points": grade.total_points,
            "groups": grade.groups,
            "feedback": grade.feedback,
            "source": grade.source,
        },
    }


def test_export(
    *, actor, session=None, test_id: Any, view: str = "test", invocation_id: Any = None
) -> Upload:
    """A ZIP built on disk and stored through core media; `test/file/download` streams it back."""
    test = test_access(actor=actor, pk=test_id)
    if view not in EXPORT_VIEWS:
        raise ApplicationError(
            f"view must be one of {', '.join(EXPORT_VIEWS)}.",
            fields={"view": [f"One of {', '.join(EXPORT_VIEWS)}."]},
        )
    if (
        invocation_id is not None
        and not Invocation.objects.filter(test=test, pk=invocation_id).exists()
    ):
        raise NotFound("No invocation with that id in this test.")
    file_name = f"glow-test-{view}-{str(test.pk)[:8]}.zip"
    rows = 0
    handle, path = tempfile.mkstemp(suffix=".zip")
    try:
        with (
            os.fdopen(handle, "wb") as raw,
            zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            queryset = export_invocations(test=test, invocation_id=invocation_id)
            with (
                archive.open("invocations.csv", "w") as member,
                io.TextIOWrapper(member, encoding="utf-8", newline="") as out,
            ):
                writer = csv.writer(out)
                writer.writerow(INVOCATION_COLUMNS)
                for invocation in queryset.iterator(chunk_size=500):
                    writer.writerow(_invocation_row(invocation))
                    rows += 1
            if view == "invocations":
                # A second pass: a ZIP takes one open member at a time, and memory stays flat.
                for invocation in queryset.iterator(chunk_size=500):
                    archive.writestr(
                        f"invocations/{invocation.position:05d}-{invocation.pk}.json",
                        json.dumps(_invocation_json(invocation), indent=2, default=str),
                    )
            if view == "test":
                grid = benchmark_grid(actor=actor, test_id=test.pk)
                archive.writestr("benchmark.json", json.dumps(grid, indent=2, default=str))
            manifest = {
                "test_id": str(test.pk),
                "title": test.title,
                "view": view,
                "status": test.status,
                "exported_at": _iso(timezone.now()),
                "exported_by": actor.name,
                "row_count": rows,
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        with transaction.atomic():
            upload = media.upload_save_file(
                organization_id=actor.organization_id,
                owner=actor,
                path=path,
                file_name=file_name,
                mime_type="application/zip",
                kind=UploadKind.EXPORT,
                family="test",
                artifact_id=test.pk,
                row_count=rows,
            )
            timeline_record(
                actor=actor,
                session=session,
                event_type="test.export",
                entity_id=test.pk,
                entity_name=test.title,
                extra_1=upload.pk,
                extra_2=view,
            )
    finally:
        os.unlink(path)
    return upload


# -- invocations ----------------------------------------------------------------------------------


def _locked_open_test(test_id: Any) -> Test:
    test = Test.objects.select_for_update().get(pk=test_id)
    require_open(test)
    return test


def _reopen(test: Test) -> None:
    if test.status in (TestStatus.STOPPED, TestStatus.FINISHED):
        Test.objects.filter(pk=test.pk).update(status=TestStatus.RUNNING, updated_at=timezone.now())
        test.status = TestStatus.RUNNING


@transaction.atomic
def invocation_create(
    *,
    actor,
    test_id: Any,
    model_id: Any,
    scenario_id: Any,
    agent_id: Any,
    key_ids: list | None = None,
    secrets: list[dict] | None = None,
    parameter_id: Any = None,
) -> Invocation:
    """Add one cell to an open test and queue it (a stopped test runs again)."""
    require_staff(actor)
    test = test_access(actor=actor, pk=test_id, for_update=True)
    require_open(test)
    (model,) = _scoped_rows(actor=actor, family_name="model", ids=[model_id], field="model_id")
    (scenario,) = _scoped_rows(
        actor=actor, family_name="scenario", ids=[scenario_id], field="scenario_id"
    )
    (agent,) = _scoped_rows(actor=actor, family_name="agent", ids=[agent_id], field="agent_id")
    parameters = _parameter_set(actor=actor, parameter_id=parameter_id)
    keys = _key_ids(actor=actor, key_ids=key_ids, secrets=secrets)
    last = Invocation.objects.filter(test=test).aggregate(last=Max("position"))["last"]
    invocation = Invocation.objects.create(
        organization_id=actor.organization_id,
        created_by=actor,
        title=f"{model.title} · {scenario.title} · {agent.title}"[:300],
        test=test,
        model=model,
        scenario=scenario,
        agent=agent,
        parameter_set=parameters,
        position=0 if last is None else last + 1,
        key_ids=keys,
    )
    axes = {name: list(values) for name, values in (test.axes or {}).items()}
    for name, row in (("model_ids", model), ("scenario_ids", scenario), ("agent_ids", agent)):
        if str(row.pk) not in axes.setdefault(name, []):
            axes[name].append(str(row.pk))
    Test.objects.filter(pk=test.pk).update(axes=axes, updated_at=timezone.now())
    _reopen(test)
    workers_dispatch(test=test, queued=1)
    return invocation


@transaction.atomic
def invocation_run(*, actor, invocation_id: Any) -> Invocation:
    """Queue a finished invocation to run again from the start; an active one is left as it is."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    test = _locked_open_test(invocation.test_id)
    if invocation.status in ACTIVE:
        return invocation
    if invocation.status == InvocationStatus.COMPLETED:
        raise StateError("A completed invocation is final.", code="invocation_completed")
    Invocation.objects.filter(pk=invocation.pk).update(
        status=InvocationStatus.QUEUED,
        error="",
        worker_token="",
        started_at=None,
        finished_at=None,
        updated_at=timezone.now(),
    )
    _reopen(test)
    workers_dispatch(test=test, queued=1)
    invocation.refresh_from_db()
    return invocation


@transaction.atomic
def invocation_terminate(*, actor, invocation_id: Any) -> dict:
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    _locked_open_test(invocation.test_id)
    if invocation.status not in ACTIVE:
        return {
            "invocation_id": invocation.pk,
            "success": False,
            "message": f"Nothing to terminate: the invocation is {invocation.status}.",
            "status": invocation.status,
        }
    _halt(
        queryset=Invocation.objects.filter(pk=invocation.pk),
        reason=f"Terminated by {actor.name}.",
    )
    test_finish_if_done(test_id=invocation.test_id)
    return {
        "invocation_id": invocation.pk,
        "success": True,
        "message": "The invocation was terminated.",
        "status": InvocationStatus.TERMINATED,
    }


@transaction.atomic
def invocation_complete(*, actor, invocation_id: Any) -> Invocation:
    """Finalize one finished cell; completing it again answers the same row."""
    require_staff(actor)
    invocation = invocation_access(actor=actor, pk=invocation_id, for_update=True)
    if invocation.status == InvocationStatus.COMPLETED:
        return invocation
    _locked_open_test(invocation.test_id)
    if invocation.status in ACTIVE:
        raise StateError(
            f"The invocation is {invocation.status}: terminate it or let it finish first.",
            code="invocation_active",
        )
    Invocation.objects.filter(pk=invocation.pk).update(
        status=InvocationStatus.COMPLETED, updated_at=timezone.now(), version=F("version") + 1
    )
    invocation.refresh_from_db()
    return invocation


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
