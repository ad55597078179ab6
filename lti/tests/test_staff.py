"""The staff page of LMS scores: scoped like attempts, one query count whatever the rows."""

from __future__ import annotations

import pytest
from lti_tool.models import LtiRegistration, LtiUser

from attempts.tests.factories import AttemptFactory
from lti.models import LaunchedAttempt, PassbackStatus, ScorePassback

pytestmark = pytest.mark.django_db


def passbacks(organization, count):
    registration = LtiRegistration.objects.create(
        name="LMS",
        issuer="https://lms.example",
        client_id=f"c-{organization.pk}",
        auth_url="https://lms.example/a",
        token_url="https://lms.example/t",
        keyset_url="https://lms.example/k",
    )
    rows = []
    for n in range(count):
        attempt = AttemptFactory(organization=organization)
        lti_user = LtiUser.objects.create(registration=registration, sub=f"{organization.pk}-{n}")
        launched = LaunchedAttempt.objects.create(attempt=attempt, lti_user=lti_user, ags={})
        rows.append(
            ScorePassback.objects.create(
                launched=launched,
                score=80,
                label=f"Sim {n}",
                status=PassbackStatus.FAILED,
                tries=2,
                last_error="ConnectionError: LMS unreachable",
            )
        )
    return rows


def staff_client(client, profile):
    client.force_login(profile.user)
    return client


@pytest.mark.parametrize("count", [1, 10])
def test_admins_see_their_organizations_scores_in_constant_queries(
    client, org_admin, outsider, count, django_assert_max_num_queries
):
    passbacks(org_admin.organization, count)
    passbacks(outsider.organization, 2)
    staff_client(client, org_admin)
    with django_assert_max_num_queries(12):
        page = client.get("/staff/lms-scores/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("LMS unreachable") == count
    assert html.count(">Send again</button>") == count
    assert 'href="/staff/lms-scores/"' in html  # in the staff navigation


def test_send_again_requeues_only_visible_rows(client, org_admin, outsider):
    (mine,) = passbacks(org_admin.organization, 1)
    (theirs,) = passbacks(outsider.organization, 1)
    staff_client(client, org_admin)
    response = client.post("/staff/lms-scores/", {"passback_id": [mine.pk, theirs.pk]})
    assert response.status_code == 302
    theirs.refresh_from_db()
    assert theirs.tries == 2 and theirs.status == PassbackStatus.FAILED  # untouched
    mine.refresh_from_db()
    # Re-sent inline (unit tests): the LMS host does not exist, so it failed once more.
    assert mine.tries == 3


def test_learners_get_403(client, learner):
    assert staff_client(client, learner).get("/staff/lms-scores/").status_code == 403
