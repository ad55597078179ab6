"""API key rotation and revocation (services, commands, admin) and role changes, each audited."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from glow.accounts.models import ApiKey, Profile
from glow.accounts.services import api_key_create, api_key_revoke, api_key_rotate, profile_role_set
from glow.accounts.tests.factories import ProfileFactory
from glow.core.errors import ApplicationError, StateError
from system.models import Session, TimelineEvent

pytestmark = pytest.mark.django_db

OP = "/api/v5/artifacts/persona/search"


def status_with(key: str) -> int:
    client = APIClient()
    return client.post(OP, {}, format="json", HTTP_X_API_KEY=key).status_code


def audit(event_type: str) -> list[TimelineEvent]:
    return list(TimelineEvent.objects.filter(event_type=event_type).order_by("id"))


def admin_client(profile) -> APIClient:
    """The Django admin, signed in as a superuser who is also `profile`."""
    user = profile.user
    user.is_staff = user.is_superuser = True
    user.save()
    client = APIClient()
    client.force_login(get_user_model().objects.get(pk=user.pk))
    return client


def test_creating_a_key_is_audited_with_actor_and_target(org_admin, learner):
    created = api_key_create(profile=learner, name="laptop", actor=org_admin)
    (event,) = audit("api_key.created")
    assert event.actor == org_admin and event.organization_id == learner.organization_id
    assert event.entity_id == str(created.api_key.pk)
    assert created.api_key.prefix in event.entity_name and learner.name in event.entity_name
    assert event.extra_2 == "laptop"
    assert created.plaintext not in f"{event.entity_name}{event.extra_1}{event.extra_2}"


def test_a_rotated_out_key_answers_401_and_its_replacement_works(org_admin, learner):
    old = api_key_create(profile=learner, name="ci", expires_at=timezone.now() + timedelta(days=30))
    assert status_with(old.plaintext) == 200
    new = api_key_rotate(api_key=old.api_key, actor=org_admin)

    response = APIClient().post(OP, {}, format="json", HTTP_X_API_KEY=old.plaintext)
    assert response.status_code == 401 and response.json()["code"] == "revoked_api_key"
    assert status_with(new.plaintext) == 200
    row = ApiKey.objects.get(pk=new.api_key.pk)
    assert (row.profile, row.name, row.revoked_at) == (learner, "ci", None)
    # The replacement lives as long as the old key was meant to, counted from now.
    lifetime = row.expires_at - timezone.now()
    assert timedelta(days=29, hours=23) < lifetime <= timedelta(days=30)

    (created,) = [e for e in audit("api_key.created") if e.entity_id == str(row.pk)]
    (revoked,) = audit("api_key.revoked")
    assert created.actor == revoked.actor == org_admin
    assert created.extra_1 == f"rotates {old.api_key.prefix}"
    assert revoked.entity_id == str(old.api_key.pk)
    assert revoked.extra_1 == f"rotated to {row.prefix}"


def test_an_expired_key_answers_401_until_it_is_rotated(learner):
    expired = api_key_create(profile=learner, expires_at=timezone.now() - timedelta(seconds=1))
    response = APIClient().post(OP, {}, format="json", HTTP_X_API_KEY=expired.plaintext)
    assert response.status_code == 401 and response.json()["code"] == "expired_api_key"
    replacement = api_key_rotate(api_key=expired.api_key, expires_at=timezone.now() + timedelta(1))
    assert status_with(replacement.plaintext) == 200
    assert status_with(expired.plaintext) == 401


def test_a_revoked_key_cannot_be_rotated_and_revoking_twice_audits_once(learner):
    key = api_key_create(profile=learner)
    api_key_revoke(api_key=key.api_key)
    api_key_revoke(api_key=key.api_key)
    assert len(audit("api_key.revoked")) == 1
    with pytest.raises(StateError):
        api_key_rotate(api_key=key.api_key)
    assert ApiKey.objects.filter(profile=learner).count() == 1


def test_createapikey_rotate_replaces_the_users_key(learner):
    old = api_key_create(profile=learner, name="deploy")
    out, err = StringIO(), StringIO()
    call_command(
        "createapikey",
        learner.user.username,
        "--rotate",
        old.api_key.prefix,
        stdout=out,
        stderr=err,
    )
    new_key = out.getvalue().strip().splitlines()[-1]
    assert status_with(new_key) == 200 and status_with(old.plaintext) == 401
    assert f"replaces {old.api_key.prefix}" in err.getvalue()
    assert ApiKey.objects.get(revoked_at__isnull=True, profile=learner).name == "deploy"
    # From the command line there is no acting profile; the target's organization keeps the row.
    (revoked,) = audit("api_key.revoked")
    assert revoked.actor is None and revoked.organization_id == learner.organization_id

    someone_else = ProfileFactory(organization=learner.organization)
    for username, prefix in (
        (learner.user.username, "00000000"),
        (someone_else.user.username, old.api_key.prefix),
        (learner.user.username, old.api_key.prefix),  # revoked already: rotate the new one
    ):
        with pytest.raises(CommandError):
            call_command(
                "createapikey", username, "--rotate", prefix, stdout=StringIO(), stderr=StringIO()
            )


def test_revokeapikey_revokes_by_prefix(learner):
    key = api_key_create(profile=learner)
    out = StringIO()
    call_command("revokeapikey", key.api_key.prefix, stdout=out)
    assert status_with(key.plaintext) == 401
    assert f"Revoked API key {key.api_key.prefix}" in out.getvalue()
    again = StringIO()
    call_command("revokeapikey", key.api_key.prefix, stdout=again)
    assert "already revoked" in again.getvalue()
    assert len(audit("api_key.revoked")) == 1
    with pytest.raises(CommandError):
        call_command("revokeapikey", "nope0000", stdout=StringIO())


def test_role_changes_are_audited_and_unknown_roles_refused(org_admin, learner):
    profile_role_set(profile=learner, role="learner", actor=org_admin)
    assert audit("profile.role_changed") == []
    profile_role_set(profile=learner, role="instructor", actor=org_admin)
    assert Profile.objects.get(pk=learner.pk).role == "instructor"
    (event,) = audit("profile.role_changed")
    assert (event.actor, event.entity_id) == (org_admin, str(learner.pk))
    assert (event.extra_1, event.extra_2) == ("learner", "instructor")
    with pytest.raises(ApplicationError):
        profile_role_set(profile=learner, role="owner", actor=org_admin)


def test_a_role_change_in_the_admin_is_audited_in_the_admins_session(org_admin, learner):
    client = admin_client(org_admin)
    response = client.post(
        f"/admin/accounts/profile/{learner.pk}/change/",
        {
            "user": str(learner.user_id),
            "organization": str(learner.organization_id),
            "role": "admin",
            "display_name": "Renamed",
        },
    )
    assert response.status_code == 302, response.content
    learner.refresh_from_db()
    assert (learner.role, learner.display_name) == ("admin", "Renamed")
    (event,) = audit("profile.role_changed")
    assert event.actor == org_admin and (event.extra_1, event.extra_2) == ("learner", "admin")
    assert event.session == Session.objects.get(profile=org_admin, client_kind="browser")

    # Saving without a role change writes no audit row.
    client.post(
        f"/admin/accounts/profile/{learner.pk}/change/",
        {
            "user": str(learner.user_id),
            "organization": str(learner.organization_id),
            "role": "admin",
            "display_name": "Renamed again",
        },
    )
    assert len(audit("profile.role_changed")) == 1


def test_admin_key_actions_are_audited(org_admin, learner):
    client = admin_client(org_admin)
    created = client.post(
        "/admin/accounts/apikey/add/",
        {"profile": str(learner.pk), "name": "admin-made", "expires_at_0": "", "expires_at_1": ""},
    )
    assert created.status_code == 302
    key = ApiKey.objects.get(profile=learner)
    assert audit("api_key.created")[-1].actor == org_admin

    rotated = client.post(
        "/admin/accounts/apikey/",
        {"action": "rotate", "_selected_action": [str(key.pk)]},
        follow=True,
    )
    (shown,) = [str(m) for m in rotated.context["messages"] if "replacement" in str(m)]
    plaintext = shown.rsplit(": ", 1)[1].strip()
    assert status_with(plaintext) == 200
    replacement = ApiKey.objects.get(profile=learner, revoked_at__isnull=True)

    client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [str(replacement.pk)]},
    )
    assert status_with(plaintext) == 401
    revoked = audit("api_key.revoked")
    assert [e.entity_id for e in revoked] == [str(key.pk), str(replacement.pk)]
    assert {e.actor for e in revoked} == {org_admin}
