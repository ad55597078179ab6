"""generations: the actor's groups for a family (admins: the organization's), searchable, paged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from system.ledger import group_create, session_touch
from system.models import Group


def make_groups(profile, count: int, *, family: str = "persona", name: str = "Persona run"):
    session = session_touch(actor=profile, client_kind="api", auth="api_key")
    return [
        group_create(actor=profile, session=session, family=family, name=f"{name} {index}")
        for index in range(count)
    ]


def test_lists_the_actors_groups_newest_first(instructor, make_client):
    groups = make_groups(instructor, 3)
    make_groups(instructor, 2, family="rubric")
    body = make_client(instructor).op("persona/generations", {}).json()
    assert body["total_count"] == 3
    assert [item["group_id"] for item in body["items"]] == [str(g.pk) for g in reversed(groups)]
    first = body["items"][0]
    assert set(first) == {"group_id", "session_id", "group_name", "created_at"}
    assert first["session_id"] == str(groups[-1].session_id)
    assert first["group_name"] == "Persona run 2"


def test_people_see_their_own_and_admins_the_organizations(
    org_admin, instructor, learner, make_client
):
    make_groups(instructor, 2)
    make_groups(learner, 1)
    assert make_client(learner).op("persona/generations", {}).json()["total_count"] == 1
    assert make_client(instructor).op("persona/generations", {}).json()["total_count"] == 2
    assert make_client(org_admin).op("persona/generations", {}).json()["total_count"] == 3


def test_search_dates_and_pages(instructor, make_client):
    groups = make_groups(instructor, 5)
    confused = make_groups(instructor, 1, name="A confused student")[0]
    old = timezone.now() - timedelta(days=10)
    Group.objects.filter(pk=groups[0].pk).update(created_at=old)
    client = make_client(instructor)

    found = client.op("persona/generations", {"search": "CONFUSED"}).json()
    assert [item["group_id"] for item in found["items"]] == [str(confused.pk)]

    recent = client.op(
        "persona/generations", {"date_from": (timezone.now() - timedelta(days=1)).isoformat()}
    ).json()
    assert recent["total_count"] == 5
    by_day = client.op(
        "persona/generations",
        {"date_from": old.date().isoformat(), "date_to": old.date().isoformat()},
    ).json()
    assert [item["group_id"] for item in by_day["items"]] == [str(groups[0].pk)]

    page = client.op("persona/generations", {"page_limit": 2, "page_offset": 2}).json()
    assert page["total_count"] == 6
    assert len(page["items"]) == 2


@pytest.mark.parametrize(
    "body", [{"page_limit": 0}, {"date_from": "yesterday"}, {"page_offset": -1}]
)
def test_bad_paging_and_dates_are_400(admin_client, body):
    response = admin_client.op("persona/generations", body)
    assert response.status_code == 400
    assert set(response.json()["fields"]) == set(body)


@pytest.mark.parametrize("rows", [1, 10])
def test_query_count_does_not_grow_with_the_page(
    rows, org_admin, admin_client, django_assert_num_queries
):
    make_groups(org_admin, rows)
    admin_client.op("persona/generations", {})  # the session and key lookups settle first
    # Key, profile, the page, the count: the same four for one row or ten.
    with django_assert_num_queries(4):
        body = admin_client.op("persona/generations", {"page_limit": 50}).json()
    assert body["total_count"] == rows
