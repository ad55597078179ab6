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
