"""The demo books: a week of history for Demo University, written once however often seeded."""

from __future__ import annotations

import io

import pytest

from glow.accounts import demo as accounts_demo
from glow.catalog import demo as catalog_demo
from system import demo
from system.models import Group, Run, Session

pytestmark = pytest.mark.django_db


def test_demo_history_is_consistent_and_idempotent():
    out = io.StringIO()
    accounts_demo.seed(stdout=out)
    catalog_demo.seed(stdout=out)

    demo.seed(stdout=out)
    counts = (Session.objects.count(), Group.objects.count(), Run.objects.count())
    demo.seed(stdout=out)

    assert (Session.objects.count(), Group.objects.count(), Run.objects.count()) == counts
    assert counts[0] == len(demo.HISTORY)
    days = {session.created_at.date() for session in Session.objects.all()}
    assert len(days) == len({days_ago for _, days_ago, _, _ in demo.HISTORY})
    for session in Session.objects.all():
        runs = Run.objects.filter(session=session)
        assert session.run_count == runs.count() > 0
        assert session.total_cost == sum(run.cost for run in runs) > 0
        assert all(run.started_at.date() == session.created_at.date() for run in runs)
