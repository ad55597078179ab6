"""Starting a test from /staff/tests/new/: the same test_start as the API, scoped pickers, and
the benchmark page that watches the test's group channel while it runs."""

from __future__ import annotations

import pytest

from system.tests.factories import sign_in
from tests_app.models import Test

pytestmark = pytest.mark.django_db


def _body(catalog, **overrides) -> dict:
    body = {
        "eval": str(catalog.eval.pk),
        "models": [str(row.pk) for row in catalog.models],
        "scenarios": [str(catalog.scenarios[0].pk)],
        "agents": [str(row.pk) for row in catalog.agents],
        "title": "From the form",
    }
    body.update(overrides)
    return body


def test_the_form_starts_the_test_the_api_would(client, staff, catalog):
    sign_in(client, staff)
    page = client.get("/staff/tests/new/").content.decode()
    for row in [catalog.eval, *catalog.models, *catalog.scenarios, *catalog.agents]:
        assert row.title in page

    response = client.post("/staff/tests/new/", _body(catalog))

    test = Test.objects.get(title="From the form")
    assert (
        response.status_code == 302 and response["Location"] == f"/staff/tests/{test.pk}/benchmark/"
    )
    assert test.invocations.count() == len(catalog.models) * len(catalog.agents)
    assert test.started_by_id == staff.pk and test.group_id is not None
    benchmark = client.get(response["Location"]).content.decode()
    assert f"test/watch?group_id={test.group_id}" in benchmark
    assert 'src="/static/glow/staff.js"' in benchmark


def test_another_organizations_rows_are_not_choices(client, staff, catalog, outsider):
    from glow.catalog.tests.factories import AIModelFactory

    foreign = AIModelFactory(organization=outsider.organization)
    sign_in(client, staff)
    response = client.post("/staff/tests/new/", _body(catalog, models=[str(foreign.pk)]))
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    assert not Test.objects.exists()


def test_learners_get_403(client, learner, catalog):
    sign_in(client, learner)
    assert client.get("/staff/tests/new/").status_code == 403
    assert client.post("/staff/tests/new/", _body(catalog)).status_code == 403
    assert not Test.objects.exists()
