"""Every mounted op of every registered family refuses the roles it does not declare, and only those.

Generated from the registry (`op_table`), so a new family or op is covered without a new test.
The house rule this checks (DESIGN.md section 3): a role the op is not for answers 403 with the
error shape and the op's `allowed_roles`, before the body is read (so an empty body suffices);
forbidden == missing (404) is the rule for rows, answered later by the selectors' scope, never by
this gate. A listed role may still be refused by the op's own rules (not the owner, a completed
test), but never by the role gate.
"""

from __future__ import annotations

import pytest

from glow.accounts.models import Role
from glow.accounts.tests.factories import ProfileFactory
from glow.core.registry import registry
from glow.core.routers import op_allows, op_spec, viewset_class

pytestmark = pytest.mark.django_db

ROLES = [str(role) for role in Role.values]
# Each op under its canonical name: an alias is the same view and declaration (the router mounts
# both from one OpSpec; test_op_allows_reads_the_same_declaration checks one alias).
MOUNTED = [
    (family.name, spec.name)
    for family in registry.families()
    for spec in viewset_class(family).op_specs()
]


@pytest.fixture(scope="module")
def people(django_db_setup, django_db_blocker) -> dict:
    """One person per role for the whole module (some 1,300 requests), removed at the end."""
    with django_db_blocker.unblock():
        admin = ProfileFactory(role=Role.ADMIN)
        made = {
            role: admin
            if role == Role.ADMIN
            else ProfileFactory(role=role, organization=admin.organization)
            for role in ROLES
        }
        yield made
        admin.organization.delete()
        for profile in made.values():
            profile.user.delete()


def call(client, profile, family: str, name: str):
    client.force_authenticate(user=profile.user)
    spec = op_spec(family, name)
    url = f"/api/v5/artifacts/{family}/{name}"
    if "post" in spec.methods:
        return client.post(url, {}, format="json")
    return client.get(url)


def refused_by_role(response) -> bool:
    if response.status_code != 403:
        return False
    body = response.json()
    return body.get("code") == "permission_denied" and "allowed_roles" in body


@pytest.mark.parametrize(("family", "name"), MOUNTED, ids=[f"{f}/{n}" for f, n in MOUNTED])
def test_each_op_refuses_exactly_the_roles_it_does_not_list(family, name, people):
    from rest_framework.test import APIClient

    roles = op_spec(family, name).roles_for(registry.get(family))
    assert set(roles) <= set(ROLES), f"{family}/{name} names a role that does not exist: {roles}"
    client = APIClient()
    for role in ROLES:
        response = call(client, people[role], family, name)
        if role in roles:
            assert not refused_by_role(response), (role, response.content[:300])
        else:
            assert refused_by_role(response), (role, response.status_code, response.content[:300])
            body = response.json()
            assert body["allowed_roles"] == list(roles)
            assert set(body) >= {"detail", "code", "fields"}


def test_the_declarations_refuse_something_and_admit_someone():
    """Guards the test above from passing vacuously: staff-only and admin-only ops exist, and
    every op admits at least one role."""
    refused = {
        (family, name, role)
        for family, name in MOUNTED
        for role in ROLES
        if role not in op_spec(family, name).roles_for(registry.get(family))
    }
    assert ("test", "start", "learner") in refused
    assert ("attempt", "review", "learner") in refused
    assert ("persona", "publish", "learner") in refused
    assert ("model", "publish", "instructor") in refused
    assert ("attempt", "archive", "learner") not in refused  # learners archive their own
    for family, name in MOUNTED:
        assert op_spec(family, name).roles_for(registry.get(family)), f"{family}/{name}"


def test_the_gate_answers_before_the_body_is_read(people):
    """A refused role gets 403 even for a body that would be a 400."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=people[Role.LEARNER].user)
    response = client.post("/api/v5/artifacts/test/start", {"nonsense": 1}, format="json")
    assert refused_by_role(response)
    client.force_authenticate(user=people[Role.INSTRUCTOR].user)
    response = client.post("/api/v5/artifacts/test/start", {"nonsense": 1}, format="json")
    assert response.status_code == 400


def test_op_allows_reads_the_same_declaration(people):
    learner, instructor, admin = (
        people[role] for role in (Role.LEARNER, Role.INSTRUCTOR, Role.ADMIN)
    )
    assert op_allows("attempt", "start", learner)
    assert not op_allows("test", "start", learner) and op_allows("test", "start", instructor)
    assert op_allows("tests", "start", admin)  # the plural names the family too
    assert not op_allows("model", "publish", instructor) and op_allows("model", "publish", admin)
    assert op_allows("persona", "file/download", learner)  # an alias is the op
    assert not op_allows("persona", "no-such-op", admin)
    assert not op_allows("no-such-family", "get", admin)
