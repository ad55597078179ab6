"""Staff pages and the admin: staff roles only, another organization's ids 404, the same figures
as the API, constant query counts, drill-down links."""

from __future__ import annotations

import re

import pytest
from django.urls import path, reverse

from glow.accounts.tests.factories import DepartmentFactory, ProfileFactory
from glow.catalog.tests.factories import AIModelFactory
from glow.core.templatetags.glow_format import count, money
from system.models import Run, Session
from system.staff import artifact_url
from system.tests.factories import GroupFactory, SessionFactory, books, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def filled(learner, org_admin):
    return books(
        profile=learner, model=AIModelFactory(organization=org_admin.organization), groups=2, runs=2
    )


@pytest.fixture
def staff_client(client, org_admin):
    sign_in(client, org_admin)
    return client


def _pages(session) -> list[str]:
    group = session.groups.first()
    return [
        "/staff/",
        "/staff/sessions/",
        f"/staff/sessions/{session.pk}/",
        f"/staff/groups/{group.pk}/",
    ]


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()


def test_anonymous_visitors_are_sent_to_the_login_page(client, filled):
    for url in _pages(filled):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(f"/accounts/login/?next={url}")


def test_learners_get_403_on_every_staff_page(client, learner, filled):
    sign_in(client, learner)
    for url in _pages(filled):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Staff only" in response.content


def test_another_organizations_session_and_group_answer_404(client, outsider, filled):
    sign_in(client, outsider)
    assert client.get(f"/staff/sessions/{filled.pk}/").status_code == 404
    assert client.get(f"/staff/groups/{filled.groups.first().pk}/").status_code == 404
    assert str(filled.pk) not in client.get("/staff/sessions/").content.decode()


def test_an_instructor_sees_only_their_departments_people(client, instructor, learner, filled):
    department = DepartmentFactory(organization=instructor.organization)
    instructor.departments.add(department)
    sign_in(client, instructor)

    assert client.get(f"/staff/sessions/{filled.pk}/").status_code == 404
    learner.departments.add(department)
    assert client.get(f"/staff/sessions/{filled.pk}/").status_code == 200


def test_dashboard_figures_match_the_api(staff_client, admin_client, filled):
    html = staff_client.get("/staff/").content.decode()
    api = admin_client.op("system/activity", {}).json()

    # The API call above opened the admin's API session after the page rendered.
    assert _text(html, "total-sessions") == count(api["session_count"] - 1)
    assert _text(html, "total-tokens") == count(api["total_tokens"])
    assert _text(html, "total-cost") == money(api["total_cost"])
    assert _text(html, "total-runs") == count(api["run_count"])
    assert html.count('<svg class="chart"') == 3
    assert 'role="img"' in html and "<title" in html
    assert filled.profile.name in html


def test_dashboard_date_range_and_bad_input(staff_client):
    ranged = staff_client.get("/staff/?start_date=2026-01-01&end_date=2026-01-07")
    backwards = staff_client.get("/staff/?start_date=2026-02-01&end_date=2026-01-01")
    nonsense = staff_client.get("/staff/?start_date=soon")

    assert ranged.status_code == 200
    assert ranged.content.decode().count('class="bar"') == 3 * 7
    assert backwards.status_code == 200
    assert b"start_date must be before end_date" in backwards.content
    assert nonsense.status_code == 200


def test_session_pages_match_the_api(staff_client, admin_client, filled):
    html = staff_client.get(f"/staff/sessions/{filled.pk}/").content.decode()
    api = admin_client.op("system/session", {"session_id": str(filled.pk)}).json()

    assert _text(html, "session-tokens") == count(filled.total_tokens)
    assert _text(html, "session-cost") == money(filled.total_cost)
    for group in api["groups"]:
        row = re.search(rf'data-group-id="{group["group_id"]}"(.*?)</tr>', html, re.S).group(1)
        assert f'data-field="total_tokens">{count(group["total_tokens"])}<' in row
        assert f'data-field="total_cost">{money(group["total_cost"])}<' in row
        assert f'href="/staff/groups/{group["group_id"]}/"' in row
    assert html.count('data-event-type="') == len(api["timeline"])
    first_group = api["groups"][0]["group_id"]
    assert f'href="/staff/groups/{first_group}/#run-' in html


def test_any_app_may_write_timeline_events_the_page_shows(staff_client, org_admin, filled):
    from system import ledger

    ledger.timeline_record(
        actor=org_admin,
        session=filled,
        event_type="run.reviewed",
        entity_name="A <b>bold</b> note",
        extra_1="not-a-group-id",
    )

    response = staff_client.get(f"/staff/sessions/{filled.pk}/")

    assert response.status_code == 200
    assert "A &lt;b&gt;bold&lt;/b&gt; note" in response.content.decode()


def test_group_page_lists_runs_with_messages_and_events(staff_client, admin_client, filled):
    group = filled.groups.order_by("created_at").first()
    html = staff_client.get(f"/staff/groups/{group.pk}/").content.decode()
    api = admin_client.op("system/group", {"group_id": str(group.pk), "include_detail": True})

    for run in api.json()["runs"]:
        assert f'data-run-id="{run["run_id"]}"' in html
        assert f'data-field="cost">{money(run["cost"])}<' in html
        assert run["model_name"] in html
        assert f'id="run-{run["run_id"]}"' in html
    assert "Say hello number 0." in html
    assert _text(html, "group-cost") == money(api.json()["total_cost"])


def test_sessions_page_filters_and_paginates(staff_client, learner, org_admin):
    for _ in range(30):
        SessionFactory(profile=learner)
    SessionFactory(profile=ProfileFactory(organization=learner.organization), active=False)

    first = staff_client.get("/staff/sessions/").content.decode()
    second = staff_client.get("/staff/sessions/?page=1").content.decode()
    ended = staff_client.get("/staff/sessions/?active=no").content.decode()
    person = staff_client.get(f"/staff/sessions/?profile={learner.pk}").content.decode()

    total = Session.objects.filter(organization=learner.organization).count()
    assert f'data-count="{total}"' in first
    assert first.count("data-session-id=") == 25
    assert second.count("data-session-id=") == total - 25
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert ended.count("data-session-id=") == 1
    assert 'data-count="30"' in person
    bad = staff_client.get("/staff/sessions/?start_date=nope&page=-3")
    assert bad.status_code == 200


@pytest.mark.parametrize("rows", [1, 10])
def test_sessions_page_query_count_is_constant(
    staff_client, learner, django_assert_max_num_queries, rows
):
    for _ in range(rows):
        GroupFactory(session=SessionFactory(profile=learner))
    staff_client.get("/staff/sessions/")

    with django_assert_max_num_queries(8):
        response = staff_client.get("/staff/sessions/")

    assert response.content.decode().count("data-session-id=") == rows + 1


@pytest.mark.parametrize("rows", [1, 10])
def test_group_page_query_count_is_constant(
    staff_client, learner, django_assert_max_num_queries, rows
):
    group = GroupFactory(session=SessionFactory(profile=learner))
    for _ in range(rows):
        Run.objects.create(
            organization=group.organization,
            group=group,
            session=group.session,
            profile=learner,
            kind="generate",
        )
    staff_client.get("/staff/")

    with django_assert_max_num_queries(8):
        response = staff_client.get(f"/staff/groups/{group.pk}/")

    assert response.content.decode().count("data-run-id=") == rows


def test_staff_visits_are_browser_sessions_in_the_books(staff_client, org_admin):
    staff_client.get("/staff/sessions/")
    assert Session.objects.get(profile=org_admin).client_kind == "browser"


def test_the_stylesheet_is_served_locally(staff_client):
    html = staff_client.get("/staff/").content.decode()
    assert 'href="/static/glow/staff.css"' in html
    assert "http://" not in html and "https://" not in html


def test_groups_link_to_an_artifact_page_an_app_contributes(settings, filled):
    assert artifact_url("persona", filled.pk) is None

    urlconf = type(
        "Urls",
        (),
        {
            "urlpatterns": [
                path("staff/persona/<uuid:pk>/", lambda request, pk: None, name="staff-persona")
            ]
        },
    )
    settings.ROOT_URLCONF = urlconf
    assert artifact_url("persona", filled.pk) == f"/staff/persona/{filled.pk}/"
    assert artifact_url("persona", None) is None


# -- admin --------------------------------------------------------------------------------------


def _admin_urls(session) -> list[str]:
    run = Run.objects.filter(session=session).first()
    return [
        reverse("admin:system_session_changelist"),
        reverse("admin:system_session_change", args=[session.pk]),
        reverse("admin:system_group_changelist"),
        reverse("admin:system_group_change", args=[run.group_id]),
        reverse("admin:system_run_changelist"),
        reverse("admin:system_run_change", args=[run.pk]),
        reverse("admin:system_event_changelist"),
        reverse("admin:system_timelineevent_changelist"),
    ]


def test_admin_pages_are_read_only_and_link_to_the_drill_downs(client, instructor, filled):
    department = DepartmentFactory(organization=instructor.organization)
    instructor.departments.add(department)
    filled.profile.departments.add(department)
    user = type(instructor.user).objects.get(pk=instructor.user_id)
    user.is_staff = True
    user.save()
    client.force_login(user)

    for url in _admin_urls(filled):
        response = client.get(url)
        assert response.status_code == 200, url
    session_page = client.get(reverse("admin:system_session_change", args=[filled.pk]))
    assert f'href="/staff/sessions/{filled.pk}/"' in session_page.content.decode()
    assert b'name="_save"' not in session_page.content
    listing = client.get(reverse("admin:system_session_changelist")).content.decode()
    assert f'href="/staff/sessions/{filled.pk}/"' in listing
    runs = client.get(reverse("admin:system_run_changelist")).content.decode()
    assert "/staff/groups/" in runs
    assert client.get(reverse("admin:system_session_add")).status_code == 403


def test_admin_lists_are_scoped_and_filter_by_session_and_person(
    client, instructor, learner, filled
):
    stranger_session = books(profile=ProfileFactory(), groups=1, runs=1)
    user = type(instructor.user).objects.get(pk=instructor.user_id)
    user.is_staff = True
    user.save()
    department = DepartmentFactory(organization=instructor.organization)
    instructor.departments.add(department)
    learner.departments.add(department)
    client.force_login(user)
    runs_url = reverse("admin:system_run_changelist")

    everything = client.get(runs_url).content.decode()
    by_session = client.get(f"{runs_url}?session={filled.pk}").content.decode()
    by_name = client.get(f"{runs_url}?person={learner.user.username}").content.decode()
    nonsense = client.get(f"{runs_url}?session=nope")

    run_ids = [str(pk) for pk in Run.objects.filter(session=filled).values_list("pk", flat=True)]
    assert all(run_id in everything for run_id in run_ids)
    assert str(stranger_session.runs.first().pk) not in everything
    assert all(run_id in by_session for run_id in run_ids)
    assert all(run_id in by_name for run_id in run_ids)
    assert nonsense.status_code == 200


def test_admin_index_shows_activity_totals(client, org_admin, filled):
    user = type(org_admin.user).objects.get(pk=org_admin.user_id)
    user.is_staff = True
    user.save()
    client.force_login(user)

    html = client.get(reverse("admin:index")).content.decode()

    assert _text(html, "admin-total-tokens") == count(filled.total_tokens)
    assert 'href="/staff/"' in html


def test_other_apps_add_sections_to_the_staff_navigation(staff_client, monkeypatch):
    from glow.core.registry import registry

    hooks = dict(registry.hooks)
    hooks["staff_nav"] = [lambda: [("Benchmarks", "staff-sessions")]]
    monkeypatch.setattr(registry, "hooks", hooks)

    html = staff_client.get("/staff/").content.decode()

    assert '<a href="/staff/sessions/">Benchmarks</a>' in html
