"""What the test ops answer after their write: the start's cells and keys, the completion's counts."""

from __future__ import annotations

from tests_app.lifecycle import first_invocation_id, invocation_count, started_key_ids
from tests_app.models import InvocationStatus, Test
from tests_app.selectors import test_progress


def test_start_summary(test: Test) -> dict:
    """TestStartResponse: the test, its first cell, its stream group and the keys every cell got."""
    return {
        "test_id": test.pk,
        "invocation_id": first_invocation_id(test),
        "benchmark_id": test.pk,
        "group_id": test.group_id,
        "invocation_count": invocation_count(test),
        "key_ids": started_key_ids(test),
    }


def test_completion_summary(test: Test) -> dict:
    """TestCompleteResponse: the completed test and its invocations counted by status."""
    counts = test_progress(test_id=test.pk)["counts"]
    return {
        "test_id": test.pk,
        "success": True,
        "status": test.status,
        "completed_at": test.completed_at,
        "invocation_count": sum(counts.values()),
        "counts": {status: counts.get(status, 0) for status in InvocationStatus.values},
    }
