"""Reads at a fixed number of queries: search, benchmark, trace and export at 1 and 10 rows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests_app import exports, selectors
from tests_app.models import Feedback
from tests_app.tests.factories import (
    InvocationFactory,
    TestFactory,
    TestGradeFactory,
    ToolCallFactory,
)

pytestmark = pytest.mark.django_db


def graded_cell(test, catalog):
    invocation = InvocationFactory(
        organization=test.organization, test=test, status="succeeded", total_tokens=10
    )
    grade = TestGradeFactory(
        invocation=invocation,
        score=Decimal("3"),
        total_points=8,
        groups=[
            {"standard_group_id": str(catalog.groups[0].pk), "score": 1, "total_points": 4},
            {"standard_group_id": str(catalog.groups[1].pk), "score": 2, "total_points": 4},
        ],
    )
    call = ToolCallFactory(invocation=invocation)
    Feedback.objects.create(
        organization=test.organization,
        grade=grade,
        tool_call=call,
        standard_group=catalog.groups[0],
        score=Decimal("4"),
    )
    return invocation


def test_benchmark_costs_the_same_queries_for_1_and_10_cells(
    staff, catalog, django_assert_max_num_queries
):
    test = TestFactory(organization=catalog.organization, eval=catalog.eval)
    graded_cell(test, catalog)
    with CaptureQueriesContext(connection) as one:
        grid = selectors.benchmark_grid(actor=staff, test_id=test.pk)
    assert grid["cell_count"] == 1
    for _ in range(9):
        graded_cell(test, catalog)
    with django_assert_max_num_queries(len(one)):
        grid = selectors.benchmark_grid(actor=staff, test_id=test.pk)
    assert grid["cell_count"] == 10
    cell = grid["cells"][0]
    # Feedback (4) replaces the grader's 1 for the first group; the second keeps the grader's 2.
    assert [group["score"] for group in cell["groups"]] == [4.0, 2.0]
    assert (cell["score"], cell["percent"]) == (3.0, 37.5)
    assert grid["means"] == {
        "mean_score": 3.0,
        "mean_percent": 37.5,
        "tokens": 100,
        "cost": "0.000000",
        "graded_count": 10,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
    }


def test_benchmark_shows_each_cells_model_latency_and_its_p50_and_p95(staff, catalog):
    from system.models import Run
    from tests_app import runner

    test = catalog.start_queued(staff, concurrency=16)
    runner.worker_run(test_id=test.pk, worker_token="w")
    invocations = list(test.invocations.order_by("position"))
    for number, invocation in enumerate(invocations):
        Run.objects.filter(artifact_id=invocation.pk, kind="agent_turn").update(
            latency_ms=100 * (number + 1)
        )
    grid = selectors.benchmark_grid(actor=staff, test_id=test.pk)
    turns = catalog.eval.turns
    assert [cell["latency_ms"] for cell in grid["cells"]] == [
        100 * (number + 1) * turns for number in range(4)
    ]
    assert (grid["means"]["latency_p50_ms"], grid["means"]["latency_p95_ms"]) == (
        200 * turns,
        400 * turns,
    )
    by_model = {entry["title"]: entry for entry in grid["axes"]["models"]}
    # Cells in position order: model x scenario x agent, the first model's two cells first.
    assert (by_model["Simulator"]["latency_p50_ms"], by_model["Echo"]["latency_p95_ms"]) == (
        100 * turns,
        400 * turns,
    )


def test_search_costs_the_same_queries_for_1_and_10_tests(
    staff_client, staff, catalog, django_assert_max_num_queries
):
    def make_test():
        test = TestFactory(organization=catalog.organization, eval=catalog.eval)
        InvocationFactory.create_batch(2, organization=test.organization, test=test)
        return test

    make_test()
    staff_client.op("test/search")  # the first request of a session books the session
    with CaptureQueriesContext(connection) as one:
        body = staff_client.op("test/search", {"page_size": 50}).json()
    assert body["total_count"] == 1 and body["tests"][0]["invocation_count"] == 2
    for _ in range(9):
        make_test()
    with django_assert_max_num_queries(len(one)):
        body = staff_client.op("test/search", {"page_size": 50}).json()
    assert body["total_count"] == 10
    assert {row["counts"]["queued"] for row in body["tests"]} == {2}


def test_export_costs_the_same_queries_for_1_and_10_invocations(
    staff, catalog, django_assert_max_num_queries
):
    test = TestFactory(organization=catalog.organization, eval=catalog.eval)
    graded_cell(test, catalog)
    with CaptureQueriesContext(connection) as one:
        upload = exports.test_export(actor=staff, test_id=test.pk, view="invocations")
    assert upload.row_count == 1
    for _ in range(9):
        graded_cell(test, catalog)
    with django_assert_max_num_queries(len(one)):
        upload = exports.test_export(actor=staff, test_id=test.pk, view="invocations")
    assert upload.row_count == 10


def test_trace_costs_the_same_queries_for_1_and_10_tool_calls(
    staff, catalog, django_assert_max_num_queries
):
    test = TestFactory(organization=catalog.organization, eval=catalog.eval)
    invocation = InvocationFactory(organization=test.organization, test=test)
    calls = [ToolCallFactory(invocation=invocation)]
    invocation.transcript = [
        {"role": "agent", "content": "Hi", "tool_call_ids": [str(calls[0].pk)]}
    ]
    invocation.save()
    with CaptureQueriesContext(connection) as one:
        trace = selectors.invocation_trace(actor=staff, invocation_id=invocation.pk)
    assert [item["kind"] for item in trace["items"]] == ["message", "tool_call"]
    calls += [ToolCallFactory(invocation=invocation) for _ in range(9)]
    invocation.transcript[0]["tool_call_ids"] = [str(call.pk) for call in calls]
    invocation.save()
    with django_assert_max_num_queries(len(one)):
        trace = selectors.invocation_trace(actor=staff, invocation_id=invocation.pk)
    assert len(trace["items"]) == 11


def test_instructors_see_their_departments_tests_and_their_own(staff, catalog, org_admin):
    from glow.accounts.tests.factories import DepartmentFactory
    from tests_app.models import Test

    mine = TestFactory(organization=catalog.organization, eval=catalog.eval)
    elsewhere = DepartmentFactory(organization=catalog.organization)
    hidden = TestFactory(organization=catalog.organization, department=elsewhere)
    started = TestFactory(organization=catalog.organization, department=elsewhere, started_by=staff)
    org_wide = TestFactory(organization=catalog.organization, department=None)
    visible = set(selectors.test_scope(Test.objects.all(), staff).values_list("pk", flat=True))
    assert visible == {mine.pk, started.pk, org_wide.pk}
    assert hidden.pk in set(
        selectors.test_scope(Test.objects.all(), org_admin).values_list("pk", flat=True)
    )
