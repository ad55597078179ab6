"""Migration 0005: stored test grades take the shared GradeSource values, and back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("tests_app", "0004_merge_leases_and_repeats")]
AFTER = [("tests_app", "0005_grade_source_shared")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _sources(apps) -> list[str]:
    grades = apps.get_model("tests_app", "TestGrade").objects
    return sorted(grades.values_list("source", flat=True))


def test_auto_and_manual_grades_become_ai_and_reviewed(staff, catalog):
    from tests_app.models import TestGrade

    test = catalog.start_queued(staff)
    invocations = list(test.invocations.all()[:2])
    for invocation, source in zip(invocations, ("ai", "reviewed"), strict=True):
        TestGrade.objects.create(
            organization_id=invocation.organization_id,
            invocation=invocation,
            score=1,
            total_points=2,
            source=source,
        )
    try:
        old = _migrate(BEFORE)
        assert _sources(old) == ["auto", "manual"]
        new = _migrate(AFTER)
        assert _sources(new) == ["ai", "reviewed"]
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
