"""A manual grade or staff feedback leaves nothing derived from it stale: the grade's group
scores and its total follow, and the benchmark grid reads the same figures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests_app.models import Invocation, TestGrade, ToolCall
from tests_app.tests.test_api import ok, start

pytestmark = pytest.mark.django_db


def _cell(client, test_id, invocation) -> dict:
    grid = ok(client.op("benchmark/get", {"test_id": test_id}))
    return next(c for c in grid["cells"] if c["invocation_id"] == str(invocation.pk))


def _feedback(client, grade_id, invocation, group, score) -> dict:
    body = {
        "grade_id": str(grade_id),
        "tool_call_id": str(ToolCall.objects.filter(invocation=invocation).first().pk),
        "standard_group_id": str(group.pk),
        "score": score,
        "feedback": "Seen in the transcript.",
    }
    return ok(client.op("test/feedback", body))


def test_a_manual_score_drops_group_figures_that_no_longer_add_up(staff_client, catalog):
    started = start(staff_client, catalog)
    invocation = Invocation.objects.filter(test_id=started["test_id"]).order_by("position")[1]
    auto = TestGrade.objects.get(invocation=invocation)
    assert sum(g["score"] for g in auto.groups) == float(auto.score)  # the grader's add up

    ok(staff_client.op("test/grade", {"invocation_id": str(invocation.pk), "score": 3}))

    grade = TestGrade.objects.get(invocation=invocation)
    assert grade.score == Decimal("3")
    assert [g["score"] for g in grade.groups] == [None] * len(catalog.groups)
    cell = _cell(staff_client, started["test_id"], invocation)
    assert cell["score"] == 3.0 and [g["score"] for g in cell["groups"]] == [None, None]


def test_feedback_on_every_group_recomputes_the_grades_total(staff_client, catalog):
    started = start(staff_client, catalog)
    invocation = Invocation.objects.filter(test_id=started["test_id"]).order_by("position")[0]
    grade = ok(staff_client.op("test/grade", {"invocation_id": str(invocation.pk), "full": True}))
    first, second = catalog.groups[:2]

    _feedback(staff_client, grade["grade_id"], invocation, first, 1)

    stored = TestGrade.objects.get(invocation=invocation)
    by_group = {g["standard_group_id"]: g["score"] for g in stored.groups}
    assert by_group[str(first.pk)] == 1.0
    assert stored.score == Decimal(str(sum(by_group.values())))
    assert stored.full is False and stored.source == "reviewed"
    cell = _cell(staff_client, started["test_id"], invocation)
    assert cell["score"] == float(stored.score)
    assert cell["percent"] == round(float(stored.score) * 100 / cell["total_points"], 1)
    assert sum(g["score"] for g in cell["groups"]) == cell["score"]

    # After a manual total, feedback on every group gives the total back from the groups.
    ok(staff_client.op("test/grade", {"invocation_id": str(invocation.pk), "score": 2}))
    _feedback(staff_client, grade["grade_id"], invocation, second, 2)
    assert TestGrade.objects.get(invocation=invocation).score == Decimal("3")
