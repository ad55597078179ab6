"""The admin and the API answer the same question the same way: may this role author this
family? Walked over every catalog family's add and change page as admin, instructor, learner."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from conftest import client_for
from glow.accounts.models import Profile
from glow.catalog.admin import ArtifactAdmin
from glow.core.registry import registry

pytestmark = pytest.mark.django_db

FAMILIES = [
    family.name
    for family in registry.families()
    if family.model is not None
    and isinstance(admin.site._registry.get(family.model), ArtifactAdmin)
]


@pytest.fixture
def demo(db):
    call_command("glow_demo", stdout=StringIO())
    return {p.user.username: p for p in Profile.objects.select_related("user")}


def test_every_catalog_family_is_walked():
    assert set(FAMILIES) >= {
        "persona", "scenario", "rubric", "simulation", "home", "practice",
        "agent", "model", "eval", "tool", "document", "field", "parameter",
    }  # fmt: skip


@pytest.mark.parametrize("username", ["admin", "instructor", "learner1"])
def test_admin_pages_answer_as_the_api_does(demo, username):
    actor = demo[username]
    browser = Client()
    browser.force_login(actor.user)
    api = client_for(actor)
    for name in FAMILIES:
        family = registry.get(name)
        model = family.model
        row = model.objects.filter(organization_id=actor.organization_id).first()
        if row is None:  # the demo has no document: one plain row
            row = model.objects.create(organization_id=actor.organization_id, title=f"A {name}")
        api_allows = (
            api.op(
                f"{name}/draft", {"version": row.version, f"{name}_id": str(row.pk), "data": {}}
            ).status_code
            != 403
        )
        info = (model._meta.app_label, model._meta.model_name)
        add = browser.get(reverse("admin:{}_{}_add".format(*info)))
        change = browser.get(reverse("admin:{}_{}_change".format(*info), args=[row.pk]))
        admin_allows = add.status_code == 200 and change.status_code == 200
        assert admin_allows == api_allows, (username, name, add.status_code, api_allows)
        if admin_allows:
            assert b'name="_save"' in change.content, (username, name)
    assert api_allows == (username != "learner1")


def test_an_instructor_authors_a_persona_in_their_organization_through_the_admin(demo):
    from glow.catalog.models import Persona

    browser = Client()
    browser.force_login(demo["instructor"].user)
    other = Profile.objects.get(user__username="other_admin").organization
    response = browser.post(
        reverse("admin:catalog_persona_add"),
        {
            "title": "Kim, worried about a deadline",
            "description": "",
            "traits": "worried\nquiet\n",
            "intensity": 4,
            "voice": "",
            "organization": str(other.pk),  # ignored: the row is the instructor's organization's
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    persona = Persona.objects.get(title="Kim, worried about a deadline")
    assert persona.organization_id == demo["instructor"].organization_id
    assert persona.traits == ["worried", "quiet"]
    change = browser.get(reverse("admin:catalog_persona_change", args=[persona.pk])).content
    assert b"worried\nquiet" in change
