"""The checks test writes start with: staff only, the test still open, rows in the actor's scope."""

from __future__ import annotations

from typing import Any

from glow.core.errors import NotFound, PermissionDenied, StateError
from glow.core.registry import registry
from glow.core.selectors import artifact_queryset
from tests_app.models import (
    Test,
    TestStatus,
)


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
