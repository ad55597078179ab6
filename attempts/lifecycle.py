"""An attempt's life: start, next, end, end-all, complete, video answers, archive, its group."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from attempts import prompts
from attempts import selectors as s
from attempts.grading import _grade_keeping_outage
from attempts.models import (
    Attempt,
    AttemptStatus,
    Chat,
    ChatStatus,
    Completion,
    Grade,
    Message,
    QuestionResponse,
    Role,
)
from attempts.rollups import _rollup_save, attempt_counts_sync
from attempts.steps import (
    _chat_end,
    _ensure_group,
    _lock,
    _lock_chat,
    _lock_own_chat,
    _messages_counted,
    _require_in_progress,
    _require_owner,
    _session,
)
from glow.catalog.models import Simulation
from glow.core import services as core_services
from glow.core.errors import (
    ApplicationError,
    NotFound,
    PermissionDenied,
    StateError,
)
from glow.core.registry import registry
from glow.core.selectors import artifact_access
from system import ledger
from system.models import Session


def _cohort_for(*, actor, entry, department_id):
    if getattr(entry, "cohort_id", None):
        return entry.cohort_id
    cohorts = actor.cohorts.order_by("name")
    preferred = cohorts.filter(department_id=department_id).values_list("pk", flat=True).first()
    return preferred or cohorts.values_list("pk", flat=True).first()


@transaction.atomic
def attempt_start(
    *,
    actor,
    home_id=None,
    practice_id=None,
    infinite_mode: bool = False,
    idempotency_key: str = "",
    session: Session | None = None,
) -> Attempt:
    """Resolve the entry to its simulation, fan out one chat per scenario, mint the group.

    The same Idempotency-Key from the same learner answers the first attempt again.
    """
    if bool(home_id) == bool(practice_id):
        message = "Give exactly one of home_id or practice_id."
        raise ApplicationError(message, fields={"home_id": [message], "practice_id": [message]})
    key = (idempotency_key or "").strip()[:200]
    if key:
        existing = Attempt.objects.filter(profile=actor, idempotency_key=key).first()
        if existing is not None:
            return existing
    entry_family = registry.get("home" if home_id else "practice")
    entry = artifact_access(actor=actor, family=entry_family, pk=home_id or practice_id)
    now = timezone.now()
    if entry.archived:
        raise StateError(f"This {entry_family.label} is archived.", code="entry_archived")
    if getattr(entry, "available_at", None) and entry.available_at > now:
        raise StateError("This assignment is not open yet.", code="entry_not_available")
    simulation = Simulation.objects.for_api().get(pk=entry.simulation_id)
    scenarios = simulation.ordered_scenarios()
    if simulation.archived or not scenarios:
        raise StateError(
            "This simulation cannot be started: it is archived or has no scenarios.",
            code="simulation_not_ready",
        )
    department_id = entry.department_id or simulation.department_id
    attempt = Attempt(
        organization_id=actor.organization_id,
        created_by=actor,
        profile=actor,
        title=f"{simulation.title} — {actor.name}"[:300],
        simulation=simulation,
        home=entry if home_id else None,
        practice_entry=None if home_id else entry,
        practice=not home_id,
        infinite_mode=infinite_mode,
        started_at=now,
        department_id=department_id,
        cohort_id=_cohort_for(actor=actor, entry=entry, department_id=department_id),
        chat_count=len(scenarios),
        idempotency_key=key,
    )
    try:
        with transaction.atomic():
            attempt.save(force_insert=True)
    except IntegrityError:
        # A concurrent request with the same key won the insert: answer its attempt.
        if key:
            return Attempt.objects.get(profile=actor, idempotency_key=key)
        raise
    chats = Chat.objects.bulk_create(
        Chat(
            attempt=attempt,
            scenario=scenario,
            position=position,
            status=ChatStatus.ACTIVE if position == 0 else ChatStatus.PENDING,
            started_at=now if position == 0 else None,
        )
        for position, scenario in enumerate(scenarios)
    )
    _persona_opening(attempt=attempt, chat=chats[0])
    attempt_counts_sync(organization_id=actor.organization_id, profile_ids=[actor.pk])
    session = _session(actor=actor, session=session)
    _ensure_group(attempt=attempt, actor=actor, session=session)
    ledger.timeline_record(
        actor=actor,
        session=session,
        event_type="attempt.started",
        entity_id=attempt.pk,
        entity_name=attempt.title,
        extra_1=entry.pk,
    )
    return attempt


def _persona_opening(*, attempt: Attempt, chat: Chat) -> Message | None:
    """The student's opening line, as the chat becomes active, when the scenario has them open."""
    line = prompts.opening_of(chat.scenario)
    if not line:
        return None
    opening = Message.objects.create(
        chat=chat, seq=chat.message_count + 1, role=Role.ASSISTANT, content=line
    )
    _messages_counted(attempt_id=attempt.pk, chat_id=chat.pk, added=1, tip=opening)
    chat.message_count, chat.last_message = chat.message_count + 1, opening
    attempt.message_count += 1
    return opening


@transaction.atomic
def attempt_next(*, actor, attempt_id) -> Chat:
    """Open the next pending chat; in infinite mode the scenarios start over past the last."""
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    _require_owner(attempt, actor)
    _require_in_progress(attempt)
    chats = list(Chat.objects.filter(attempt=attempt).order_by("position"))
    current = chats[attempt.current_chat_index]
    if current.status != ChatStatus.ENDED:
        raise StateError("End the current chat before moving on.", code="chat_not_ended")
    following = next(
        (chat for chat in chats[current.position + 1 :] if chat.status == ChatStatus.PENDING),
        None,
    )
    if following is None:
        if not attempt.infinite_mode:
            raise StateError("That was the last scenario of this attempt.", code="no_next_scenario")
        scenarios = attempt.simulation.ordered_scenarios()
        following = Chat.objects.create(
            attempt=attempt,
            scenario=scenarios[len(chats) % len(scenarios)],
            position=len(chats),
        )
        attempt.chat_count = len(chats) + 1
    following.status, following.started_at = ChatStatus.ACTIVE, timezone.now()
    following.save(update_fields=["status", "started_at"])
    _persona_opening(attempt=attempt, chat=following)
    attempt.current_chat_index = following.position
    attempt.save(update_fields=["current_chat_index", "chat_count", "updated_at"])
    return following


@dataclass
class EndResult:
    chat: Chat
    grade: Grade | None
    is_attempt_finished: bool


def attempt_end(
    *,
    actor,
    attempt_id,
    chat_id,
    grade: bool = False,
    given: dict | None = None,
    session: Session | None = None,
) -> EndResult:
    """End a chat (again: a no-op) and grade it once: by the AI, or with the agent's values.

    The grader runs under the attempt's lock so parallel ends grade exactly once; if it fails,
    the ended chat is still committed and the error is raised after.
    """
    with transaction.atomic():
        attempt = _lock(actor=actor, attempt_id=attempt_id)
        _require_owner(attempt, actor)
        _require_in_progress(attempt)
        chat = _lock_chat(attempt=attempt, chat_id=chat_id)
        if chat.status == ChatStatus.PENDING:
            raise StateError("This chat has not started yet.", code="chat_not_started")
        if chat.status == ChatStatus.ACTIVE:
            _chat_end(attempt=attempt, chat=chat, now=timezone.now())
        result, failure = chat.grade if chat.grade_id else None, None
        if result is None:
            result, failure = _grade_keeping_outage(
                attempt=attempt,
                chat=chat,
                actor=actor,
                session=session,
                ai=grade,
                given=given or {},
            )
        _rollup_save(attempt)
        finished = not attempt.infinite_mode and attempt.ended_chat_count >= attempt.chat_count
    if failure is not None:
        raise failure
    return EndResult(chat=chat, grade=result, is_attempt_finished=finished)


@dataclass
class EndAllResult:
    attempt: Attempt
    ended_count: int
    all_scenarios_complete: bool


@transaction.atomic
def attempt_end_all(*, actor, attempt_id) -> EndAllResult:
    """End every chat still open or pending; `all_scenarios_complete` says none was skipped."""
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    _require_owner(attempt, actor)
    _require_in_progress(attempt)
    chats = Chat.objects.filter(attempt=attempt)
    ended = chats.exclude(status=ChatStatus.ENDED).update(
        status=ChatStatus.ENDED, ended_at=timezone.now()
    )
    attempt.ended_chat_count = chats.count()
    attempt.save(update_fields=["ended_chat_count", "updated_at"])
    _rollup_save(attempt)
    skipped = chats.filter(message_count=0).exclude(grade__isnull=False).exists()
    return EndAllResult(attempt=attempt, ended_count=ended, all_scenarios_complete=not skipped)


@transaction.atomic
def attempt_complete(
    *, actor, attempt_id, message: str = "", session: Session | None = None
) -> Completion:
    """Freeze the chats and roll the rubric up across them; a second call answers the same row."""
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    existing = Completion.objects.filter(attempt=attempt).first()
    if existing is not None:
        return existing
    if attempt.profile_id != actor.pk and not actor.is_staff_role:
        raise PermissionDenied("Only the learner or staff may complete this attempt.")
    now = timezone.now()
    Chat.objects.filter(attempt=attempt).exclude(status=ChatStatus.ENDED).update(
        status=ChatStatus.ENDED, ended_at=now
    )
    chats = s.chats_of(attempt)
    rollup = s.rollup_of(
        chats=chats,
        structure=s.structure_of(s.rubric_for(attempt)),
        pass_threshold=attempt.simulation.pass_threshold,
    )
    completion = Completion.objects.create(
        attempt=attempt,
        score=rollup.score,
        points=rollup.points,
        total_points=rollup.total_points,
        passed=rollup.passed,
        time_taken=rollup.time_taken,
        groups=rollup.groups,
        standards=rollup.standards,
        graded_chat_count=rollup.graded_chat_count,
        message=(message or "")[:2000],
        created_by=actor,
    )
    attempt.status, attempt.completed_at = AttemptStatus.COMPLETED, now
    attempt.score, attempt.passed, attempt.time_taken = (
        rollup.score,
        rollup.passed,
        rollup.time_taken,
    )
    attempt.ended_chat_count = len(chats)
    attempt.save(
        update_fields=[
            "status",
            "completed_at",
            "score",
            "passed",
            "time_taken",
            "ended_chat_count",
            "updated_at",
        ]
    )
    ledger.timeline_record(
        actor=actor,
        session=session,
        event_type="attempt.completed",
        entity_id=attempt.pk,
        entity_name=attempt.title,
        extra_1=completion.pk,
        extra_2="" if rollup.score is None else f"{rollup.score}%",
    )
    # Apps above attempts react here (e.g. lti queues the score for the LMS gradebook).
    registry.run_hooks("attempt_completed", attempt=attempt, completion=completion)
    return completion


# -- video questions --------------------------------------------------------------------------------


@transaction.atomic
def attempt_respond(*, actor, chat_id, question_id: str, option_ids: list[str]) -> QuestionResponse:
    """Answer a video scenario's question; answering it again replaces the earlier answer."""
    attempt, chat = _lock_own_chat(actor=actor, chat_id=chat_id)
    _require_in_progress(attempt)
    if chat.status != ChatStatus.ACTIVE:
        raise StateError(f"This chat is {chat.status}.", code="chat_not_active")
    question = next(
        (q for q in chat.scenario.questions or [] if str(q.get("id")) == question_id), None
    )
    if question is None:
        raise ApplicationError(
            "This chat's scenario has no question with that id.",
            fields={"question_id": ["Unknown question."]},
        )
    known = {str(option.get("id")) for option in question.get("options") or []}
    unknown = [option for option in option_ids if option not in known]
    if unknown:
        raise ApplicationError(
            f"Unknown options: {', '.join(unknown)}.", fields={"option_ids": unknown}
        )
    correct = {str(option) for option in question.get("correct_option_ids") or []}
    response, _ = QuestionResponse.objects.update_or_create(
        chat=chat,
        question_id=question_id,
        defaults={"option_ids": option_ids, "is_correct": set(option_ids) == correct},
    )
    return response


@transaction.atomic
def attempt_archive(*, selection: QuerySet, archived: bool) -> tuple[int, list]:
    """Archive or unarchive the selection in one UPDATE and recount the learners it touched.

    Answers the number of attempts changed and the learners whose histories changed.
    """
    changed = core_services.artifact_archive(selection=selection, archived=archived)
    if not changed:
        return 0, []
    touched = list(selection.order_by().values_list("organization_id", "profile_id").distinct())
    by_organization: dict = {}
    for organization_id, profile_id in touched:
        by_organization.setdefault(organization_id, []).append(profile_id)
    for organization_id, profile_ids in by_organization.items():
        attempt_counts_sync(organization_id=organization_id, profile_ids=profile_ids)
    return changed, [profile_id for _, profile_id in touched]


@transaction.atomic
def attempt_group(
    *, actor, attempt_id=None, group_id=None, session: Session | None = None
) -> Attempt:
    """The attempt's streaming group, minted if the attempt has none yet."""
    visible = s.attempt_queryset(actor=actor).select_related("group")
    query = Q(pk=attempt_id) if attempt_id is not None else Q()
    if group_id is not None:
        query &= Q(group_id=group_id)
    attempt = visible.select_for_update(of=("self",)).filter(query).first()
    if attempt is None:
        raise NotFound("No attempt with that id or group.")
    _ensure_group(attempt=attempt, actor=actor, session=session)
    return attempt
