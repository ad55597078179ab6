"""The "audit" hook writes TimelineEvents; staff filter a session's timeline by event type."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.utils import timezone

from glow.catalog.tests.factories import PersonaFactory
from glow.core.registry import registry
from system import ledger
from system.models import Run, Session, TimelineEvent
from system.tests.factories import GroupFactory, SessionFactory, sign_in

pytestmark = pytest.mark.django_db


def test_the_audit_hook_books_the_requests_session_or_the_targets_organization(org_admin, learner):
    request = RequestFactory().post("/admin/")
    request.user = org_admin.user
    (with_actor,) = registry.run_hooks(
        "audit",
        actor=org_admin,
        event_type="profile.role_changed",
        entity_id=learner.pk,
        entity_name=learner.name,
        extra_1="learner",
        extra_2="instructor",
        request=request,
    )
    assert with_actor.session == Session.objects.get(profile=org_admin)
    assert (with_actor.actor, with_actor.entity_id) == (org_admin, str(learner.pk))

    (from_cli,) = registry.run_hooks(
        "audit",
        actor=None,
        organization_id=learner.organization_id,
        event_type="api_key.revoked",
        entity_id="k",
        extra_1=0,
    )
    assert from_cli.actor is None and from_cli.session is None
    assert from_cli.organization_id == learner.organization_id


def test_archiving_through_the_api_lands_on_the_callers_session_timeline(admin_client, org_admin):
    persona = PersonaFactory(organization=org_admin.organization)
    assert admin_client.op("persona/archive", {"persona_ids": [str(persona.pk)]}).status_code == 200
    event = TimelineEvent.objects.get(event_type="persona.archived")
    timeline = admin_client.op("system/session", {"event_types": ["persona.archived"]}).json()
    assert timeline["session_id"] == str(event.session_id)
    assert [(i["event_type"], i["extra_1"], i["extra_2"]) for i in timeline["timeline"]] == [
        ("persona.archived", "1", str(persona.pk))
    ]


def _session_with_everything(learner) -> Session:
    session = SessionFactory(profile=learner)
    group = GroupFactory(session=session)
    for event_type in ("group.created", "attempt.archived", "attempt.exported"):
        ledger.timeline_record(
            actor=learner, session=session, event_type=event_type, entity_id=group.pk
        )
    Run.objects.create(
        organization=session.organization,
        group=group,
        session=session,
        profile=learner,
        kind="generate",
        status="succeeded",
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    return session


def test_system_session_filters_the_timeline_by_event_type(admin_client, learner):
    session = _session_with_everything(learner)

    def kinds(event_types) -> list[str]:
        body = {"session_id": str(session.pk)}
        if event_types is not None:
            body["event_types"] = event_types
        response = admin_client.op("system/session", body)
        assert response.status_code == 200, response.content
        return sorted(item["event_type"] for item in response.json()["timeline"])

    everything = kinds(None)
    assert everything == sorted(
        ["group.created", "attempt.archived", "attempt.exported", "run.started", "run.succeeded"]
    )
    assert kinds(["attempt.archived", "run.succeeded"]) == ["attempt.archived", "run.succeeded"]
    assert kinds(["attempt.exported"]) == ["attempt.exported"]
    assert kinds(["nothing.like.this"]) == []
    assert kinds([]) == []
    bad = admin_client.op("system/session", {"session_id": str(session.pk), "event_types": "x"})
    assert bad.status_code == 400 and "event_types" in bad.json()["fields"]


@pytest.mark.parametrize("rows", [1, 10])
def test_the_filtered_session_query_count_is_constant(
    admin_client, learner, django_assert_max_num_queries, rows
):
    session = SessionFactory(profile=learner)
    for _ in range(rows):
        ledger.timeline_record(actor=learner, session=session, event_type="attempt.archived")
    admin_client.op("system/session", {})
    with django_assert_max_num_queries(5):
        response = admin_client.op(
            "system/session", {"session_id": str(session.pk), "event_types": ["attempt.archived"]}
        )
    assert len(response.json()["timeline"]) == rows


def test_the_staff_session_page_has_an_event_type_filter(client, org_admin, learner):
    session = _session_with_everything(learner)
    sign_in(client, org_admin)
    url = f"/staff/sessions/{session.pk}/"

    page = client.get(url).content.decode()
    assert 'id="timeline-filter"' in page
    for kind in ("attempt.archived", "attempt.exported", "group.created", "run.succeeded"):
        assert f'<option value="{kind}">' in page

    filtered = client.get(url, {"event_type": "attempt.exported"}).content.decode()
    assert filtered.count('data-event-type="') == 1
    assert 'data-event-type="attempt.exported"' in filtered
    assert '<option value="attempt.exported" selected>' in filtered

    # A type the session does not hold is not an option: the whole timeline is shown.
    unknown = client.get(url, {"event_type": "not.a.type"}).content.decode()
    assert unknown.count('data-event-type="') == 5
