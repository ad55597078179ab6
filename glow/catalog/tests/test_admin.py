"""The catalog admin: every page renders, lists cost a fixed number of queries, actions archive."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from glow.accounts.tests.factories import ProfileFactory
from glow.catalog import models as m
from glow.catalog.tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.org", "pw"))
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_admin_changelist_and_add_page_renders_for_the_demo_admin():
    call_command("glow_demo", stdout=StringIO())
    client = Client()
    assert client.login(username="admin", password="admin-glow-demo")
    for model, model_admin in admin.site._registry.items():
        response = client.get(admin_url(model, "changelist"))
        assert response.status_code == 200, model._meta.label
        request = response.wsgi_request
        if model_admin.has_add_permission(request):
            assert client.get(admin_url(model, "add")).status_code == 200, model._meta.label
    for model in (m.Simulation, m.Rubric, m.Scenario, m.Home, m.Agent, m.Eval):
        row = model.objects.first()
        assert client.get(admin_url(model, "change", row.pk)).status_code == 200, model


def test_a_bookmarked_model_admin_page_still_opens(superuser_client, org_admin):
    """The admin's model pages moved from /admin/catalog/model/ to .../aimodel/ with the class."""
    model = f.AIModelFactory(organization=org_admin.organization, title="Bookmarked model")
    response = superuser_client.get(
        f"/admin/catalog/model/{model.pk}/change/?_popup=1", follow=True
    )
    assert response.redirect_chain[0][0] == f"/admin/catalog/aimodel/{model.pk}/change/?_popup=1"
    assert response.status_code == 200
    assert response.context["original"] == model
    listing = superuser_client.get("/admin/catalog/model/", follow=True)
    assert "Bookmarked model" in listing.content.decode()


def test_the_simulation_changelist_runs_the_same_queries_for_1_and_10_rows(
    superuser_client, org_admin, django_assert_max_num_queries
):
    f.SimulationFactory(organization=org_admin.organization)
    url = admin_url(m.Simulation, "changelist")
    superuser_client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert superuser_client.get(url).status_code == 200
    f.SimulationFactory.create_batch(9, organization=org_admin.organization)
    with django_assert_max_num_queries(len(one)):
        response = superuser_client.get(url)
    assert response.context["cl"].result_count == 10


def test_archive_and_unarchive_actions_go_through_the_archive_service(superuser_client, org_admin):
    personas = f.PersonaFactory.create_batch(3, organization=org_admin.organization)
    url = admin_url(m.Persona, "changelist")
    chosen = [str(p.pk) for p in personas[:2]]
    response = superuser_client.post(
        url, {"action": "archive_selected", "_selected_action": chosen}, follow=True
    )
    assert "Archived 2 row(s)." in response.content.decode()
    rows = {p.pk: p for p in m.Persona.objects.all()}
    assert [rows[p.pk].archived for p in personas] == [True, True, False]
    assert rows[personas[0].pk].version == 2 and rows[personas[0].pk].archived_at is not None
    superuser_client.post(url, {"action": "unarchive_selected", "_selected_action": chosen[:1]})
    assert not m.Persona.objects.get(pk=personas[0].pk).archived


def test_change_pages_show_version_read_only_and_the_inlines(superuser_client, org_admin):
    simulation = f.SimulationFactory(organization=org_admin.organization)
    page = superuser_client.get(admin_url(m.Simulation, "change", simulation.pk)).content.decode()
    assert 'name="version"' not in page and "Version" in page
    assert 'name="simulation_scenarios-TOTAL_FORMS"' in page
    assert simulation.scenarios.first().title in page

    rubric = simulation.rubric
    page = superuser_client.get(admin_url(m.Rubric, "change", rubric.pk)).content.decode()
    assert 'name="groups-TOTAL_FORMS"' in page and 'name="version"' not in page
    group = rubric.groups.first()
    page = superuser_client.get(admin_url(m.StandardGroup, "change", group.pk)).content.decode()
    assert 'name="standards-TOTAL_FORMS"' in page
    assert group.standards.first().name in page


def test_foreign_keys_autocomplete(superuser_client, org_admin):
    persona = f.PersonaFactory(organization=org_admin.organization, title="Casey the confused")
    f.PersonaFactory(organization=org_admin.organization, title="Morgan the angry")
    response = superuser_client.get(
        "/admin/autocomplete/",
        {
            "app_label": "catalog",
            "model_name": "scenario",
            "field_name": "persona",
            "term": "casey",
        },
    )
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(persona.pk)]


def test_an_admin_form_refuses_references_to_another_organization(
    superuser_client, org_admin, outsider
):
    theirs = f.PersonaFactory(organization=outsider.organization)
    response = superuser_client.post(
        admin_url(m.Scenario, "add"),
        {
            "organization": str(org_admin.organization.pk),
            "title": "Mixed",
            "persona": str(theirs.pk),
            "modality": "text",
            "questions": "[]",
        },
    )
    assert response.status_code == 200
    assert "Pick one from the row&#x27;s own organization." in response.content.decode()
    assert not m.Scenario.objects.filter(title="Mixed").exists()


def test_staff_without_superuser_see_only_their_organizations_rows(org_admin, outsider):
    ours = f.PersonaFactory(organization=org_admin.organization)
    theirs = f.PersonaFactory(organization=outsider.organization)
    staff = ProfileFactory(role="instructor", organization=org_admin.organization).user
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(Permission.objects.get(codename="view_persona"))
    client = Client()
    client.force_login(staff)
    response = client.get(admin_url(m.Persona, "changelist"))
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [ours.pk]
    assert client.get(admin_url(m.Persona, "change", theirs.pk)).status_code == 302
