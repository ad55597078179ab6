"""LTI 1.3 end to end: a real platform implementation (lti1p3platform) registers Glow, launches a
learner through OIDC into the uvicorn server, the learner completes over the API, and a Celery
worker sends the score to the platform's AGS endpoint. Forged launches are refused."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from django.contrib.auth import get_user_model

from attempts.models import Attempt
from glow.accounts.models import Profile
from glow.accounts.services import api_key_create
from glow.accounts.tests.factories import CohortFactory, DepartmentFactory
from glow.catalog.tests.factories import HomeFactory
from lti.models import PassbackStatus, ScorePassback, UsedNonce
from lti.tests.platform import LmsPlatform, register, rsa_pair

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

LEARNER_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
TEXT = "I hear you. What worries you most? The next step is that we meet on Friday to plan."
ALICE = {"sub": "lms-alice-live", "name": "Alice Live", "email": "alice.live@school.example"}


@pytest.fixture
def lms(live_server_url, org_admin):
    organization = org_admin.organization
    department = DepartmentFactory(organization=organization)
    cohort = CohortFactory(organization=organization, department=department)
    home = HomeFactory(organization=organization, department=department, cohort=cohort)
    with LmsPlatform(tool_base=live_server_url) as platform:
        # The platform fetches Glow's JWKS from /lti/jwks/ itself when Glow asks for a token.
        register(platform, organization, tool_key_set=False)
        platform.home = home
        yield platform


def login(browser: httpx.Client, platform: LmsPlatform, user=ALICE) -> dict:
    """The browser follows the platform's preflight through Glow's login to the auth request."""
    response = browser.get(platform.preflight_url(user_id=user["sub"]))
    assert response.status_code == 302, response.text
    response = browser.get(response.headers["location"])  # Glow's cookie check
    assert response.status_code == 302, response.text
    auth = response.headers["location"]
    assert auth.startswith(platform.auth_url)
    return dict(parse_qsl(urlsplit(auth).query))


def launch_form(browser, platform, user=ALICE) -> dict:
    auth = login(browser, platform, user)
    return platform.launch(
        auth, user=user, roles=[LEARNER_ROLE], custom={"glow_entry": f"home:{platform.home.pk}"}
    )


def post_launch(browser, form):
    return browser.post(
        form["launch_url"], data={"id_token": form["id_token"], "state": form["state"]}
    )


def counts():
    return (
        get_user_model().objects.count(),
        Profile.objects.count(),
        Attempt.objects.count(),
        UsedNonce.objects.count(),
    )


def test_launch_complete_and_the_platform_receives_the_score(
    live_server_url, lms, celery_worker_process
):
    with httpx.Client(base_url=live_server_url, timeout=30) as browser:
        response = post_launch(browser, launch_form(browser, lms))
    assert response.status_code == 302, response.text
    attempt = Attempt.objects.get()
    assert response.headers["location"] == f"/learn/attempts/{attempt.pk}/"
    assert attempt.profile.user.email == ALICE["email"]

    api = httpx.Client(
        base_url=f"{live_server_url}/api/v5/artifacts/",
        headers={"X-Api-Key": api_key_create(profile=attempt.profile).plaintext},
        timeout=60,
    )
    chat_id = str(attempt.chats.order_by("position").first().pk)
    for op, body in (
        ("attempt/message", {"chat_id": chat_id, "message": TEXT}),
        ("attempt/end", {"chat_id": chat_id, "grade": True}),
        ("attempt/complete", {}),
    ):
        answer = api.post(op, json={"attempt_id": str(attempt.pk), **body})
        assert answer.status_code == 200, (op, answer.text)
    score = answer.json()["score"]

    deadline = time.monotonic() + 60
    while not lms.scores() and time.monotonic() < deadline:
        time.sleep(0.2)
    (received,) = lms.scores()
    assert received["scoreGiven"] == score and received["userId"] == ALICE["sub"]
    assert received["gradingProgress"] == "FullyGraded"
    (item,) = lms.line_items.values()
    assert item.body["label"] == attempt.simulation.title
    assert lms.token_requests >= 1  # Glow authenticated with its JWKS-published key
    assert ScorePassback.objects.get().status == PassbackStatus.SENT


def _tamper(lms, form, **changes):
    body = jwt.decode(form["id_token"], options={"verify_signature": False})
    return {**form, "id_token": lms.sign({**body, **changes})}


def _forge(lms, form):
    body = jwt.decode(form["id_token"], options={"verify_signature": False})
    forged = lms.sign({**body, "sub": "mallory"}, private_key=rsa_pair()[1])
    return {**form, "id_token": ".".join([*forged.split(".")[:2], form["id_token"].split(".")[2]])}


@pytest.mark.parametrize(
    ("case", "make", "says"),
    [
        ("bad signature", _forge, "signature did not verify"),
        (
            "wrong audience",
            lambda lms, form: _tamper(lms, form, aud="another-tool"),
            "not addressed",
        ),
        (
            "expired",
            lambda lms, form: _tamper(
                lms, form, iat=int(time.time()) - 900, exp=int(time.time()) - 600
            ),
            "expired",
        ),
    ],
)
def test_forged_launches_are_refused_and_create_nothing(live_server_url, lms, case, make, says):
    with httpx.Client(base_url=live_server_url, timeout=30) as browser:
        form = launch_form(browser, lms)
        before = counts()
        response = post_launch(browser, make(lms, form))
    assert response.status_code == 403, (case, response.text)
    assert says in response.text and "Glow could not open this activity" in response.text
    assert counts() == before


def test_a_replayed_launch_is_refused(live_server_url, lms):
    with httpx.Client(base_url=live_server_url, timeout=30) as browser:
        form = launch_form(browser, lms)
        assert post_launch(browser, form).status_code == 302
    before = counts()
    # An eavesdropper (or a back button) posts the same id_token and state again.
    with httpx.Client(base_url=live_server_url, timeout=30, cookies=browser.cookies) as again:
        response = post_launch(again, form)
    assert response.status_code == 403 and "already used" in response.text
    assert counts() == before
