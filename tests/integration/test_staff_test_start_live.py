"""Start a test from /staff/ in headless Chromium against uvicorn (ASGI, so SSE streams) and a real
Celery worker started only once the page is open: the benchmark grid fills in live over the
test's group channel, without a reload.

Whether the test then turns finished on its own is the runner's business (issue 20's engine
side); this test checks what the staff side does: the form starts the API's test_start, and
the grid follows every cell to its grade while the page stays open.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from glow.accounts.tests.factories import DepartmentFactory, OrganizationFactory, ProfileFactory
from tests.integration.conftest import uvicorn_server
from tests_app.models import Test
from tests_app.tests.conftest import Catalog

pytestmark = [pytest.mark.services, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "instructor-glow-demo"


@pytest.fixture
def served_with_static(services_env, tmp_path):
    """uvicorn as `make run` serves on loopback: DEBUG on, so WhiteNoise serves the static files
    from the apps and the session cookie is not HTTPS-only (the shared fixture's server is the
    production profile, without collected static files)."""
    env = {**services_env, "DEBUG": "true"}
    with uvicorn_server(env, tmp_path) as url:
        yield url


def test_a_test_started_from_staff_fills_its_grid_live(
    served_with_static, celery_worker_factory, browser
):
    organization = OrganizationFactory(name="Demo University")
    department = DepartmentFactory(organization=organization, name="Computer Science")
    # The server checks passwords with the production hashers, not the tests' fast MD5 one.
    hasher = PBKDF2PasswordHasher()
    user = get_user_model().objects.create(
        username="instructor", password=hasher.encode(PASSWORD, hasher.salt()), is_staff=True
    )
    instructor = ProfileFactory(
        user=user, organization=organization, role="instructor", display_name="Ivan Instructor"
    )
    instructor.departments.add(department)
    catalog = Catalog(organization, department)
    base = served_with_static

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/admin/login/?next=/staff/tests/")
    page.get_by_label("Username").fill("instructor")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Start a test").click()

    page.get_by_label("Eval").select_option(str(catalog.eval.pk))
    for row in [*catalog.models, *catalog.scenarios, *catalog.agents]:
        page.get_by_label(row.title, exact=True).check()
    page.get_by_label("Title (optional)").fill("Started from the staff pages")
    page.get_by_role("button", name="Start test").click()

    page.wait_for_url("**/benchmark/")
    page.evaluate("window.__sameDocument = true")
    cells = len(catalog.models) * len(catalog.scenarios) * len(catalog.agents)
    graded = "[...document.querySelectorAll('#heatmap td.cell')].filter(td => td.dataset.percent !== '').length"
    # No worker runs yet: the page opens on a grid of queued cells ...
    assert page.evaluate(graded) == 0
    assert page.get_by_role("status").inner_text().startswith("Running")
    # ... and fills in as a worker starts and grades them.
    celery_worker_factory()
    # Every cell shows its grade without the page being reloaded.
    page.wait_for_function(f"n => {graded} === n", arg=cells, timeout=90_000)
    assert page.evaluate("window.__sameDocument") is True
    test = Test.objects.get(title="Started from the staff pages")
    assert test.invocations.count() == cells
    assert page.locator("#cell-count").inner_text() == str(cells)
