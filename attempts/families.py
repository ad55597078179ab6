"""The attempt family's registry entry: scoping, search facets, context and problems."""

from __future__ import annotations

from attempts import selectors
from attempts.api import AttemptViewSet
from attempts.filters import AttemptFilterSet
from attempts.models import Attempt, AttemptStatus, ChatStatus
from attempts.serializers import AttemptOut, AttemptWrite
from glow.core.errors import ApplicationError
from glow.core.registry import Facet, Family, registry

FACETS = [
    Facet(
        name="simulation",
        param="simulation_ids",
        field="simulation_id",
        label="simulation__title",
        search_param="simulation_search",
    ),
    Facet(
        name="department",
        param="department_ids",
        field="department_id",
        label="department__name",
        search_param="department_search",
    ),
    Facet(
        name="cohort",
        param="cohort_ids",
        field="cohort_id",
        label="cohort__name",
        search_param="cohort_search",
    ),
    Facet(
        name="learner",
        param="profile_ids",
        field="profile_id",
        label="profile__display_name",
        search_param="learner_search",
    ),
]


def write_attempt(instance: Attempt, data: dict) -> Attempt:
    """Drafts and publish may retitle an attempt; attempts themselves come from attempt/start."""
    if instance._state.adding:
        raise ApplicationError(
            "Attempts are created by attempt/start, not by publish.", code="not_creatable"
        )
    for name in ("title", "description"):
        if name in data:
            setattr(instance, name, data[name])
    instance.save(update_fields=["title", "description", "updated_at"])
    return instance


def attempt_context(attempt: Attempt) -> str:
    lines = [
        attempt.title,
        f"Simulation: {attempt.simulation.title}. Status: {attempt.status}.",
        f"Started {attempt.started_at:%Y-%m-%d %H:%M}; "
        f"{attempt.ended_chat_count} of {attempt.chat_count} chats ended; "
        f"{attempt.message_count} messages.",
    ]
    if attempt.score is not None:
        lines.append(f"Score {attempt.score}% ({'passed' if attempt.passed else 'not passed'}).")
    for chat in selectors.chats_of(attempt):
        grade = f", graded {chat.grade.score}%" if chat.grade_id else ""
        lines.append(
            f"{chat.position + 1}. {chat.scenario.title} with {chat.scenario.persona.title}: "
            f"{chat.status}{grade}"
        )
    return "\n".join(lines)


def attempt_problems(attempt: Attempt) -> list[dict]:
    problems = []
    if attempt.status == AttemptStatus.IN_PROGRESS and selectors.timer_of(attempt).expired:
        problems.append(
            {
                "code": "time_expired",
                "message": "The time limit has run out: end or complete the attempt.",
                "field": None,
            }
        )
    ungraded = [
        chat.position + 1
        for chat in selectors.chats_of(attempt)
        if chat.status == ChatStatus.ENDED and chat.grade_id is None and chat.message_count
    ]
    if ungraded:
        problems.append(
            {
                "code": "ungraded_chats",
                "message": f"Ended chats without a grade: {', '.join(map(str, ungraded))}.",
                "field": None,
            }
        )
    if attempt.simulation.rubric_id is None:
        problems.append(
            {
                "code": "no_rubric",
                "message": "The simulation has no rubric to grade by.",
                "field": None,
            }
        )
    return problems


FAMILY = Family(
    name="attempt",
    plural="attempts",
    model=Attempt,
    viewset=AttemptViewSet,
    output_serializer=AttemptOut,
    write_serializer=AttemptWrite,
    creatable=False,  # attempt/start creates attempts
    filterset=AttemptFilterSet,
    facets=FACETS,
    scope=selectors.attempt_scope,
    # Learners archive and retitle their own attempts; scoping limits everyone to what they see.
    write_roles=("learner", "instructor", "admin"),
    writer=write_attempt,
    context=attempt_context,
    problems=attempt_problems,
    # Any family's upload may name the chat and attempt a recording or file is for.
    upload_fields=("chat_id", "attempt_id"),
    description="A learner's run through a simulation: one chat per scenario, grades, completion.",
)


def register() -> None:
    registry.register(FAMILY)
