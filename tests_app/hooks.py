"""What tests contribute to the system app's pages and exports (system never imports tests_app)."""

from __future__ import annotations

import csv
import io

from tests_app.models import Invocation, Test
from tests_app.selectors import test_scope


def staff_nav() -> list[tuple[str, str]]:
    return [("Tests", "staff-tests")]


def activity_counts(*, actor, profiles, start, end) -> dict[str, int]:
    """Tests the profiles started in the window, and their invocations, as the actor may see."""
    tests = test_scope(
        Test.objects.filter(
            organization_id=actor.organization_id,
            started_by__in=profiles,
            created_at__gte=start,
            created_at__lt=end,
        ),
        actor,
    )
    return {
        "tests": tests.count(),
        "invocations": Invocation.objects.filter(test__in=tests.values("pk")).count(),
    }


TEST_COLUMNS = ["test_id", "title", "eval", "status", "invocations", "created_at", "group_id"]


def session_export(*, actor, session) -> list:
    """tests.csv: the tests started in the exported session (their group is in it)."""
    from system.exports import ExportFile

    rows = (
        test_scope(Test.objects.filter(group__session=session), actor)
        .for_api()
        .order_by("created_at")
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TEST_COLUMNS)
    count = 0
    for test in rows:
        writer.writerow(
            [
                test.pk,
                test.title,
                test.eval.title,
                test.status,
                test.invocation_count,
                test.created_at.isoformat(),
                test.group_id,
            ]
        )
        count += 1
    return [ExportFile(name="tests.csv", content=out.getvalue(), row_count=count)]
