"""The system ops of seed 003 over HTTP: shapes, scoping by role and organization, query counts."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from glow.accounts.tests.factories import DepartmentFactory, ProfileFactory
from glow.catalog.tests.factories import AIModelFactory
from glow.core.registry import registry
from system import ledger
from system.models import Group, Run, Session, TimelineEvent
from system.tests.factories import GroupFactory, SessionFactory, books

pytestmark = pytest.mark.django_db


@pytest.fixture
def model(org_admin):
    return AIModelFactory(organization=org_admin.organization)


@pytest.fixture
def department(org_admin):
    return DepartmentFactory(organization=org_admin.organization)


@pytest.fixture
def taught(instructor, learner, department):
    """The instructor teaches the learner's department."""
    instructor.departments.add(department)
    learner.departments.add(department)
    return learner


@pytest.fixture
def filled(learner, model):
    return books(profile=learner, model=model, groups=2, runs=2)


def _ids(response) -> list[str]:
    return [row["session_id"] for row in response.json()["sessions"]]


# -- system/session -----------------------------------------------------------------------------


def test_session_detail_answers_the_seed_shape(admin_client, org_admin, filled):
    response = admin_client.op("system/session", {"session_id": str(filled.pk)})

    assert response.status_code == 200
    body = response.json()
    assert body["session_exists"] is True
    assert body["actor_name"] == org_admin.name
    assert body["session_id"] == str(filled.pk)
    assert body["profile_id"] == str(filled.profile_id)
    assert body["profile_name"] == filled.profile.name
    assert body["active"] is True
    assert body["session_created_at"]
    groups = body["groups"]
    assert [group["group_name"] for group in groups] == ["Persona draft 0", "Persona draft 1"]
    for group in groups:
        row = Group.objects.get(pk=group["group_id"])
        assert group["run_count"] == 2
        assert group["total_tokens"] == row.total_tokens > 0
        assert group["total_cost"] == str(row.total_cost)
        assert isinstance(group["total_cost"], str)
        assert group["first_run_at"] and group["last_run_at"]
    timeline = body["timeline"]
    assert set(timeline[0]) == {
        "event_type",
        "entity_id",
        "entity_name",
        "created_at",
        "extra_1",
        "extra_2",
    }
    assert [item["created_at"] for item in timeline] == sorted(
        item["created_at"] for item in timeline
    )
    types = [item["event_type"] for item in timeline]
    assert types.count("group.created") == 2
    assert types.count("run.started") == types.count("run.succeeded") == 4


def test_session_without_an_id_is_the_callers_current_one(make_client, learner):
    client = make_client(learner)
    first = client.op("system/session", {}).json()
    again = client.op("system/session", {}).json()
    assert first["session_id"] == again["session_id"]
    assert first["profile_id"] == str(learner.pk)


def test_a_learner_reads_only_their_own_sessions(make_client, learner, org_admin, filled):
    other_learner = ProfileFactory(role="learner", organization=learner.organization)
    theirs = books(profile=other_learner, groups=1, runs=1)
    client = make_client(learner)

    assert client.op("system/session", {"session_id": str(filled.pk)}).status_code == 200
    assert client.op("system/session", {"session_id": str(theirs.pk)}).status_code == 404
    listed = client.op("system/sessions", {})
    own = Session.objects.filter(profile=learner).values_list("pk", flat=True)
    assert set(_ids(listed)) == {str(pk) for pk in own}
    assert str(theirs.pk) not in _ids(listed)
    group = theirs.groups.first()
    assert client.op("system/group", {"group_id": str(group.pk)}).status_code == 404


def test_an_instructor_reads_their_departments_sessions(make_client, instructor, taught):
    mine = books(profile=taught, groups=1, runs=1)
    elsewhere = books(
        profile=ProfileFactory(role="learner", organization=instructor.organization),
        groups=1,
        runs=1,
    )
    client = make_client(instructor)

    assert client.op("system/session", {"session_id": str(mine.pk)}).status_code == 200
    assert client.op("system/session", {"session_id": str(elsewhere.pk)}).status_code == 404
    listed = _ids(client.op("system/sessions", {}))
    assert str(mine.pk) in listed
    assert str(elsewhere.pk) not in listed


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("system/session", lambda s: {"session_id": str(s.pk)}),
        ("system/group", lambda s: {"group_id": str(s.groups.first().pk)}),
        ("system/export", lambda s: {"target_session_id": str(s.pk)}),
        ("system/refresh", lambda s: {"session_id": str(s.pk)}),
    ],
)
def test_another_organizations_ids_answer_404(outsider_client, filled, op, body):
    response = outsider_client.op(op, body(filled))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [{"session_id": "not-a-uuid"}, {"session_id": ["x"]}, {"sort_order": "sideways"}],
)
def test_bad_input_answers_400_never_500(admin_client, body):
    op = "system/sessions" if "sort_order" in body else "system/session"
    assert admin_client.op(op, body).status_code == 400


def test_an_unknown_session_answers_404(admin_client):
    response = admin_client.op(
        "system/session", {"session_id": "00000000-0000-0000-0000-000000000000"}
    )
    assert response.status_code == 404


# -- system/sessions ----------------------------------------------------------------------------


def test_sessions_page_filter_and_sort(admin_client, org_admin, learner):
    older = SessionFactory(profile=learner, active=False)
    newer = SessionFactory(profile=learner)
    other = SessionFactory(profile=ProfileFactory(organization=learner.organization))
    long_ago = timezone.now() - timedelta(days=10)
    Session.objects.filter(pk=older.pk).update(created_at=long_ago)

    newest_first = _ids(admin_client.op("system/sessions", {"profile_ids": [str(learner.pk)]}))
    assert newest_first == [str(newer.pk), str(older.pk)]
    oldest_first = _ids(
        admin_client.op("system/sessions", {"profile_ids": [str(learner.pk)], "sort_order": "asc"})
    )
    assert oldest_first == [str(older.pk), str(newer.pk)]
    assert _ids(admin_client.op("system/sessions", {"active": False})) == [str(older.pk)]
    recent = admin_client.op(
        "system/sessions", {"start_date": (timezone.now() - timedelta(days=1)).date().isoformat()}
    )
    assert str(older.pk) not in _ids(recent)
    assert str(other.pk) in _ids(recent)
    until = admin_client.op("system/sessions", {"end_date": long_ago.date().isoformat()})
    assert _ids(until) == [str(older.pk)]

    page = admin_client.op("system/sessions", {"page_size": 1, "page_offset": 1}).json()
    assert page["total_count"] == Session.objects.filter(organization=learner.organization).count()
    assert len(page["sessions"]) == 1
    assert (page["page_size"], page["page_offset"]) == (1, 1)


def test_session_rows_carry_the_counters(admin_client, filled):
    rows = admin_client.op("system/sessions", {"profile_ids": [str(filled.profile_id)]}).json()
    row = rows["sessions"][0]
    assert row["session_id"] == str(filled.pk)
    assert (row["group_count"], row["run_count"], row["total_tokens"]) == (
        2,
        4,
        filled.total_tokens,
    )
    assert row["total_cost"] == str(filled.total_cost)


def _sessions_with_runs(profile, count: int) -> None:
    for _ in range(count):
        session = SessionFactory(profile=profile)
        group = GroupFactory(session=session)
        Run.objects.create(
            organization=session.organization,
            group=group,
            session=session,
            profile=profile,
            kind="generate",
        )


@pytest.mark.parametrize("rows", [1, 10])
def test_sessions_query_count_is_constant(
    make_client, instructor, taught, django_assert_max_num_queries, rows
):
    _sessions_with_runs(taught, rows)
    client = make_client(instructor)
    client.op("system/sessions", {})  # the caller's own session now exists

    with django_assert_max_num_queries(5):
        response = client.op("system/sessions", {})

    assert len(response.json()["sessions"]) == rows + 1


@pytest.mark.parametrize("rows", [1, 10])
def test_session_detail_query_count_is_constant(
    admin_client, learner, django_assert_max_num_queries, rows
):
    session = SessionFactory(profile=learner)
    for _ in range(rows):
        group = GroupFactory(session=session)
        ledger.timeline_record(
            actor=learner, session=session, event_type="group.created", entity_id=group.pk
        )
        Run.objects.create(
            organization=session.organization,
            group=group,
            session=session,
            profile=learner,
            kind="generate",
            started_at=timezone.now(),
        )
    admin_client.op("system/session", {})

    with django_assert_max_num_queries(6):
        response = admin_client.op("system/session", {"session_id": str(session.pk)})

    assert len(response.json()["groups"]) == rows
    assert len(response.json()["timeline"]) == 2 * rows


# -- system/group -------------------------------------------------------------------------------


def test_group_lists_runs_and_details_on_request(admin_client, filled):
    group = filled.groups.order_by("created_at").first()
    run = Run.objects.filter(group=group).order_by("created_at").first()
    Run.objects.filter(pk=run.pk).update(latency_ms=42)

    plain = admin_client.op("system/group", {"group_id": str(group.pk)}).json()
    detailed = admin_client.op(
        "system/group", {"group_id": str(group.pk), "include_detail": True}
    ).json()

    assert plain["group_name"] == group.name
    assert plain["session_id"] == str(filled.pk)
    assert plain["run_count"] == len(plain["runs"]) == 2
    first = plain["runs"][0]
    assert first["run_id"] == str(run.pk)
    assert first["latency_ms"] == 42
    assert first["status"] == "succeeded"
    assert first["cost"] == str(run.cost)
    assert first["model_name"] == run.model.title
    assert "messages" not in first and "events" not in first
    assert detailed["runs"][0]["messages"] == [{"role": "user", "content": "Say hello number 0."}]
    assert detailed["runs"][0]["output"]
    assert detailed["runs"][0]["events"] == []


def test_group_detail_lists_events_in_order(admin_client, filled):
    from system.models import Event

    run = Run.objects.filter(session=filled).first()
    for seq, event_type in enumerate(["GenerationProgressEvent", "GenerationCompleteEvent"], 1):
        Event.objects.create(
            run=run, group_id=run.group_id, seq=seq, event_type=event_type, payload={"n": seq}
        )

    body = admin_client.op(
        "system/group", {"group_id": str(run.group_id), "include_detail": True}
    ).json()

    events = next(item for item in body["runs"] if item["run_id"] == str(run.pk))["events"]
    assert [(event["seq"], event["event_type"]) for event in events] == [
        (1, "GenerationProgressEvent"),
        (2, "GenerationCompleteEvent"),
    ]


@pytest.mark.parametrize("rows", [1, 10])
def test_group_query_count_is_constant(admin_client, learner, django_assert_max_num_queries, rows):
    group = GroupFactory(session=SessionFactory(profile=learner))
    for _ in range(rows):
        Run.objects.create(
            organization=group.organization,
            group=group,
            session=group.session,
            profile=learner,
            kind="generate",
        )
    admin_client.op("system/session", {})

    with django_assert_max_num_queries(5):
        response = admin_client.op(
            "system/group", {"group_id": str(group.pk), "include_detail": True}
        )

    assert len(response.json()["runs"]) == rows


# -- system/activity ----------------------------------------------------------------------------


def test_activity_counts_sessions_runs_tokens_cost_per_person_and_day(admin_client, learner, model):
    today = books(profile=learner, model=model, groups=1, runs=3)
    earlier = SessionFactory(profile=learner, total_tokens=100, total_cost=Decimal("0.5"))
    Session.objects.filter(pk=earlier.pk).update(
        created_at=timezone.now() - timedelta(days=2), run_count=4
    )
    out_of_range = SessionFactory(profile=learner, total_tokens=999)
    Session.objects.filter(pk=out_of_range.pk).update(
        created_at=timezone.now() - timedelta(days=90)
    )

    body = admin_client.op(
        "system/activity",
        {"profile_ids": [str(learner.pk)]},
    ).json()

    assert body["session_count"] == 2
    assert body["run_count"] == 3 + 4
    assert body["total_tokens"] == today.total_tokens + 100
    assert Decimal(body["total_cost"]) == today.total_cost + Decimal("0.5")
    assert body["attempt_count"] == 0
    assert body["profiles"] == [
        {
            "profile_id": str(learner.pk),
            "profile_name": learner.name,
            "session_count": 2,
            "run_count": 7,
            "total_tokens": today.total_tokens + 100,
            "total_cost": body["total_cost"],
            "last_seen_at": body["profiles"][0]["last_seen_at"],
        }
    ]
    assert len(body["days"]) == 30  # the last 30 days, today included
    by_day = {day["date"]: day for day in body["days"]}
    two_days_ago = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert by_day[two_days_ago]["session_count"] == 1
    assert by_day[two_days_ago]["total_tokens"] == 100
    assert by_day[timezone.now().date().isoformat()]["run_count"] == 3
    assert sum(day["session_count"] for day in body["days"]) == body["session_count"]


def test_activity_takes_attempt_counts_from_the_hook(admin_client, learner, monkeypatch):
    seen = {}

    def attempts(actor, profiles, start, end):
        seen.update(actor=actor, profiles=set(profiles.values_list("pk", flat=True)))
        return {"attempts": 3, "tests": 1}

    hooks = dict(registry.hooks)
    hooks["activity_counts"] = [attempts]
    monkeypatch.setattr(registry, "hooks", hooks)

    body = admin_client.op("system/activity", {"profile_ids": [str(learner.pk)]}).json()

    assert body["attempt_count"] == 3
    assert body["counts"] == {"attempts": 3, "tests": 1}
    assert seen["profiles"] == {learner.pk}


def test_activity_refuses_backwards_ranges_and_summarises_the_end_of_huge_ones(admin_client):
    backwards = admin_client.op(
        "system/activity", {"start_date": "2026-03-01", "end_date": "2026-02-01"}
    )
    assert backwards.status_code == 400
    assert admin_client.op("system/activity", {"start_date": "soon"}).status_code == 400
    # A range the schema allows is answered: its last 366 days, as the answer's dates say.
    huge = admin_client.op(
        "system/activity", {"start_date": "2020-01-01", "end_date": "2026-01-01"}
    )
    assert huge.status_code == 200
    start = datetime.fromisoformat(huge.json()["start_date"])
    end = datetime.fromisoformat(huge.json()["end_date"])
    assert end - start == timedelta(days=366) and end.date().isoformat() == "2026-01-02"


def test_a_learners_activity_is_their_own(make_client, learner, filled, org_admin):
    books(profile=org_admin, groups=1, runs=1)
    body = make_client(learner).op("system/activity", {}).json()
    assert {row["profile_id"] for row in body["profiles"]} == {str(learner.pk)}


@pytest.mark.parametrize("rows", [1, 10])
def test_activity_query_count_is_constant(
    admin_client, org_admin, django_assert_max_num_queries, monkeypatch, rows
):
    # System's own queries: what other apps' activity_counts hooks cost is theirs to test.
    monkeypatch.setattr(registry, "hooks", {**registry.hooks, "activity_counts": []})
    for _ in range(rows):
        SessionFactory(profile=ProfileFactory(organization=org_admin.organization))
    admin_client.op("system/activity", {})

    with django_assert_max_num_queries(6):
        body = admin_client.op("system/activity", {}).json()

    assert body["session_count"] == rows + 1


# -- system/export + file/download --------------------------------------------------------------


def test_export_answers_ids_and_downloads_under_both_spellings(admin_client, org_admin, filled):
    response = admin_client.op("system/export", {"target_session_id": str(filled.pk)})

    assert response.status_code == 200
    body = response.json()
    assert body["file_id"] == body["upload_id"]
    assert body["file_name"].endswith(".zip")
    assert body["row_count"] > 0
    for op in ("system/file/download", "system/file_download"):
        download = admin_client.op(op, {"file_id": body["file_id"]})
        assert download.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
        assert json.loads(archive.read("manifest.json"))["session_id"] == str(filled.pk)
    audit = TimelineEvent.objects.get(event_type="session.exported")
    assert (audit.actor, audit.entity_id) == (org_admin, str(filled.pk))
    assert audit.session_id is not None  # the exporter's own visit


def test_another_organization_cannot_download_an_export(admin_client, outsider_client, filled):
    file_id = admin_client.op("system/export", {"session_id": str(filled.pk)}).json()["file_id"]
    assert outsider_client.op("system/file/download", {"file_id": file_id}).status_code == 404


def test_export_needs_a_session_id(admin_client):
    response = admin_client.op("system/export", {})
    assert response.status_code == 400
    assert "target_session_id" in response.json()["fields"]


# -- system/refresh -----------------------------------------------------------------------------


def test_refresh_repairs_drift_and_is_staff_only(admin_client, make_client, learner, filled):
    Session.objects.filter(pk=filled.pk).update(run_count=0, total_tokens=0)

    denied = make_client(learner).op("system/refresh", {})
    response = admin_client.op("system/refresh", {})

    assert denied.status_code == 403
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["refreshed_views"] == ["system.group_counters", "system.session_counters"]
    assert body["session_count"] >= 1
    filled_after = Session.objects.get(pk=filled.pk)
    assert filled_after.run_count == 4
    assert filled_after.total_tokens == sum(
        Run.objects.filter(session=filled).values_list("total_tokens", flat=True)
    )


def test_system_is_a_model_less_namespace(admin_client):
    from glow.core.registry import op_table

    ops = op_table()["system"]
    assert {"session", "sessions", "group", "activity", "export", "refresh", "docs"} <= set(ops)
    assert not {"get", "search", "archive", "draft", "publish", "title"} & set(ops)
    assert admin_client.op("system/search", {}).status_code == 404
