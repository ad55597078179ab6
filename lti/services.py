"""LTI writes: sign a launched learner in, start their attempt, pass scores back, sync rosters."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from lti_tool.lti_core.constants import ContextRole
from lti_tool.lti_core.utils import normalize_role
from lti_tool.models import LtiContext, LtiLaunch, LtiUser
from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem
from pylti1p3.names_roles import NamesRolesProvisioningService
from pylti1p3.service_connector import ServiceConnector

from glow.accounts.models import Profile, Role
from glow.catalog.models import Home, Practice
from glow.core.errors import ApplicationError
from lti.models import (
    CourseLink,
    LaunchedAttempt,
    PassbackStatus,
    RegistrationBinding,
    ScorePassback,
    UsedNonce,
)

logger = logging.getLogger(__name__)

CUSTOM_ENTRY = "glow_entry"  # custom parameter: "home:<uuid>" or "practice:<uuid>"
ENTRY_MODELS = {"home": Home, "practice": Practice}
STAFF_LTI_ROLES = {ContextRole.INSTRUCTOR, ContextRole.ADMINISTRATOR, ContextRole.CONTENT_DEVELOPER}
AUTHOR_LTI_ROLES = {ContextRole.ADMINISTRATOR, ContextRole.CONTENT_DEVELOPER}
TEACHING_ASSISTANT = (
    "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
)
# Seconds before the n-th retry of a score (then it waits for `lti_scores_retry` or an admin).
RETRY_DELAYS = (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)


class LaunchRefused(ApplicationError):
    """The launch is valid LTI but Glow will not act on it; the page says why."""


# -- who the launch is --------------------------------------------------------------------------


def role_from_lti(roles: list[str]) -> str:
    """Instructors, content developers and course administrators author; everyone else learns.

    A course's teaching assistants arrive as Instructor plus the TeachingAssistant sub-role
    (LTI requires the principal role beside a sub-role): in Glow they are the people who
    practise, so they learn. Never an organization admin: that is granted inside Glow.
    """
    normalized = {normalize_role(role) for role in roles}
    if TEACHING_ASSISTANT in normalized and not normalized & AUTHOR_LTI_ROLES:
        return Role.LEARNER
    return Role.INSTRUCTOR if normalized & STAFF_LTI_ROLES else Role.LEARNER


def binding_for(registration) -> RegistrationBinding:
    binding = (
        RegistrationBinding.objects.select_related("organization", "department")
        .filter(registration=registration)
        .first()
    )
    if binding is None:
        raise LaunchRefused(
            "This LMS registration is not bound to a Glow organization yet: an administrator "
            "sets its organization in Glow's admin (LTI registrations).",
            code="lti_unbound",
        )
    return binding


def nonce_use(nonce: str) -> None:
    """Refuse an id_token whose nonce signed someone in before (PyLTI1p3 only checks that the
    nonce was issued, not that it is fresh)."""
    if not nonce:
        raise LaunchRefused("The launch carries no nonce.", code="lti_nonce")
    try:
        with transaction.atomic():
            UsedNonce.objects.create(nonce=nonce[:255])
    except IntegrityError:
        raise LaunchRefused(
            "This launch was already used. Open the activity again from your LMS.",
            code="lti_replayed",
        )


def _unique_username(lti_user: LtiUser) -> str:
    base = (lti_user.email.split("@")[0] if lti_user.email else "lti")[:100] or "lti"
    User = get_user_model()
    for _ in range(5):
        candidate = f"{base}-{secrets.token_hex(3)}"
        if not User.objects.filter(username=candidate).exists():
            return candidate
    return f"lti-{secrets.token_hex(8)}"


def profile_for_lti_user(
    *, lti_user: LtiUser, binding: RegistrationBinding, role: str, department=None
) -> Profile:
    """The Glow profile of a platform user, in the registration's organization.

    Matched by the platform's `sub` (remembered on the LtiUser), else by e-mail among the
    organization's people, else created. A role only ever rises from learner to instructor here.
    """
    organization = binding.organization
    profile = None
    if lti_user.auth_user_id:
        profile = Profile.objects.filter(
            user_id=lti_user.auth_user_id, organization=organization
        ).first()
    if profile is None and lti_user.email:
        profile = (
            Profile.objects.select_related("user")
            .filter(organization=organization, user__email__iexact=lti_user.email)
            .order_by("user__date_joined")
            .first()
        )
    if profile is None:
        User = get_user_model()
        user = User.objects.create_user(
            username=_unique_username(lti_user),
            email=lti_user.email or "",
            first_name=(lti_user.given_name or "")[:150],
            last_name=(lti_user.family_name or "")[:150],
        )
        user.set_unusable_password()
        user.save(update_fields=["password"])
        profile = Profile.objects.create(
            user=user,
            organization=organization,
            role=role,
            display_name=(lti_user.name or lti_user.email or "")[:200],
        )
    elif role == Role.INSTRUCTOR and profile.role == Role.LEARNER:
        profile.role = Role.INSTRUCTOR
        profile.save(update_fields=["role"])
    if lti_user.auth_user_id != profile.user_id:
        lti_user.auth_user_id = profile.user_id
        lti_user.save(update_fields=["auth_user", "datetime_modified"])
    for dept in (binding.department, department):
        if dept is not None:
            profile.departments.add(dept)
    return profile


# -- what the launch opens ----------------------------------------------------------------------


def entry_from_custom(*, organization, custom: dict | None):
    """The home or practice entry named by the link's `glow_entry` custom parameter, or None."""
    value = (custom or {}).get(CUSTOM_ENTRY, "")
    if not value:
        return None
    kind, _, pk = str(value).partition(":")
    model = ENTRY_MODELS.get(kind)
    if model is None:
        raise LaunchRefused(f"Unknown Glow entry {value!r} on this link.", code="lti_entry")
    try:
        return model.objects.select_related("simulation").get(pk=pk, organization=organization)
    except (model.DoesNotExist, ValueError, ApplicationError):
        raise LaunchRefused(
            "The Glow activity this link points to no longer exists.", code="lti_entry"
        )
    except Exception as exc:  # a malformed UUID raises ValidationError
        raise LaunchRefused(f"Malformed Glow entry on this link ({exc}).", code="lti_entry")


def learner_url(name: str, fallback: str, **kwargs) -> str:
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return fallback


def attempt_for_launch(*, profile: Profile, entry):
    """The learner's in-progress attempt at this entry, or a new one (attempts.lifecycle)."""
    from attempts.lifecycle import attempt_start
    from attempts.models import Attempt, AttemptStatus

    field = "home" if isinstance(entry, Home) else "practice_entry"
    current = (
        Attempt.objects.filter(profile=profile, status=AttemptStatus.IN_PROGRESS, **{field: entry})
        .order_by("-started_at")
        .first()
    )
    if current is not None:
        return current
    if isinstance(entry, Home):
        # The LMS enrolled them: the entry's cohort is where Glow looks for its learners.
        entry.cohort.members.add(profile)
        return attempt_start(actor=profile, home_id=entry.pk)
    if entry.cohort_id:
        entry.cohort.members.add(profile)
    return attempt_start(actor=profile, practice_id=entry.pk)


@dataclass(frozen=True)
class LaunchOutcome:
    profile: Profile
    redirect_to: str
    attempt_id: object | None = None


@transaction.atomic
def resource_launch_accept(*, lti_launch: LtiLaunch) -> LaunchOutcome:
    """A validated resource-link launch: sign the person in and open their activity.

    Everything here commits together or not at all (a refused launch leaves no rows).
    """
    from lti_tool.utils import sync_data_from_launch

    nonce_use(lti_launch.get_claim("nonce") or "")
    binding = binding_for(lti_launch.registration)
    sync_data_from_launch(lti_launch)
    role = role_from_lti(lti_launch.roles_claim or [])
    custom = lti_launch.get_claim("https://purl.imsglobal.org/spec/lti/claim/custom")
    entry = entry_from_custom(organization=binding.organization, custom=custom)
    profile = profile_for_lti_user(
        lti_user=lti_launch.user,
        binding=binding,
        role=role,
        department=getattr(entry, "department", None),
    )
    if entry is not None and isinstance(entry, Home) and lti_launch.context_claim:
        CourseLink.objects.get_or_create(
            context=lti_launch.context, defaults={"cohort_id": entry.cohort_id}
        )
    if entry is None or profile.is_staff_role:
        # Staff land on their home; so does a link with no entry (course navigation).
        return LaunchOutcome(profile=profile, redirect_to=learner_url("learn-home", "/learn/"))
    attempt = attempt_for_launch(profile=profile, entry=entry)
    ags = lti_launch.ags_claim or {}
    LaunchedAttempt.objects.update_or_create(
        attempt=attempt,
        defaults={
            "lti_user": lti_launch.user,
            "resource_link": lti_launch.resource_link if lti_launch.resource_link_claim else None,
            "ags": dict(ags),
        },
    )
    url = learner_url("learn-chat", f"/learn/attempts/{attempt.pk}/", attempt_id=attempt.pk)
    return LaunchOutcome(profile=profile, redirect_to=url, attempt_id=attempt.pk)


@transaction.atomic
def deep_link_launch_accept(*, lti_launch: LtiLaunch) -> Profile:
    """A deep-linking request: only course staff pick what the link opens."""
    nonce_use(lti_launch.get_claim("nonce") or "")
    binding = binding_for(lti_launch.registration)
    from lti_tool.utils import sync_data_from_launch

    sync_data_from_launch(lti_launch)
    role = role_from_lti(lti_launch.roles_claim or [])
    if role != Role.INSTRUCTOR:
        raise LaunchRefused(
            "Only course instructors can choose a Glow activity for a link.", code="lti_role"
        )
    return profile_for_lti_user(lti_user=lti_launch.user, binding=binding, role=role)


# -- grade passback (AGS) -----------------------------------------------------------------------


def passback_on_complete(*, attempt, completion, **_) -> None:
    """The `attempt_completed` hook: queue the score of an LMS-launched attempt.

    Runs inside attempt_complete's transaction: the ScorePassback row commits with the
    completion, and its sending is enqueued only after that commit.
    """
    _passback_queue(attempt=attempt, score=completion.score)


def passback_on_score_change(*, attempt, score, **_) -> None:
    """The `attempt_score_changed` hook, for whatever changes a completed attempt's score
    (a human review): the new score goes to the same gradebook column."""
    _passback_queue(attempt=attempt, score=score)


def _passback_queue(*, attempt, score) -> None:
    launched = LaunchedAttempt.objects.filter(attempt=attempt).first()
    if launched is None or score is None:
        return
    if "https://purl.imsglobal.org/spec/lti-ags/scope/score" not in launched.ags.get("scope", []):
        return
    known = (
        launched.passbacks.exclude(lineitem_url="").values_list("lineitem_url", flat=True).first()
    )
    passback = ScorePassback.objects.create(
        launched=launched,
        score=score,
        label=(attempt.simulation.title or "Glow simulation")[:255],
        lineitem_url=known or launched.ags.get("lineitem", ""),
    )
    from glow.core.tasks import enqueue
    from lti.tasks import score_passback_send

    enqueue(score_passback_send, passback.pk)


def _ags_for(launched: LaunchedAttempt) -> AssignmentsGradesService:
    registration = launched.lti_user.registration.to_registration()
    return AssignmentsGradesService(ServiceConnector(registration), launched.ags)


def passback_send(*, passback_id: int) -> int | None:
    """Send one score (line item found or created by tag). Answers seconds until the next try
    after a failure, None when sent or given up. Safe to run twice: a sent row is left alone."""
    with transaction.atomic():
        passback = (
            ScorePassback.objects.select_for_update(of=("self",))
            .select_related("launched__lti_user__registration", "launched__attempt")
            .filter(pk=passback_id)
            .first()
        )
        if passback is None or passback.status in (PassbackStatus.SENT, PassbackStatus.GAVE_UP):
            return None
        launched = passback.launched
        try:
            ags = _ags_for(launched)
            if passback.lineitem_url:
                lineitem = LineItem().set_id(passback.lineitem_url)
            else:
                resource_link = launched.resource_link
                link_id = resource_link.id_on_platform if resource_link is not None else ""
                lineitem = (
                    LineItem()
                    # One gradebook column per simulation and link (the tag finds it again).
                    .set_tag(f"glow-{launched.attempt.simulation_id}-{link_id}"[:255])
                    .set_label(passback.label)
                    .set_score_maximum(100)
                )
                if resource_link is not None:
                    lineitem.set_resource_link_id(resource_link.id_on_platform)
                lineitem = ags.find_or_create_lineitem(lineitem)
                passback.lineitem_url = lineitem.get_id() or ""
            grade = (
                Grade()
                .set_score_given(passback.score)
                .set_score_maximum(100)
                # When Glow decided the score: the LMS keeps the latest if two sends cross.
                .set_timestamp(passback.created_at.isoformat())
                .set_activity_progress("Completed")
                .set_grading_progress("FullyGraded")
                .set_user_id(launched.lti_user.sub)
            )
            ags.put_grade(grade, lineitem)
        except Exception as exc:  # the LMS's errors are many kinds; each is recorded, none lost
            passback.tries += 1
            passback.last_error = f"{type(exc).__name__}: {exc}"[:4000]
            if passback.tries > len(RETRY_DELAYS):
                passback.status, passback.next_try_at = PassbackStatus.GAVE_UP, None
                delay = None
            else:
                delay = RETRY_DELAYS[passback.tries - 1]
                passback.status = PassbackStatus.FAILED
                passback.next_try_at = timezone.now() + timedelta(seconds=delay)
            passback.save()
            logger.warning(
                "Score passback %s failed (try %s): %s", passback.pk, passback.tries, exc
            )
            return delay
        passback.tries += 1
        passback.status, passback.sent_at, passback.next_try_at = (
            PassbackStatus.SENT,
            timezone.now(),
            None,
        )
        passback.last_error = ""
        passback.save()
        return None


def passbacks_due(*, include_given_up: bool = False):
    statuses = [PassbackStatus.PENDING, PassbackStatus.FAILED]
    if include_given_up:
        statuses.append(PassbackStatus.GAVE_UP)
    return ScorePassback.objects.filter(status__in=statuses).exclude(next_try_at__gt=timezone.now())


def passback_retry(*, passback_ids: list[int]) -> int:
    """Staff asked to resend now: failed (even given-up) rows go back to pending and are queued."""
    from glow.core.tasks import enqueue
    from lti.tasks import score_passback_send

    ids = list(
        ScorePassback.objects.filter(pk__in=passback_ids)
        .exclude(status=PassbackStatus.SENT)
        .values_list("pk", flat=True)
    )
    ScorePassback.objects.filter(pk__in=ids).update(status=PassbackStatus.PENDING, next_try_at=None)
    for pk in ids:
        enqueue(score_passback_send, pk)
    return len(ids)


# -- names and roles (NRPS) ---------------------------------------------------------------------


@transaction.atomic
def roster_sync(*, course: CourseLink) -> int:
    """Every active member of the LMS course becomes a Glow profile in the course's cohort."""
    context: LtiContext = course.context
    if not context.memberships_url:
        raise ApplicationError(
            "This course's launches carried no Names and Roles service.", code="lti_no_nrps"
        )
    registration = context.deployment.registration
    binding = binding_for(registration)
    nrps = NamesRolesProvisioningService(
        ServiceConnector(registration.to_registration()),
        {"context_memberships_url": context.memberships_url},
    )
    count = 0
    for member in nrps.get_members():
        if member.get("status", "Active") != "Active" or not member.get("user_id"):
            continue
        lti_user, _ = LtiUser.objects.update_or_create(
            registration=registration,
            sub=member["user_id"],
            defaults={
                key: member[claim]
                for key, claim in (
                    ("email", "email"),
                    ("name", "name"),
                    ("given_name", "given_name"),
                    ("family_name", "family_name"),
                )
                if member.get(claim)
            },
        )
        role = role_from_lti(member.get("roles", []))
        profile = profile_for_lti_user(
            lti_user=lti_user,
            binding=binding,
            role=role,
            department=course.cohort.department,
        )
        if role == Role.LEARNER:
            course.cohort.members.add(profile)
            count += 1
    course.synced_at, course.synced_count = timezone.now(), count
    course.save(update_fields=["synced_at", "synced_count"])
    return count
