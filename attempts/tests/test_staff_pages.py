"""Staff cohort pages, Dashboard, Leaderboard and Reports over the demo data: the figures the API
answers, learners anonymised unless the simulation opts in, other organizations' ids 404,
CSV matching the page, constant query counts."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.management import call_command

from attempts import analytics, lifecycle
from attempts.models import Attempt
from glow.accounts.models import Cohort, Profile
from glow.catalog.models import Home, Simulation
from glow.core.templatetags.glow_format import count
from system.tests.factories import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db):
    call_command("glow_demo", stdout=io.StringIO())
    people = {p.user.username: p for p in Profile.objects.select_related("user")}
    simulation = Simulation.objects.get(title="Office hours: CS-180")
    return people, simulation


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()


@pytest.mark.parametrize("username", ["admin", "instructor"])
def test_the_activity_attempt_count_equals_attempt_search_total(
    client, make_client, demo, username
):
    people, _ = demo
    sign_in(client, people[username])
    html = client.get("/staff/").content.decode()
    total = make_client(people[username]).op("attempt/search", {}).json()["total_count"]
    activity = make_client(people[username]).op("system/activity", {}).json()

    assert total == 4
    assert _text(html, "total-attempts") == count(total)
    assert activity["attempt_count"] == total
    assert activity["counts"]["messages"] == sum(
        a.message_count for a in Attempt.objects.filter(archived=False)
    )


def test_a_learner_counts_only_their_own_attempts(make_client, demo):
    people, _ = demo
    learner = make_client(people["learner2"])
    total = learner.op("attempt/search", {}).json()["total_count"]
    assert learner.op("system/activity", {}).json()["attempt_count"] == total == 2


def test_cohort_table_has_a_row_per_learner_and_a_cell_per_scenario(client, demo):
    people, simulation = demo
    sign_in(client, people["instructor"])
    response = client.get(f"/staff/attempts/?simulation={simulation.pk}")
    html = response.content.decode()

    assert response.status_code == 200
    table = analytics.cohort_table(
        actor=people["instructor"], filters=analytics.Filters(simulation_id=simulation.pk)
    )
    assert [row.profile.name for row in table.rows] == ["Lena Learner", "Leo Learner"]
    leo = table.rows[1]
    assert leo.attempt_count == 2 and leo.completed_count == 1
    # The in-progress attempt is the latest: its second conversation is still going.
    assert [cell.status for cell in leo.cells] == ["ended", "active", "ended"]
    assert all(cell.best_score is not None for cell in leo.cells)
    for attempt in Attempt.objects.all():
        assert f'href="/staff/attempts/{attempt.pk}/"' in html
    assert _text(html, "attempt-total").startswith("4 attempts")

    graded = client.get(f"/staff/attempts/?simulation={simulation.pk}&kind=graded").content
    assert b'data-count="3"' in graded
    # Another department's cohort is not the instructor's to pick: an error, never everything.
    maths = Cohort.objects.get(name="Math TAs")
    refused = client.get(f"/staff/attempts/?cohort={maths.pk}").content
    assert b'data-count="0"' in refused and b"Select a valid choice" in refused
    sign_in(client, people["admin"])
    assert b'data-count="0"' in client.get(f"/staff/attempts/?cohort={maths.pk}").content


def test_the_cohort_table_csv_is_what_the_page_shows(client, demo):
    people, simulation = demo
    sign_in(client, people["admin"])
    response = client.get(f"/staff/attempts/?simulation={simulation.pk}&format=csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert response["Content-Type"].startswith("text/csv")
    assert rows[0][:3] == ["learner", "attempts", "completed"]
    assert [row[:3] for row in rows[1:]] == [["Lena Learner", "2", "1"], ["Leo Learner", "2", "1"]]


def test_export_answers_the_seeds_export_zip_of_the_shown_attempts(client, demo):
    people, simulation = demo
    sign_in(client, people["admin"])
    response = client.post(
        "/staff/attempts/export/", {"simulation": str(simulation.pk), "kind": "graded"}
    )
    assert response.status_code == 302 and response["Location"].startswith("/api/v5/media/")
    from glow.core.models import Upload

    upload = Upload.objects.get(pk=response["Location"].rstrip("/").split("/")[-1])
    assert upload.row_count == 3 and upload.file_name.endswith(".zip")


@pytest.mark.parametrize("extra", [0, 9])
def test_the_pages_query_counts_do_not_grow_with_the_rows(
    client, demo, extra, django_assert_max_num_queries
):
    people, simulation = demo
    home = Home.objects.get(title="CS-180 TA training: office hours")
    for number in range(extra):
        lifecycle.attempt_start(
            actor=people["learner1"], home_id=home.pk, idempotency_key=f"k{number}"
        )
    cohort = Cohort.objects.get(name="CS-180 TAs Fall")
    sign_in(client, people["admin"])
    budgets = {
        # Measured at 4 attempts; the same with 9 more (session, auth and page reads included).
        f"/staff/attempts/?simulation={simulation.pk}": 14,
        "/staff/dashboard/": 9,
        f"/staff/leaderboard/{simulation.pk}/": 8,
        f"/staff/reports/learners/{people['learner1'].pk}/": 8,
        f"/staff/reports/cohorts/{cohort.pk}/": 11,
        "/staff/cohorts/": 9,
    }
    for url, budget in budgets.items():
        client.get(url)
        with django_assert_max_num_queries(budget):
            assert client.get(url).status_code == 200, url


def test_dashboard_funnel_criteria_and_cohorts(client, demo):
    people, _ = demo
    board = analytics.dashboard(actor=people["admin"], filters=analytics.Filters())
    # learner1's practice attempt has a message but no ended conversation.
    assert [count for _, count in board.funnel][:4] == [4, 4, 3, 2]
    assert {c.name for c in board.criteria} >= {"Acknowledge feelings", "Concrete next steps"}
    assert all(sum(c.bands) == 2 for c in board.criteria)
    assert board.weeks and sum(w.completed for w in board.weeks) == 2
    by_name = {c.name: c for c in board.cohorts}
    assert by_name["CS-180 TAs Fall"].started == 4 and by_name["CS-180 TAs Fall"].completed == 2

    sign_in(client, people["instructor"])
    html = client.get("/staff/dashboard/").content.decode()
    assert _text(html, "dash-attempts") == "4" and _text(html, "dash-completed") == "2"
    assert "Acknowledge feelings" in html and 'type="date"' in html


def test_leaderboard_ranks_by_the_simulations_method(demo):
    people, simulation = demo
    standings = analytics.leaderboard(actor=people["admin"], simulation=simulation)
    scores = {
        a.profile_id: a.score for a in Attempt.objects.filter(status="completed", practice=False)
    }
    assert [row.value for row in standings] == sorted(scores.values(), reverse=True)
    assert {row.name for row in standings} == {"Lena Learner", "Leo Learner"}
    assert [row.rank for row in standings] == [1, 2]

    assert analytics.rank_value([40, 90, 60], "highest") == 90
    assert analytics.rank_value([40, 90, 60], "average") == 63.3
    assert analytics.rank_value([40, 90, 60], "first") == 40
    assert analytics.rank_value([40, 90, 60], "last") == 60


def test_a_learner_sees_anonymous_ranks_unless_the_simulation_opts_in(client, demo):
    people, simulation = demo
    sign_in(client, people["learner2"])
    html = client.get(f"/learn/leaderboard/{simulation.pk}/").content.decode()
    assert "Leo Learner (you)" in html
    assert "Lena Learner" not in html and "Learner 1" in html
    assert client.get(f"/staff/leaderboard/{simulation.pk}/").status_code == 403

    Simulation.objects.filter(pk=simulation.pk).update(leaderboard_shows_names=True)
    assert "Lena Learner" in client.get(f"/learn/leaderboard/{simulation.pk}/").content.decode()


def test_staff_set_the_method_with_the_version_check(client, demo):
    people, simulation = demo
    sign_in(client, people["instructor"])
    url = f"/staff/leaderboard/{simulation.pk}/"
    assert "Lena Learner" in client.get(url).content.decode()

    stale = {"leaderboard_method": "last", "version": simulation.version - 1}
    response = client.post(url, stale)
    assert response.status_code == 200 and b"Someone changed this simulation" in response.content
    saved = client.post(url, {"leaderboard_method": "last", "version": simulation.version})
    assert saved.status_code == 302
    assert Simulation.objects.get(pk=simulation.pk).leaderboard_method == "last"


def test_reports_per_learner_and_cohort_as_html_and_csv(client, demo):
    people, _ = demo
    sign_in(client, people["instructor"])
    leo = people["learner2"]
    html = client.get(f"/staff/reports/learners/{leo.pk}/").content.decode()
    assert _text(html, "report-attempts") == "2"
    assert "Criteria over time" in html and "Acknowledge feelings" in html
    assert 'id="strengths"' in html and 'id="gaps"' in html
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(f"/staff/reports/learners/{leo.pk}/?format=csv").content.decode()
            )
        )
    )
    assert len(rows) == 3 and rows[0][:3] == ["attempt_id", "started", "simulation"]

    cohort = Cohort.objects.get(name="CS-180 TAs Fall")
    html = client.get(f"/staff/reports/cohorts/{cohort.pk}/").content.decode()
    assert "Lena Learner" in html and "Leo Learner" in html
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(f"/staff/reports/cohorts/{cohort.pk}/?format=csv").content.decode()
            )
        )
    )
    assert [row[0] for row in rows[1:]] == ["Lena Learner", "Leo Learner"]


def test_another_organizations_ids_answer_404(client, demo):
    people, simulation = demo
    cohort = Cohort.objects.get(name="CS-180 TAs Fall")
    sign_in(client, people["other_admin"])
    for url in [
        f"/staff/leaderboard/{simulation.pk}/",
        f"/staff/reports/learners/{people['learner1'].pk}/",
        f"/staff/reports/cohorts/{cohort.pk}/",
    ]:
        assert client.get(url).status_code == 404, url
    sign_in(client, people["other_learner"])
    assert client.get(f"/learn/leaderboard/{simulation.pk}/").status_code == 404
    html = client.get("/staff/cohorts/")
    assert html.status_code == 403


def test_every_new_page_answers_for_staff_and_403_for_learners(client, demo):
    people, simulation = demo
    cohort = Cohort.objects.get(name="CS-180 TAs Fall")
    urls = [
        "/staff/cohorts/",
        "/staff/attempts/",
        "/staff/dashboard/",
        "/staff/leaderboard/",
        f"/staff/leaderboard/{simulation.pk}/",
        "/staff/reports/",
        f"/staff/reports/learners/{people['learner1'].pk}/",
        f"/staff/reports/cohorts/{cohort.pk}/",
    ]
    sign_in(client, people["instructor"])
    for url in urls:
        assert client.get(url).status_code in (200, 302), url
    sign_in(client, people["learner1"])
    for url in urls:
        assert client.get(url).status_code == 403, url


def test_the_transcript_shows_each_criterions_score_and_evidence(client, demo):
    from django.utils.html import escape

    people, _ = demo
    attempt = Attempt.objects.get(idempotency_key="demo-learner1-complete")
    grade = attempt.chats.order_by("position").first().grade
    sign_in(client, people["instructor"])
    html = client.get(f"/staff/attempts/{attempt.pk}/").content.decode()
    assert "Acknowledge feelings" in html
    for entry in grade.standard_scores:
        assert f"{entry['score']}/{entry['points']}" in html
        if entry["feedback"]:
            assert escape(entry["feedback"]) in html


def test_strengths_are_criteria_at_50_percent_or_more_and_gaps_below():
    trends = [
        analytics.CriterionTrend(name, [], mean)
        for name, mean in [("a", 90), ("b", 60), ("c", 55), ("d", 40), ("e", 10), ("f", None)]
    ]
    strengths, gaps = analytics.strengths_and_gaps(trends)
    assert [t.name for t in strengths] == ["a", "b"]
    assert [t.name for t in gaps] == ["e", "d"]
