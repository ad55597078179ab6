"""Repeated runs, intervals and comparisons: test/start repeats, the benchmark's per-cell means
with 95% intervals, feedback on a whole invocation, benchmark/compare checked by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from conftest import client_for
from glow.catalog.tests.factories import AgentFactory
from system.tests.factories import sign_in
from tests_app.models import Invocation, InvocationStatus, TestGrade

pytestmark = pytest.mark.django_db


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def grade_all(test, points_of) -> None:
    """Grade every invocation: points_of(invocation) -> points of 8 (half on each group)."""
    Invocation.objects.filter(test=test).update(status=InvocationStatus.SUCCEEDED)
    for invocation in Invocation.objects.filter(test=test).select_related("test__eval"):
        points = Decimal(str(points_of(invocation)))
        groups = invocation.test.eval.rubric.groups.order_by("position")
        TestGrade.objects.create(
            invocation=invocation,
            organization=invocation.organization,
            score=points,
            total_points=8,
            groups=[
                {
                    "standard_group_id": str(group.pk),
                    "name": group.name,
                    "score": float(points / 2),
                    "total_points": 4,
                }
                for group in groups
            ],
        )


def test_start_runs_each_cell_repeats_times_with_a_seed_per_repeat(
    staff, staff_client, catalog, settings
):
    started = ok(staff_client.op("test/start", catalog.start_body(repeats=3)))
    assert started["invocation_count"] == 2 * 2 * 1 * 3
    rows = list(
        Invocation.objects.filter(test_id=started["test_id"])
        .order_by("position")
        .values_list("model_id", "scenario_id", "repeat", "seed")
    )
    assert [(repeat, seed) for *_, repeat, seed in rows[:3]] == [(0, 0), (1, 1), (2, 2)]
    assert len({(model, scenario) for model, scenario, *_ in rows}) == 4
    settings.GLOW_TEST_MAX_CELLS = 10
    refused = staff_client.op("test/start", catalog.start_body(repeats=3))
    assert refused.status_code == 400 and "with repeats" in refused.json()["detail"]
    assert staff_client.op("test/start", catalog.start_body(repeats=0)).status_code == 400


def test_the_benchmark_gives_each_cell_its_mean_interval_and_n(staff, staff_client, catalog):
    test = catalog.start_queued(staff, repeats=3)
    # Every cell's three runs score 2, 4 and 6 of 8 points: 25, 50, 75 percent.
    grade_all(test, lambda invocation: 2 + 2 * invocation.repeat)
    grid = ok(staff_client.op("benchmark/get", {"test_id": str(test.pk)}))
    assert grid["repeats"] == 3 and len(grid["cell_stats"]) == 4
    cell = grid["cell_stats"][0]
    # mean 50, sd 25, t(0.975, 2) = 4.302653 * 25 / sqrt(3) = 62.10 half-width.
    assert (cell["n"], cell["mean"], cell["sd"]) == (3, 50.0, 25.0)
    assert cell["ci_low"] == pytest.approx(50 - 62.10, abs=0.01)
    assert cell["ci_high"] == pytest.approx(50 + 62.10, abs=0.01)
    assert [group["mean"] for group in cell["groups"]] == [50.0, 50.0]
    assert grid["group_stats"][0]["n"] == 12


def test_feedback_without_a_tool_call_is_about_the_whole_invocation_and_shows_on_the_heatmap(
    staff, staff_client, catalog, client, outsider
):
    test = catalog.start_queued(staff)
    grade_all(test, lambda invocation: 2)
    invocation = Invocation.objects.filter(test=test).order_by("position").first()
    body = {
        "grade_id": str(invocation.grade.pk),
        "standard_group_id": str(catalog.groups[0].pk),
        "score": 4,
        "feedback": "Kind and clear, no tool needed.",
    }
    created = ok(staff_client.op("test/feedback", body))
    assert created["created"] is True and created["tool_call_id"] is None
    updated = ok(staff_client.op("test/feedback", {**body, "score": 3}))
    assert updated["created"] is False and updated["feedback_id"] == created["feedback_id"]
    grid = ok(staff_client.op("benchmark/get", {"test_id": str(test.pk)}))
    cell = next(c for c in grid["cells"] if c["invocation_id"] == str(invocation.pk))
    assert cell["feedback"] == [
        {
            "standard_group_id": str(catalog.groups[0].pk),
            "name": catalog.groups[0].name,
            "scope": "invocation",
            "tool_call_id": None,
            "score": 3.0,
            "feedback": "Kind and clear, no tool needed.",
        }
    ]
    assert cell["groups"][0]["score"] == 3.0  # staff feedback wins over the grader's 1
    assert client_for(outsider).op("test/feedback", body).status_code == 404
    sign_in(client, staff)
    page = client.get(f"/staff/tests/{test.pk}/benchmark/").content.decode()
    assert "Kind and clear, no tool needed." in page  # the cell's hover text
    assert 'aria-label="1 staff note"' in page


def two_agent_test(staff, catalog):
    """Agents A and B over 2 models x 2 scenarios, two runs each. A scores 4/8 (50%) every
    time; B's runs per (model, scenario): [6,6] [5,6] [6,8] [4,4] of 8."""
    second = AgentFactory(organization=catalog.organization, department=catalog.department)
    first = catalog.agents[0]
    test = catalog.start_queued(staff, agent_ids=[first.pk, second.pk], repeats=2)
    keys = [(m.pk, s.pk) for m in catalog.models for s in catalog.scenarios]
    b_points = dict(zip(keys, [[6, 6], [5, 6], [6, 8], [4, 4]], strict=True))

    def points(invocation):
        if invocation.agent_id == first.pk:
            return 4
        return b_points[invocation.model_id, invocation.scenario_id][invocation.repeat]

    grade_all(test, points)
    return test, first, second


def test_compare_two_agents_against_hand_computed_paired_statistics(
    staff, staff_client, catalog, outsider
):
    test, first, second = two_agent_test(staff, catalog)
    body = {"test_id": str(test.pk), "agent_ids": [str(first.pk), str(second.pk)]}
    result = ok(staff_client.op("benchmark/compare", body))
    assert result["kind"] == "agents" and result["a"]["id"] == str(first.pk)
    # Cell differences (B - A, percent points): 25, 18.75, 37.5, 0.
    assert [pair["difference"] for pair in result["pairs"]] == [25.0, 18.75, 37.5, 0.0]
    assert result["n_pairs"] == 4 and result["mean_difference"] == 20.31
    # Sign test: three positive of three non-zero, 2 * (1/2)^3. Wilcoxon (exact, no ties):
    # W- = 0 of ranks 1..3, 1 of 8 assignments per tail: 2/8.
    assert result["sign_test_p"] == 0.25 and result["wilcoxon_p"] == 0.25
    low, high = result["difference_ci"]
    assert 0 <= low < 20.31 < high <= 37.5
    # Only the first cell differs beyond its repeats' noise (both runs identical on each side);
    # B's [5, 6] and [6, 8] spread too widely for two runs, and the last cell ties.
    verdicts = [pair["verdict"] for pair in result["pairs"]]
    assert verdicts == [
        "better",
        "no clear difference",
        "no clear difference",
        "no clear difference",
    ]
    assert [pair["label"] for pair in result["differing"]] == [result["pairs"][0]["label"]]
    second_pair = result["pairs"][1]
    # B [62.5, 75]: sd 8.84; Welch df 1, t 12.706 * 6.25 = 79.41.
    assert second_pair["difference_ci"] == pytest.approx([18.75 - 79.41, 18.75 + 79.41], abs=0.02)
    assert client_for(outsider).op("benchmark/compare", body).status_code == 404
    stranger = {**body, "agent_ids": [str(first.pk), str(test.pk)]}
    assert staff_client.op("benchmark/compare", stranger).status_code == 400


def test_compare_a_run_with_its_baseline_lists_regressions_beyond_noise(
    staff, staff_client, catalog
):
    baseline = catalog.start_queued(staff, repeats=2)
    grade_all(baseline, lambda invocation: 6)
    run = catalog.start_queued(staff, repeats=2)
    worse = (catalog.models[0].pk, catalog.scenarios[0].pk)
    grade_all(run, lambda i: 2 if (i.model_id, i.scenario_id) == worse else 6 + i.repeat % 2)
    result = ok(
        staff_client.op(
            "benchmark/compare", {"test_id": str(run.pk), "baseline_test_id": str(baseline.pk)}
        )
    )
    assert result["kind"] == "tests" and result["n_pairs"] == 4
    regressed = [pair["label"] for pair in result["regressions"]]
    # The cell fell from 75% to 25% on every run, and so did both of its standard groups.
    assert len(regressed) == 3 and all(label.startswith(regressed[0]) for label in regressed)
    assert result["regressions"][0]["difference"] == -50.0
    # The other cells' runs scored 6 and 7 against 6 and 6: within noise, not improvements.
    assert result["improvements"] == []
    assert len(result["group_pairs"]) == 4 * 2


def test_the_compare_page_draws_what_benchmark_compare_answers(
    staff, staff_client, catalog, client, outsider
):
    test, first, second = two_agent_test(staff, catalog)
    sign_in(client, staff)
    benchmark = client.get(f"/staff/tests/{test.pk}/benchmark/").content.decode()
    assert f'action="/staff/tests/{test.pk}/compare/"' in benchmark
    assert 'class="ci" role="img"' in benchmark  # each cell's interval, drawn
    url = f"/staff/tests/{test.pk}/compare/?kind=agents&a={first.pk}&b={second.pk}"
    page = client.get(url).content.decode()
    assert '<dd id="mean-difference">20.31</dd>' in page
    assert '<dd id="wilcoxon-p">0.25</dd>' in page
    assert page.count('data-verdict="better"') == 1
    assert page.count('class="diff" role="img"') == 5  # the overall interval and four cells
    refused = client.get(f"/staff/tests/{test.pk}/compare/?kind=agents&a={first.pk}&b=nonsense")
    assert refused.status_code == 400
    sign_in(client, outsider)
    assert client.get(url).status_code == 404
