"""The demo seed: one small completed, graded test; running it twice changes nothing."""

import io

import pytest

from glow.accounts import demo as accounts_demo
from glow.catalog import demo as catalog_demo
from tests_app import demo
from tests_app.models import Invocation, Test, TestGrade

pytestmark = pytest.mark.django_db


def test_demo_runs_one_completed_test_once():
    out = io.StringIO()
    accounts_demo.seed(stdout=out)
    catalog_demo.seed(stdout=out)
    demo.seed(stdout=out)
    demo.seed(stdout=out)
    test = Test.objects.get(title=demo.TITLE)
    assert test.status == "completed"
    statuses = set(Invocation.objects.filter(test=test).values_list("status", flat=True))
    assert statuses == {"completed"} and test.invocations.count() == 4
    assert TestGrade.objects.filter(invocation__test=test).count() == 4
    assert Test.objects.count() == 1
    # The coach's instructions (acknowledge, ask, explain, plan) beat one short sentence.
    by_agent: dict[str, list[float]] = {}
    for invocation in Invocation.objects.filter(test=test).select_related("agent", "grade"):
        by_agent.setdefault(invocation.agent.title, []).append(float(invocation.grade.score))
        opening = invocation.transcript[0]
        assert opening["role"] == "agent" and opening["content"].strip()
    assert min(by_agent["Office-hours coach"]) > max(by_agent["Terse TA"])
