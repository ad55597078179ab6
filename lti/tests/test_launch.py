"""LTI 1.3 against a real platform implementation (lti1p3platform): launch, refusals, scores."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from lti_tool.models import Key, LtiRegistration, LtiUser

from attempts import lifecycle, messaging
from attempts.models import Attempt
from glow.accounts.models import Profile
from glow.accounts.tests.factories import CohortFactory, DepartmentFactory, ProfileFactory
from glow.catalog.tests.factories import HomeFactory, PracticeFactory
from lti.models import PassbackStatus, ScorePassback
from lti.tests.platform import LmsPlatform, register, rsa_pair

pytestmark = pytest.mark.django_db

LEARNER_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
TEXT = "I hear you. What worries you most? The next step is that we meet on Friday to plan."
ALICE = {"sub": "lms-user-alice", "name": "Alice Ng", "email": "alice@school.example"}


@pytest.fixture
def world(org_admin):
    organization = org_admin.organization
    department = DepartmentFactory(organization=organization)
    cohort = CohortFactory(organization=organization, department=department)
    home = HomeFactory(organization=organization, department=department, cohort=cohort)
    with LmsPlatform(tool_base="http://testserver") as platform:
        register(platform, organization)
        yield SimpleNamespace(
            organization=organization,
            department=department,
            cohort=cohort,
            home=home,
            platform=platform,
        )


class Browser:
    """The learner's browser: Django's test client with its cookie jar, following the flow."""

    def __init__(self, client):
        self.client = client

    def login(self, preflight_url: str) -> dict:
        """Glow's OIDC login (with its cookie check): answers the auth request's params."""
        parts = urlsplit(preflight_url)
        response = self.client.get(parts.path, dict(parse_qsl(parts.query)))
        assert response.status_code == 302, response.content
        checked = urlsplit(response["Location"])
        response = self.client.get(checked.path, dict(parse_qsl(checked.query)))
        assert response.status_code == 302, response.content
        return dict(parse_qsl(urlsplit(response["Location"]).query))

    def post_launch(self, form: dict):
        return self.client.post(
            urlsplit(form["launch_url"]).path,
            {"id_token": form["id_token"], "state": form["state"]},
        )


def custom_for(entry) -> dict:
    kind = "home" if entry.__class__.__name__ == "Home" else "practice"
    return {"glow_entry": f"{kind}:{entry.pk}"}


def launch(world, client, *, user=ALICE, roles=(LEARNER_ROLE,), entry=None, **extra):
    browser = Browser(client)
    auth = browser.login(world.platform.preflight_url(user_id=user["sub"]))
    form = world.platform.launch(
        auth, user=user, roles=list(roles), custom=custom_for(entry or world.home), **extra
    )
    return browser, form, browser.post_launch(form)


def counts():
    return (
        get_user_model().objects.count(),
        Profile.objects.count(),
        Attempt.objects.count(),
        LtiUser.objects.count(),
    )


def test_a_launch_signs_the_learner_in_and_lands_on_the_chat_of_a_new_attempt(world, client):
    _, _, response = launch(world, client)
    assert response.status_code == 302, response.content
    attempt = Attempt.objects.get()
    assert response["Location"] == f"/learn/attempts/{attempt.pk}/"
    profile = attempt.profile
    assert profile.organization == world.organization and profile.role == "learner"
    assert profile.user.email == ALICE["email"] and profile.display_name == ALICE["name"]
    assert profile in world.cohort.members.all()
    assert int(client.session["_auth_user_id"]) == profile.user_id
    # The session is a real sign-in: the API answers the learner's own attempt.
    bundle = client.post(
        "/api/v5/artifacts/attempt/get", {"attempt_id": str(attempt.pk)}, "application/json"
    )
    assert bundle.status_code == 200 and bundle.json()["is_own_attempt"] is True
    # The next launch continues the same attempt, as the same person.
    _, _, again = launch(world, client)
    assert again["Location"] == f"/learn/attempts/{attempt.pk}/"
    assert (
        Attempt.objects.count() == 1
        and Profile.objects.filter(user__email=ALICE["email"]).count() == 1
    )


def test_a_launch_matches_an_existing_person_of_the_organization_by_email(world, client):
    existing = ProfileFactory(organization=world.organization, role="learner")
    existing.user.email = "ALICE@school.example"
    existing.user.save()
    elsewhere = ProfileFactory(role="learner")  # same e-mail, another organization: not matched
    elsewhere.user.email = ALICE["email"]
    elsewhere.user.save()
    launch(world, client)
    assert Attempt.objects.get().profile == existing


def test_an_instructor_launch_maps_the_role_and_lands_on_home(world, client):
    _, _, response = launch(world, client, roles=(INSTRUCTOR_ROLE,))
    assert response.status_code == 302 and response["Location"] == "/learn/"
    assert Profile.objects.get(user__email=ALICE["email"]).role == "instructor"
    assert not Attempt.objects.exists()


def test_a_practice_entry_launch_starts_a_practice_attempt(world, client):
    practice = PracticeFactory(organization=world.organization, department=world.department)
    launch(world, client, entry=practice)
    attempt = Attempt.objects.get()
    assert attempt.practice and attempt.practice_entry == practice


def test_another_organizations_entry_is_refused(world, client):
    foreign = HomeFactory()
    before = counts()
    _, _, response = launch(world, client, entry=foreign)
    assert response.status_code == 403
    assert b"no longer exists" in response.content
    assert counts() == before


# -- refusals: each a clear page, and nothing created --------------------------------------------


def tampered(world, form, **changes) -> dict:
    body = jwt.decode(form["id_token"], options={"verify_signature": False})
    body.update(changes)
    return {**form, "id_token": world.platform.sign(body)}


def refusal(world, client, make_form):
    browser = Browser(client)
    auth = browser.login(world.platform.preflight_url(user_id=ALICE["sub"]))
    form = world.platform.launch(
        auth, user=ALICE, roles=[LEARNER_ROLE], custom=custom_for(world.home)
    )
    before = counts()
    response = browser.post_launch(make_form(form))
    assert response.status_code == 403, response.content
    assert counts() == before
    assert "_auth_user_id" not in client.session
    return response.content.decode()


def test_a_bad_signature_is_refused(world, client):
    def forge(form):
        signature = form["id_token"].split(".")[2]
        other = jwt.decode(form["id_token"], options={"verify_signature": False})
        other["sub"] = "someone-else"
        forged = world.platform.sign(other, private_key=rsa_pair()[1])
        return {**form, "id_token": ".".join([*forged.split(".")[:2], signature])}

    assert "signature did not verify" in refusal(world, client, forge)


def test_a_wrong_audience_is_refused(world, client):
    page = refusal(world, client, lambda form: tampered(world, form, aud="another-tool"))
    assert "not addressed to a Glow registration" in page


def test_an_expired_token_is_refused(world, client):
    now = int(time.time())
    page = refusal(world, client, lambda form: tampered(world, form, iat=now - 900, exp=now - 600))
    assert "expired" in page


def test_a_replayed_launch_is_refused(world, client):
    browser = Browser(client)
    auth = browser.login(world.platform.preflight_url(user_id=ALICE["sub"]))
    form = world.platform.launch(
        auth, user=ALICE, roles=[LEARNER_ROLE], custom=custom_for(world.home)
    )
    assert browser.post_launch(form).status_code == 302
    client.logout()
    before = counts()
    response = browser.post_launch(form)
    assert response.status_code == 403 and b"already used" in response.content
    assert counts() == before and "_auth_user_id" not in client.session


def test_cookies_blocked_in_the_frame_answer_a_page_that_opens_a_new_tab(world, client):
    parts = urlsplit(world.platform.preflight_url(user_id=ALICE["sub"]))
    params = dict(parse_qsl(parts.query))
    response = client.get(parts.path, params)
    client.cookies.clear()  # what a browser blocking third-party cookies does with ours
    checked = urlsplit(response["Location"])
    page = client.get(checked.path, dict(parse_qsl(checked.query)))
    assert page.status_code == 200
    assert b"Open Glow in a new tab" in page.content and b'target="_blank"' in page.content
    # The new tab's request goes straight to the platform.
    new_tab = client.get(parts.path, {**params, "lti1p3_new_window": "1"})
    assert new_tab.status_code == 302 and new_tab["Location"].startswith(world.platform.auth_url)


# -- grade passback ---------------------------------------------------------------------------


def complete(attempt):
    profile = attempt.profile
    chat = attempt.chats.order_by("position").first()
    messaging.attempt_message(actor=profile, attempt_id=attempt.pk, chat_id=chat.pk, message=TEXT)
    lifecycle.attempt_end(actor=profile, attempt_id=attempt.pk, chat_id=chat.pk, grade=True)
    return lifecycle.attempt_complete(actor=profile, attempt_id=attempt.pk)


def test_completing_sends_the_score_to_a_line_item_created_with_the_simulation_label(world, client):
    launch(world, client)
    attempt = Attempt.objects.get()
    completion = complete(attempt)
    (score,) = world.platform.scores()
    assert score["scoreGiven"] == completion.score and score["scoreMaximum"] == 100
    assert score["userId"] == ALICE["sub"]
    assert score["activityProgress"] == "Completed" and score["gradingProgress"] == "FullyGraded"
    (item,) = world.platform.line_items.values()
    assert item.body["label"] == attempt.simulation.title
    assert item.body["resourceLinkId"] == "resource-link-1"
    assert ScorePassback.objects.get().status == PassbackStatus.SENT
    # complete again answers the same completion and sends nothing more
    lifecycle.attempt_complete(actor=attempt.profile, attempt_id=attempt.pk)
    assert len(world.platform.scores()) == 1


def test_with_the_lms_down_the_score_waits_and_is_sent_when_it_is_back(world, client):
    launch(world, client)
    attempt = Attempt.objects.get()
    world.platform.down = True
    complete(attempt)
    passback = ScorePassback.objects.get()
    assert passback.status == PassbackStatus.FAILED and passback.tries == 1
    assert passback.next_try_at is not None and "503" in passback.last_error
    ScorePassback.objects.filter(pk=passback.pk).update(next_try_at=None)  # its time has come
    world.platform.down = False
    call_command("lti_scores_retry")
    passback.refresh_from_db()
    assert passback.status == PassbackStatus.SENT
    assert [s["scoreGiven"] for s in world.platform.scores()] == [passback.score]


def test_a_practice_launch_without_a_score_scope_sends_nothing(world, client):
    launch(world, client)
    attempt = Attempt.objects.get()
    launched = attempt.lti_launch
    launched.ags = {**launched.ags, "scope": []}
    launched.save()
    complete(attempt)
    assert not ScorePassback.objects.exists() and world.platform.scores() == []


# -- deep linking and roster ------------------------------------------------------------------


def test_an_instructor_picks_an_entry_and_the_platform_receives_a_signed_content_item(
    world, client
):
    instructor = ProfileFactory(organization=world.organization, role="instructor")
    instructor.departments.add(world.department)
    instructor.user.email = "teacher@school.example"
    instructor.user.save()
    teacher = {"sub": "lms-teacher", "name": "T", "email": "teacher@school.example"}
    browser = Browser(client)
    auth = browser.login(world.platform.preflight_url(user_id=teacher["sub"]))
    form = world.platform.launch(auth, user=teacher, roles=[INSTRUCTOR_ROLE], deep_link=True)
    response = browser.post_launch(form)
    assert response.status_code == 302 and response["Location"].startswith("/lti/deep-link/")
    picker = client.get(response["Location"])
    assert world.home.title.encode() in picker.content
    answer = client.post(response["Location"], {"entry": f"home:{world.home.pk}"})
    assert answer.status_code == 200
    token = answer.content.decode().split('name="JWT" value="')[1].split('"')[0]
    (item,) = world.platform.config.validate_deeplinking_resp({"JWT": token})
    assert item["custom"] == {"glow_entry": f"home:{world.home.pk}"}
    assert item["lineItem"]["label"] == world.home.simulation.title


def test_a_learner_cannot_deep_link(world, client):
    browser = Browser(client)
    auth = browser.login(world.platform.preflight_url(user_id=ALICE["sub"]))
    form = world.platform.launch(auth, user=ALICE, roles=[LEARNER_ROLE], deep_link=True)
    before = counts()
    response = browser.post_launch(form)
    assert response.status_code == 403 and b"Only course instructors" in response.content
    assert counts() == before


def test_roster_sync_puts_the_courses_learners_in_the_cohort(world, client):
    from lti.models import CourseLink

    launch(world, client)  # the course is linked to the home's cohort by its first launch
    world.platform.members = [
        {
            "user_id": "lms-bob",
            "roles": [LEARNER_ROLE],
            "status": "Active",
            "name": "Bob",
            "email": "bob@school.example",
        },
        {
            "user_id": "lms-gone",
            "roles": [LEARNER_ROLE],
            "status": "Inactive",
            "email": "gone@school.example",
        },
        {
            "user_id": "lms-teach",
            "roles": [INSTRUCTOR_ROLE],
            "status": "Active",
            "email": "t2@school.example",
        },
    ]
    call_command("lti_roster_sync")
    members = set(world.cohort.members.values_list("user__email", flat=True))
    assert "bob@school.example" in members and "gone@school.example" not in members
    assert "t2@school.example" not in members
    assert Profile.objects.get(user__email="t2@school.example").role == "instructor"
    assert CourseLink.objects.get().synced_count == 1


def test_jwks_serves_the_active_key_at_a_stable_url(world, client):
    keys = client.get("/lti/jwks/").json()["keys"]
    assert [key["kid"] for key in keys] == [str(Key.objects.get())]
    call_command("lti_keys", "--rotate", "--retire-after", "0")
    keys = client.get("/lti/jwks/").json()["keys"]
    assert len(keys) == 1 and keys[0]["kid"] == str(Key.objects.active().latest())
    assert Key.objects.count() == 2


def test_an_unknown_issuer_login_is_refused_with_a_page(world, client):
    params = {
        "iss": "https://unknown.example",
        "login_hint": "x",
        "target_link_uri": "http://testserver/lti/launch/",
        "lti1p3_new_window": "1",
    }
    response = client.get("/lti/login/?" + urlencode(params))
    assert response.status_code == 400


def test_a_launched_session_may_be_framed_by_its_lms_only(world, client):
    plain = client.get("/lti/config/")
    assert plain["X-Frame-Options"] == "DENY"
    launch(world, client)
    framed = client.get("/lti/config/")
    assert "X-Frame-Options" not in framed
    assert f"frame-ancestors 'self' {world.platform.url}" in framed["Content-Security-Policy"]
    # The learner pages keep the rest of their policy (no inline or foreign script) when framed.
    home = client.get("/learn/")
    assert "X-Frame-Options" not in home
    policy = home["Content-Security-Policy"]
    assert f"frame-ancestors 'self' {world.platform.url}" in policy
    assert "script-src 'self'" in policy and "'none'" not in policy


def test_the_admin_binds_registrations_and_lists_failed_scores(world, client):
    launch(world, client)
    world.platform.down = True
    complete(Attempt.objects.get())
    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
    client.force_login(superuser)
    registration = LtiRegistration.objects.get()
    page = client.get(f"/admin/lti_tool/ltiregistration/{registration.pk}/change/")
    assert page.status_code == 200 and b"Glow organization" in page.content
    listing = client.get("/admin/lti/scorepassback/")
    assert listing.status_code == 200 and b"Failed (will retry)" in listing.content
    world.platform.down = False
    passback = ScorePassback.objects.get()
    client.post(
        "/admin/lti/scorepassback/",
        {"action": "send_again", "_selected_action": [passback.pk]},
    )
    passback.refresh_from_db()
    assert passback.status == PassbackStatus.SENT and len(world.platform.scores()) == 1


def test_a_changed_score_goes_to_the_same_gradebook_column(world, client):
    from glow.core.registry import registry

    launch(world, client)
    attempt = Attempt.objects.get()
    complete(attempt)
    registry.run_hooks("attempt_score_changed", attempt=attempt, score=95)
    assert len(world.platform.line_items) == 1
    first, second = world.platform.scores()
    assert second["scoreGiven"] == 95 and second["timestamp"] >= first["timestamp"]
    assert set(ScorePassback.objects.values_list("status", flat=True)) == {PassbackStatus.SENT}


@pytest.mark.parametrize(
    ("roles", "role"),
    [
        (["Learner"], "learner"),
        (["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"], "instructor"),
        (
            [
                "Instructor",
                "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
            ],
            "learner",
        ),
        (["http://purl.imsglobal.org/vocab/lis/v2/membership#ContentDeveloper"], "instructor"),
        (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"], "learner"),
        ([], "learner"),
    ],
)
def test_lti_roles_map_to_glow_roles(roles, role):
    from lti.services import role_from_lti

    assert role_from_lti(roles) == role
