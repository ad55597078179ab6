"""Shared fixtures: organizations, people with roles, API clients that authenticate by key."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from glow.accounts.tests.factories import ProfileFactory

# Headless Chromium (`playwright`, `browser`) for every browser test, in tests/ and the apps.
pytest_plugins = ["tests.support.browser"]


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.GLOW_TASK_MODE = "inline"
    # The default PBKDF2 costs ~0.4 s per password: every ProfileFactory and glow_demo pays it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Otherwise every new test client's WhiteNoise scans all of STATIC_ROOT (~60 ms after collectstatic).
    settings.WHITENOISE_AUTOREFRESH = True
    # A DATABASE_URL run is the production profile (DEBUG off, HTTPS redirect); tests speak HTTP.
    settings.SECURE_SSL_REDIRECT = False
    # The offline simulator streams at a typing pace for people; tests read it at once.
    settings.GLOW_LOCAL_STREAM_DELAY = 0.0


class GlowClient(APIClient):
    """POSTs JSON by default, as every op expects."""

    def op(self, path: str, body: dict | None = None, **extra):
        url = path if path.startswith("/") else f"/api/v5/artifacts/{path}"
        return self.post(url, body or {}, format="json", **extra)


def client_for(profile) -> GlowClient:
    from glow.accounts.services import api_key_create

    client = GlowClient()
    client.credentials(HTTP_X_API_KEY=api_key_create(profile=profile).plaintext)
    client.profile = profile
    return client


@pytest.fixture
def make_client():
    return client_for


@pytest.fixture
def org_admin(db):
    return ProfileFactory(role="admin")


@pytest.fixture
def instructor(org_admin):
    return ProfileFactory(role="instructor", organization=org_admin.organization)


@pytest.fixture
def learner(org_admin):
    return ProfileFactory(role="learner", organization=org_admin.organization)


@pytest.fixture
def home(org_admin, learner):
    """A home assignment in a department, for a cohort `learner` belongs to."""
    from glow.accounts.tests.factories import CohortFactory, DepartmentFactory
    from glow.catalog.tests.factories import HomeFactory

    department = DepartmentFactory(organization=org_admin.organization)
    cohort = CohortFactory(organization=org_admin.organization, department=department)
    cohort.members.add(learner)
    return HomeFactory(organization=org_admin.organization, department=department, cohort=cohort)


@pytest.fixture
def outsider(db):
    """An admin of another organization: every id of ours must answer 404 to them."""
    return ProfileFactory(role="admin")


@pytest.fixture
def admin_client(org_admin):
    return client_for(org_admin)


@pytest.fixture
def outsider_client(outsider):
    return client_for(outsider)
