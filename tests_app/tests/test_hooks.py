"""What tests add to system's pages and exports: the staff nav, activity counts, session export."""

from __future__ import annotations

import zipfile

import pytest
from django.test import Client

from system import exports
from system import selectors as system_selectors
from system.models import Group
from tests_app.models import Test

pytestmark = pytest.mark.django_db


@pytest.fixture
def started(staff_client, catalog):
    body = staff_client.op(
        "test/start", catalog.start_body(scenario_ids=[str(catalog.scenarios[0].pk)])
    ).json()
    return Test.objects.get(pk=body["test_id"])


def test_the_staff_navigation_links_the_test_list(staff, started):
    client = Client()
    client.force_login(type(staff.user).objects.get(pk=staff.user_id))
    html = client.get("/staff/").content.decode()
    assert 'href="/staff/tests/"' in html


def test_activity_counts_tests_and_invocations(staff, started, learner):
    counts = system_selectors.activity_summary(actor=staff).counts
    assert counts["tests"] == 1 and counts["invocations"] == 2
    assert system_selectors.activity_summary(actor=learner).counts.get("tests", 0) == 0


def test_a_session_export_lists_the_tests_started_in_it(staff, started):
    session = Group.objects.get(pk=started.group_id).session
    upload = exports.session_export(actor=staff, session=session)
    with upload.file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        rows = archive.read("tests.csv").decode().strip().splitlines()
    assert rows[0].startswith("test_id,title,eval,status,invocations")
    assert len(rows) == 2 and rows[1].startswith(str(started.pk)) and ",2," in rows[1]
