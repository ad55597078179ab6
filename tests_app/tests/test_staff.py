"""Staff pages (heatmap, trace, list) and the admin: staff roles only, tenancy by 404."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from glow.accounts.tests.factories import ProfileFactory
from tests_app import crypto
from tests_app.models import Invocation, SecretKey

pytestmark = pytest.mark.django_db


def signed_in(profile) -> Client:
    """A browser session; the user is re-read since UserFactory leaves its password hash unsaved."""
    client = Client()
    client.force_login(type(profile.user).objects.get(pk=profile.user_id))
    return client


@pytest.fixture
def browser(staff):
    return signed_in(staff)


@pytest.fixture
def finished_test(staff_client, catalog):
    body = staff_client.op("test/start", catalog.start_body()).json()
    return body


def test_the_heatmap_shows_every_cell_with_its_colour_figures_and_trace_link(
    browser, finished_test
):
    response = browser.get(f"/staff/tests/{finished_test['test_id']}/benchmark/")
    assert response.status_code == 200
    html = response.content.decode()
    cells = re.findall(
        r'<td class="cell" style="background: hsl\((\d+), [^"]*" title="([^"]*)"', html
    )
    assert len(cells) == 4
    for invocation in Invocation.objects.filter(test_id=finished_test["test_id"]).select_related(
        "model", "grade"
    ):
        assert f'href="/staff/invocations/{invocation.pk}/"' in html
        grade = invocation.grade
        percent = round(float(grade.score) * 100 / grade.total_points, 1)
        hover = next(title for _hue, title in cells if invocation.model.title in title)
        assert "Status: succeeded" in hover and "Tokens:" in hover and "Cost: $" in hover
        assert f'data-percent="{percent}"' in html
    hues = {int(hue) for hue, _title in cells}
    assert all(0 <= hue <= 120 for hue in hues)
    assert 'id="model-means"' in html and 'id="agent-means"' in html
    # Every cell ended: 0 queued, 0 running, 4 done, 0 failed, and no refresh any more.
    assert re.search(r'id="cell-progress">0 · 0 · 4 · 0<', html)
    assert 'http-equiv="refresh"' not in html
    assert "Model latency p50 / p95" in html


def test_the_benchmark_page_counts_cells_live_while_the_test_runs(browser, staff, catalog):
    test = catalog.start_queued(staff, concurrency=2)  # no worker: every cell queued
    from tests_app.engine import workers

    workers.invocation_claim(test_id=test.pk, worker_token="w")
    html = browser.get(f"/staff/tests/{test.pk}/benchmark/").content.decode()
    assert re.search(r'id="cell-progress">3 · 1 · 0 · 0<', html)
    # The grid follows the test over its SSE group while cells are active (staff.js).
    assert 'data-live="1"' in html and 'id="live-note"' in html


def test_the_trace_page_shows_the_conversation_tool_calls_and_runs(browser, finished_test):
    invocation = Invocation.objects.get(pk=finished_test["invocation_id"])
    html = browser.get(f"/staff/invocations/{invocation.pk}/").content.decode()
    assert invocation.transcript[0]["content"].split(",")[0] in html
    assert "Tool call · lookup_policy" in html and "&quot;simulated&quot;: true" in html
    assert html.count('<th scope="row">agent_turn</th>') == 1
    assert f"/staff/tests/{invocation.test_id}/benchmark/" in html


def test_the_test_list_links_each_benchmark(browser, finished_test):
    html = browser.get("/staff/tests/").content.decode()
    assert f"/staff/tests/{finished_test['test_id']}/benchmark/" in html


def test_staff_pages_are_for_staff_of_the_same_organization(finished_test, learner, outsider):
    urls = [
        f"/staff/tests/{finished_test['test_id']}/benchmark/",
        f"/staff/invocations/{finished_test['invocation_id']}/",
    ]
    anonymous = Client()
    for url in urls:
        assert anonymous.get(url).status_code == 302
    learner_browser, outsider_browser = signed_in(learner), signed_in(outsider)
    for url in urls:
        assert learner_browser.get(url).status_code == 403
        assert outsider_browser.get(url).status_code == 404


def test_admin_shows_tests_and_read_only_traces(org_admin, finished_test, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.org", "pw")
    ProfileFactory(user=superuser, organization=org_admin.organization, role="admin")
    client = Client()
    client.force_login(superuser)
    assert client.get("/admin/tests_app/test/").status_code == 200
    page = client.get(f"/admin/tests_app/test/{finished_test['test_id']}/change/")
    assert page.status_code == 200 and "Invocations" in page.content.decode()
    invocation = Invocation.objects.get(pk=finished_test["invocation_id"])
    html = client.get(f"/admin/tests_app/invocation/{invocation.pk}/change/").content.decode()
    assert "lookup_policy" in html and "<strong>persona</strong>" in html
    assert 'name="status"' not in html  # read-only
    assert client.get("/admin/tests_app/invocation/").status_code == 200

    response = client.post(
        "/admin/tests_app/secretkey/add/",
        {"organization": str(org_admin.organization.pk), "label": "Vendor key", "value": "v-123"},
    )
    assert response.status_code == 302, response.content
    key = SecretKey.objects.get(label="Vendor key")
    assert "v-123" not in key.ciphertext
    assert crypto.decrypt(key.ciphertext, aad=key.aad) == "v-123"
    assert (
        "v-123" not in client.get(f"/admin/tests_app/secretkey/{key.pk}/change/").content.decode()
    )


def test_the_benchmark_counts_flagged_persona_turns_per_model(browser, finished_test):
    invocation = Invocation.objects.get(pk=finished_test["invocation_id"])
    persona_turns = [turn for turn in invocation.transcript if turn["role"] == "persona"]
    # A persona turn that recites its first one: the checker flags it as a repeat.
    invocation.transcript = [*invocation.transcript, {**persona_turns[0], "turn": 99}]
    invocation.save(update_fields=["transcript"])

    html = browser.get(f"/staff/tests/{finished_test['test_id']}/benchmark/").content.decode()

    table = html.split('id="fidelity-per-model"')[1].split("</table>")[0]
    rows = re.findall(
        r'<th scope="row">([^<]*)</th><td class="num">(\d+)</td><td class="num">(\d+)</td>', table
    )
    assert rows and sum(int(flagged) for _title, _total, flagged in rows) == 1
    total = sum(
        sum(1 for turn in row.transcript if turn["role"] == "persona")
        for row in Invocation.objects.filter(test_id=finished_test["test_id"])
    )
    assert sum(int(count) for _title, count, _flagged in rows) == total


def test_fidelity_per_model_answers_404_to_another_organization(finished_test):
    from glow.core.errors import NotFound
    from tests_app import selectors

    with pytest.raises(NotFound):
        selectors.persona_fidelity_by_model(
            actor=ProfileFactory(role="admin"), test_id=finished_test["test_id"]
        )
