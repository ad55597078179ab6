"""Grades and feedback on a test's invocations: staff grades over the judge's, roll-ups, feedback."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Avg, Sum

from glow.catalog.grading import GradeSource
from glow.catalog.models import Standard, StandardGroup
from glow.core.errors import ApplicationError, NotFound, StateError
from tests_app.guards import require_open, require_staff
from tests_app.models import (
    ACTIVE,
    Feedback,
    Test,
    TestGrade,
    ToolCall,
)
from tests_app.selectors import (
    invocation_access,
)


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
        "source": GradeSource.REVIEWED,
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
) -> Feedback:
    """Upsert the one feedback row of (grade, tool call, standard group); without a tool call
    the row is about the invocation as a whole. Answers the row; its `created` says whether this
    call made it."""
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
            row.created = False
            return row
        row = Feedback.objects.create(organization_id=actor.organization_id, **triple, **values)
        row.created = True
        return row
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
    stored.source = GradeSource.REVIEWED
    grade_rollup(stored, rubric_id=test.eval.rubric_id, total_from_groups=True)
    row = Feedback.objects.get(**triple)
    row.created = not existed
    return row
