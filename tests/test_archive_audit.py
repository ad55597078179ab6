"""The archive op writes its audit row in the archive's own transaction (STYLE.md rule 8)."""

from __future__ import annotations

from unittest import mock

import pytest

from attempts.tests.factories import AttemptFactory
from glow.catalog.tests.factories import PersonaFactory
from glow.core import services
from glow.core.registry import registry
from system.models import TimelineEvent

pytestmark = pytest.mark.django_db


def test_an_archive_whose_audit_fails_is_rolled_back(org_admin):
    persona = PersonaFactory(organization=org_admin.organization)
    with (
        mock.patch.object(services, "artifact_archive_audit", side_effect=RuntimeError("down")),
        pytest.raises(RuntimeError),
    ):
        services.artifact_archive_bulk(
            actor=org_admin,
            family=registry.get("persona"),
            body={"persona_ids": [persona.pk]},
        )
    persona.refresh_from_db()
    assert not persona.archived


def test_a_refused_archive_leaves_no_audit_row(make_client, org_admin):
    persona = PersonaFactory(organization=org_admin.organization)
    response = make_client(org_admin).op(
        "persona/archive", {"persona_ids": [str(persona.pk)], "version": "x"}
    )
    assert response.status_code == 400
    assert not TimelineEvent.objects.filter(event_type__endswith=".archived").exists()


def test_a_family_archive_is_audited_once_with_its_count(make_client, org_admin, learner):
    attempt = AttemptFactory(profile=learner, organization=org_admin.organization)
    response = make_client(learner).op("attempt/archive", {"attempt_ids": [str(attempt.pk)]})
    assert response.status_code == 200, response.content
    assert response.json()["profile_ids_to_invalidate"] == [str(learner.pk)]
    event = TimelineEvent.objects.get(event_type="attempt.archived")
    assert (event.extra_1, event.extra_2) == ("1", str(attempt.pk))
