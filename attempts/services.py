"""Every write on attempts: start, message, stop, next, end, grade, complete, use-previous, export."""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, F, FloatField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Cast, Coalesce, Greatest, Round
from django.utils import timezone

from attempts import prompts
from attempts import selectors as s
from attempts.exports import write_export
from attempts.models import (
    GRADE_ENTRY_KINDS,
    Attempt,
    AttemptCount,
    AttemptStatus,
    Chat,
    ChatStatus,
    Completion,
    Grade,
    GradeSource,
    Message,
    QuestionResponse,
    Review,
    Role,
)
from glow.accounts.models import Profile
from glow.ai import ProviderError, fidelity
from glow.catalog.models import Simulation, judge_models_of
from glow.core import media
from glow.core import services as core_services
from glow.core.errors import (
    ApplicationError,
    ConflictError,
    NotFound,
    PermissionDenied,
    StateError,
)
from glow.core.models import Upload, UploadKind
from glow.core.registry import registry
from glow.core.selectors import artifact_access
from system import events
from system import services as books
from system.models import ClientKind, Group, Run, RunStatus, Session

# Locking: every state change takes the attempt row first, then a chat row (the same order
# everywhere, so concurrent calls queue instead of deadlocking). A persona reply is generated
# outside any transaction, so `stop` can see and cancel its Run while it streams.

DELTA_EVENT = "ChatDeltaEvent"
MESSAGE_EVENT = "ChatMessageEvent"
GRADE_EVENT = "ChatGradeEvent"
ERROR_EVENT = "ChatErrorEvent"


class ModelUnavailable(ApplicationError):
    """The model failed or timed out; what was saved before the call stays saved."""

    status_code = 502
    code = "model_error"


# -- shared steps ---------------------------------------------------------------------------------


def _session(*, actor, session: Session | None) -> Session:
    return session or books.session_touch(actor=actor, client_kind=ClientKind.API, auth="service")


def _ensure_group(*, attempt: Attempt, actor, session: Session | None) -> Group:
    """The attempt's streaming group; rows made by bulk paths may not have one yet."""
    if attempt.group_id is not None:
        return attempt.group
    group = books.group_create(
        actor=actor,
        session=_session(actor=actor, session=session),
        family="attempt",
        name=f"Attempt: {attempt.title}",
        artifact_id=attempt.pk,
    )
    Attempt.objects.filter(pk=attempt.pk).update(group=group)
    attempt.group = group
    return group


def _lock(*, actor, attempt_id) -> Attempt:
    return s.attempt_access(actor=actor, pk=attempt_id, for_update=True)


def _lock_chat(*, attempt: Attempt, chat_id) -> Chat:
    chat = (
        Chat.objects.select_for_update(of=("self",))
        .select_related("scenario__persona")
        .filter(pk=chat_id, attempt=attempt)
        .first()
    )
    if chat is None:
        raise NotFound("No chat with that id in this attempt.", fields={"chat_id": ["Not found."]})
    return chat


def _require_owner(attempt: Attempt, actor) -> None:
    if attempt.profile_id != actor.pk:
        raise PermissionDenied(
            "Only the learner taking this attempt may do that.", code="not_attempt_owner"
        )


def _require_in_progress(attempt: Attempt) -> None:
    if attempt.status == AttemptStatus.COMPLETED:
        raise ConflictError(
            "This attempt is completed: its chats are frozen.", code="attempt_completed"
        )


def _current_chat(attempt: Attempt) -> Chat:
    return Chat.objects.select_related("scenario__persona").get(
        attempt=attempt, position=attempt.current_chat_index
    )


def _chat_end(*, attempt: Attempt, chat: Chat, now: datetime) -> None:
    chat.status, chat.ended_at = ChatStatus.ENDED, now
    chat.save(update_fields=["status", "ended_at"])
    attempt.ended_chat_count = F("ended_chat_count") + 1
    attempt.save(update_fields=["ended_chat_count", "updated_at"])
    attempt.refresh_from_db(fields=["ended_chat_count"])


def _rollup_save(attempt: Attempt) -> None:
    """Keep the in-progress score current; a completed attempt's rollup is frozen."""
    if attempt.status == AttemptStatus.COMPLETED:
        return
    rollup = s.rollup_of(
        chats=s.chats_of(attempt), structure=[], pass_threshold=attempt.simulation.pass_threshold
    )
    attempt.score, attempt.passed, attempt.time_taken = (
        rollup.score,
        rollup.passed if rollup.score is not None else None,
        rollup.time_taken,
    )
    attempt.save(update_fields=["score", "passed", "time_taken", "updated_at"])


# -- start --------------------------------------------------------------------------------------


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
    books.timeline_record(
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
    Chat.objects.filter(pk=chat.pk).update(
        message_count=F("message_count") + 1, last_message=opening
    )
    Attempt.objects.filter(pk=attempt.pk).update(message_count=F("message_count") + 1)
    chat.message_count, chat.last_message = chat.message_count + 1, opening
    attempt.message_count += 1
    return opening


# -- message ------------------------------------------------------------------------------------


@dataclass
class MessageResult:
    chat: Chat
    user_message: Message
    assistant_message: Message | None
    run: Run | None = None


@dataclass
class _Accepted:
    attempt: Attempt
    chat: Chat
    user_message: Message
    transcript: list[dict]
    run: Run | None
    assistant: Message | None


@transaction.atomic
def _message_accept(
    *,
    actor,
    attempt_id,
    chat_id,
    text: str,
    parent_message_id,
    assistant_content: str | None,
    hints: list | None,
    contents: list | None,
    session: Session | None,
    mcp: bool,
) -> _Accepted:
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    _require_owner(attempt, actor)
    _require_in_progress(attempt)
    if s.timer_of(attempt).expired:
        raise StateError(
            "The time limit has run out: the attempt can only be ended or completed.",
            code="time_expired",
        )
    chat = _lock_chat(attempt=attempt, chat_id=chat_id)
    if chat.status != ChatStatus.ACTIVE:
        raise StateError(
            f"This chat is {chat.status}: messages go to the active chat.", code="chat_not_active"
        )
    parent_id = chat.last_message_id
    if parent_message_id is not None:
        parent = Message.objects.filter(pk=parent_message_id, chat=chat).first()
        if parent is None:
            raise ApplicationError(
                "No message with that id in this chat.",
                fields={"parent_message_id": ["Not a message of this chat."]},
            )
        # Turns alternate: naming a persona reply continues after it; naming a learner
        # message retries it (the new message takes its place, beside it).
        parent_id = parent.parent_id if parent.role == Role.USER else parent.pk
    transcript = prompts.turns_of(s.branch_to(chat, parent_id))
    user = Message.objects.create(
        chat=chat, seq=chat.message_count + 1, role=Role.USER, content=text, parent_id=parent_id
    )
    added, tip, run, assistant = 1, user, None, None
    if assistant_content is not None:
        assistant = Message.objects.create(
            chat=chat,
            seq=chat.message_count + 2,
            role=Role.ASSISTANT,
            content=assistant_content,
            parent=user,
            hints=hints or [],
            contents=contents or [],
        )
        added, tip = 2, assistant
    else:
        group = _ensure_group(attempt=attempt, actor=actor, session=session)
        run = books.run_create(
            group=group,
            kind="persona_reply",
            family="attempt",
            mcp=mcp,
            artifact_id=attempt.pk,
            params={"chat_id": str(chat.pk), "user_message_id": str(user.pk)},
        )
    Chat.objects.filter(pk=chat.pk).update(
        message_count=F("message_count") + added, last_message=tip
    )
    Attempt.objects.filter(pk=attempt.pk).update(message_count=F("message_count") + added)
    chat.message_count += added
    chat.last_message = tip
    return _Accepted(attempt, chat, user, transcript, run, assistant)


def _persona_reply(accepted: _Accepted, assistant_id: uuid.UUID) -> tuple[str, bool]:
    """Stream the reply to the group channel; answers (text, stopped)."""
    run, chat = accepted.run, accepted.chat
    sent: list[str] = []

    def on_delta(delta: str) -> None:
        events.group_publish(
            group_id=run.group_id,
            event_type=DELTA_EVENT,
            payload={
                "run_id": str(run.pk),
                "chat_id": str(chat.pk),
                "message_id": str(assistant_id),
                "user_message_id": str(accepted.user_message.pk),
                "index": len(sent),
                "delta": delta,
            },
        )
        sent.append(delta)

    request = prompts.persona_reply_request(
        scenario=chat.scenario,
        transcript=accepted.transcript,
        message=accepted.user_message.content,
    )
    try:
        result = books.model_call(run=run, request=request, stream=True, on_delta=on_delta)
    except ProviderError as exc:
        events.event_emit(
            run=run,
            event_type=ERROR_EVENT,
            payload={
                "chat_id": str(chat.pk),
                "user_message_id": str(accepted.user_message.pk),
                "message": str(exc),
            },
        )
        raise ModelUnavailable(
            f"The persona could not answer: {exc}. Your message was kept; send it again to retry.",
            extra={"user_message_id": str(accepted.user_message.pk), "run_id": str(run.pk)},
        )
    return result.text, result.finish_reason == "cancelled"


def _hints_for(accepted: _Accepted, reply: str) -> list[dict]:
    """Coaching hints from their own Run; a failure costs the hints, never the reply, and is
    shown as a hint of type "error" naming the reason (never a silent empty list)."""
    run = books.run_create(
        group=accepted.run.group,
        kind="hint",
        family="attempt",
        mcp=accepted.run.mcp,
        artifact_id=accepted.attempt.pk,
        params={"chat_id": str(accepted.chat.pk)},
    )
    request = prompts.hint_request(
        scenario=accepted.chat.scenario,
        transcript=accepted.transcript,
        message=accepted.user_message.content,
        reply=reply,
    )
    try:
        result = books.model_call(run=run, request=request)
    except ProviderError as exc:
        return [
            {"type": "error", "content": f"No hints for this turn: {exc}", "run_id": str(run.pk)}
        ]
    return [
        {"type": str(hint.get("type", "suggestion")), "content": str(hint.get("content", ""))}
        for hint in (result.data or [])
        if isinstance(hint, dict) and hint.get("content")
    ]


@transaction.atomic
def _message_reply_save(
    *,
    accepted: _Accepted,
    assistant_id: uuid.UUID,
    text: str,
    stopped: bool,
    hints: list,
    contents: list,
    fidelity_flags: list,
) -> Message:
    Attempt.objects.select_for_update().filter(pk=accepted.attempt.pk).values("pk").first()
    chat = Chat.objects.select_for_update().get(pk=accepted.chat.pk)
    user = accepted.user_message
    assistant = Message.objects.create(
        id=assistant_id,
        chat=chat,
        seq=chat.message_count + 1,
        role=Role.ASSISTANT,
        content=text,
        parent=user,
        hints=hints,
        contents=contents,
        run=accepted.run,
        stopped=stopped,
        fidelity_flags=fidelity_flags,
    )
    # A retry may have moved the branch tip meanwhile: only extend the branch this reply answers.
    tip = assistant.pk if chat.last_message_id == user.pk else chat.last_message_id
    Chat.objects.filter(pk=chat.pk).update(message_count=F("message_count") + 1, last_message=tip)
    Attempt.objects.filter(pk=accepted.attempt.pk).update(message_count=F("message_count") + 1)
    events.event_emit(
        run=accepted.run,
        event_type=MESSAGE_EVENT,
        payload={
            "chat_id": str(chat.pk),
            "message_id": str(assistant.pk),
            "user_message_id": str(user.pk),
            "content": text,
            "stopped": stopped,
            "hints": hints,
        },
    )
    return assistant


def attempt_message(
    *,
    actor,
    attempt_id,
    chat_id,
    message: str,
    parent_message_id=None,
    assistant_content: str | None = None,
    hints: list | None = None,
    contents: list | None = None,
    session: Session | None = None,
    mcp: bool = False,
) -> MessageResult:
    """The learner's message and the persona's reply (streamed), or the agent's given reply.

    Three steps: accept the message under the row locks; stream the reply with no transaction
    open (so `stop` can cancel it); store the reply, partial if stopped.
    """
    text = (message or "").strip()
    if not text:
        raise ApplicationError("message may not be blank.", fields={"message": ["Blank."]})
    accepted = _message_accept(
        actor=actor,
        attempt_id=attempt_id,
        chat_id=chat_id,
        text=text,
        parent_message_id=parent_message_id,
        assistant_content=assistant_content,
        hints=hints,
        contents=contents,
        session=session,
        mcp=mcp,
    )
    if accepted.run is None:
        events.group_publish(
            group_id=accepted.attempt.group_id,
            event_type=MESSAGE_EVENT,
            payload={
                "chat_id": str(accepted.chat.pk),
                "message_id": str(accepted.assistant.pk),
                "user_message_id": str(accepted.user_message.pk),
                "content": accepted.assistant.content,
                "stopped": False,
                "hints": accepted.assistant.hints,
            },
        )
        return MessageResult(accepted.chat, accepted.user_message, accepted.assistant)
    assistant_id = uuid.uuid4()
    reply, stopped = _persona_reply(accepted, assistant_id)
    if hints is not None:
        found = hints
    elif stopped:
        found = []
    else:
        found = _hints_for(accepted, reply)
    assistant = _message_reply_save(
        accepted=accepted,
        assistant_id=assistant_id,
        text=reply,
        stopped=stopped,
        hints=found,
        contents=contents or [],
        fidelity_flags=_fidelity_flags(accepted, reply),
    )
    return MessageResult(accepted.chat, accepted.user_message, assistant, accepted.run)


def _fidelity_flags(accepted: _Accepted, reply: str) -> list[dict]:
    scenario = accepted.chat.scenario
    return fidelity.check_reply(
        reply,
        earlier=[turn["content"] for turn in accepted.transcript] + [accepted.user_message.content],
        persona=prompts.persona_of(scenario),
        scenario=prompts.scenario_of(scenario),
    )


# -- stop ---------------------------------------------------------------------------------------


@dataclass
class StopResult:
    chat_id: uuid.UUID | None
    success: bool
    message: str


def attempt_stop(*, actor, chat_id=None, group_id=None) -> StopResult:
    """Set the cancel flag of the reply being generated; the stream keeps what it had sent."""
    visible = s.attempt_queryset(actor=actor)
    if chat_id is not None:
        chat = (
            Chat.objects.select_related("attempt").filter(pk=chat_id, attempt__in=visible).first()
        )
        if chat is None:
            raise NotFound("No chat with that id.", fields={"chat_id": ["Not found."]})
        attempt = chat.attempt
    else:
        attempt = visible.filter(group_id=group_id).first()
        if attempt is None:
            raise NotFound("No attempt streams on that group.", fields={"group_id": ["Not found."]})
        chat = Chat.objects.filter(attempt=attempt, position=attempt.current_chat_index).first()
    _require_owner(attempt, actor)
    runs = Run.objects.filter(
        group_id=attempt.group_id,
        kind="persona_reply",
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
    )
    if chat_id is not None:
        runs = runs.filter(params__chat_id=str(chat_id))
    stopped = sum(books.run_cancel(run=run) for run in runs) if attempt.group_id else 0
    return StopResult(
        chat_id=chat.pk if chat else None,
        success=bool(stopped),
        message="Stopped the reply in progress." if stopped else "Nothing was being generated.",
    )


# -- next, end, end-all ---------------------------------------------------------------------------


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


def _agent_values(*, attempt: Attempt, chat: Chat, given: dict, total_points: int) -> dict:
    """An agent's grade: its percent, with points on the rubric's scale for the rollup."""
    score = int(given["score"])
    threshold = attempt.simulation.pass_threshold
    values = {
        "score": score,
        "points": round(score * total_points / 100),
        "total_points": total_points,
        "passed": given["passed"] if given.get("passed") is not None else score >= threshold,
        "time_taken": given["time_taken"]
        if given.get("time_taken") is not None
        else chat.time_taken,
    }
    for kind in GRADE_ENTRY_KINDS:
        values[kind] = given.get(kind) or []
    return values


def _ai_values(*, data: dict, structure: list[dict], chat: Chat, threshold: int) -> dict:
    """The grader's JSON turned into a Grade: clamped scores, entries in the seed's shapes."""
    points_of = {s_["id"]: s_["points"] for group in structure for s_ in group["standards"]}
    standards = []
    for entry in data.get("standards") or []:
        points = int(points_of.get(str(entry.get("standard_id")), entry.get("points") or 0))
        standards.append(
            {
                "standard_id": str(entry.get("standard_id", "")),
                "group_id": str(entry.get("group_id", "")),
                "score": max(0, min(points, int(entry.get("score") or 0))),
                "points": points,
                "feedback": str(entry.get("feedback") or ""),
            }
        )
    earned = sum(entry["score"] for entry in standards)
    total = sum(entry["points"] for entry in standards) or int(data.get("total_points") or 0)
    score = s.percent(earned, total) or 0
    by_group = {}
    for entry in standards:
        row = by_group.setdefault(entry["group_id"], [0, 0])
        row[0] += entry["score"]
        row[1] += entry["points"]
    feedbacks = [{"content": str(data["feedback"])}] if data.get("feedback") else []
    feedbacks += [
        {"content": entry["feedback"], "standard_id": entry["standard_id"]}
        for entry in standards
        if entry["feedback"]
    ]
    return {
        "score": score,
        "points": earned,
        "total_points": total,
        "passed": score >= threshold,
        "time_taken": chat.time_taken,
        "standard_scores": standards,
        "feedbacks": feedbacks,
        "strengths": [{"content": str(item)} for item in data.get("strengths") or []],
        "improvements": [{"content": str(item)} for item in data.get("improvements") or []],
        "analyses": [
            {
                "title": group["name"],
                "group_id": group["id"],
                "content": f"{by_group[group['id']][0]}/{by_group[group['id']][1]} points",
            }
            for group in structure
            if group["id"] in by_group
        ],
        "highlights": [
            {key: str(value) for key, value in item.items()}
            for item in data.get("highlights") or []
            if isinstance(item, dict) and item.get("quote")
        ],
        "replacements": [
            {key: str(value) for key, value in item.items()}
            for item in data.get("replacements") or []
            if isinstance(item, dict) and item.get("original")
        ],
    }


def _grade_by_ai(
    *,
    attempt: Attempt,
    chat: Chat,
    actor,
    session: Session | None,
    instructions: list[str],
) -> tuple[dict, Run]:
    """The judge's grade; a rubric asking for k samples (or naming k judge models) asks k times
    (a Run each) and keeps each criterion's median with the samples' spread."""
    group = _ensure_group(attempt=attempt, actor=actor, session=session)
    rubric = s.rubric_for(attempt)
    structure = s.structure_of(rubric)
    judges = judge_models_of(rubric) if rubric is not None else []
    samples = len(judges) or (rubric.judge_samples if rubric is not None else 1)
    graded, run = [], None
    for index in range(samples):
        run = books.run_create(
            group=group,
            kind="grade",
            model=judges[index] if judges else None,
            family="attempt",
            artifact_id=attempt.pk,
            params={"chat_id": str(chat.pk), "sample": index, "samples": samples},
        )
        request = prompts.grade_request(
            scenario=chat.scenario,
            transcript=prompts.turns_of(s.chat_transcript(chat)),
            structure=structure,
            pass_threshold=attempt.simulation.pass_threshold,
            instructions=instructions,
        )
        if samples > 1 and not judges:
            # Independent samples: a remote judge samples at temperature 1; the sample number
            # is part of the simulator's context.
            request.temperature = 1.0
            request.context = {**request.context, "sample": index}
        try:
            result = books.model_call(run=run, request=request)
        except ProviderError as exc:
            raise ModelUnavailable(
                f"The grader could not answer: {exc}. The chat is ended; grade it again to retry.",
                extra={"run_id": str(run.pk)},
            )
        graded.append(
            _ai_values(
                data=result.data or {},
                structure=structure,
                chat=chat,
                threshold=attempt.simulation.pass_threshold,
            )
        )
    return _combine_samples(graded, threshold=attempt.simulation.pass_threshold), run


def _combine_samples(graded: list[dict], *, threshold: int) -> dict:
    """One grade from k judge samples: each criterion's median score (its feedback from a sample
    that gave it), its spread (max - min) as a fraction of its points, the largest spread on the
    grade. One sample is itself, spread 0."""
    first = graded[0]
    entries = []
    for position, entry in enumerate(first["standard_scores"]):
        scores = [
            sample["standard_scores"][position]["score"]
            for sample in graded
            if len(sample["standard_scores"]) > position
        ]
        median = sorted(scores)[(len(scores) - 1) // 2]
        chosen = next(
            sample["standard_scores"][position]
            for sample in graded
            if len(sample["standard_scores"]) > position
            and sample["standard_scores"][position]["score"] == median
        )
        points = entry["points"]
        spread = (max(scores) - min(scores)) / points if points else 0.0
        entries.append(
            {**chosen, "samples": scores, "spread": round(spread, 4)} if len(graded) > 1 else chosen
        )
    values = dict(first)
    if len(graded) > 1:
        earned = sum(entry["score"] for entry in entries)
        score = s.percent(earned, first["total_points"]) or 0
        values.update(
            standard_scores=entries,
            points=earned,
            score=score,
            passed=score >= threshold,
        )
    values["judge_samples"] = len(graded)
    values["judge_spread"] = max((entry.get("spread", 0.0) for entry in entries), default=0.0)
    return values


def _grade_create(
    *, attempt: Attempt, chat: Chat, actor, values: dict, source: str, run=None, **extra
) -> Grade:
    grade = Grade.objects.create(
        chat=chat, attempt=attempt, source=source, run=run, created_by=actor, **values, **extra
    )
    chat.grade = grade
    Chat.objects.filter(pk=chat.pk).update(grade=grade)
    if Review.objects.filter(chat=chat).exists():
        # Staff reviewed this chat: their criterion grades lie over the new grade too.
        from attempts.reviews import reviews_apply

        reviews_apply(attempt=attempt, chat=chat, actor=actor)
    if run is not None:
        events.event_emit(
            run=run,
            event_type=GRADE_EVENT,
            payload={
                "chat_id": str(chat.pk),
                "grade_id": str(grade.pk),
                "score": grade.score,
                "passed": grade.passed,
            },
        )
    return grade


def _grade(
    *,
    attempt: Attempt,
    chat: Chat,
    actor,
    session,
    ai: bool,
    given: dict,
    instructions: list[str] = (),
    keep_from: Grade | None = None,
    resource_types: list[str] | None = None,
) -> Grade | None:
    """Take the agent's grade (it names a score), or ask the AI; the agent's lists win a merge."""
    total = sum(group["total_points"] for group in s.structure_of(s.rubric_for(attempt)))
    if given.get("score") is not None:
        values = _agent_values(attempt=attempt, chat=chat, given=given, total_points=total)
        return _grade_create(
            attempt=attempt, chat=chat, actor=actor, values=values, source=GradeSource.AGENT
        )
    if any(given.get(kind) for kind in GRADE_ENTRY_KINDS) and not ai:
        raise ApplicationError(
            "Give a score with your grade entries, or ask for grade: true.",
            fields={"score": ["Required when grading without the AI."]},
        )
    if not ai:
        return None
    values, run = _grade_by_ai(
        attempt=attempt, chat=chat, actor=actor, session=session, instructions=list(instructions)
    )
    if keep_from is not None and resource_types:
        for kind in GRADE_ENTRY_KINDS:
            if kind not in resource_types:
                values[kind] = getattr(keep_from, kind)
    for kind in GRADE_ENTRY_KINDS:
        if given.get(kind):
            values[kind] = given[kind]
    return _grade_create(
        attempt=attempt,
        chat=chat,
        actor=actor,
        values=values,
        source=GradeSource.AI,
        run=run,
        instructions=list(instructions),
    )


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
    failure = None
    with transaction.atomic():
        attempt = _lock(actor=actor, attempt_id=attempt_id)
        _require_owner(attempt, actor)
        _require_in_progress(attempt)
        chat = _lock_chat(attempt=attempt, chat_id=chat_id)
        if chat.status == ChatStatus.PENDING:
            raise StateError("This chat has not started yet.", code="chat_not_started")
        if chat.status == ChatStatus.ACTIVE:
            _chat_end(attempt=attempt, chat=chat, now=timezone.now())
        result = chat.grade if chat.grade_id else None
        if result is None:
            try:
                result = _grade(
                    attempt=attempt,
                    chat=chat,
                    actor=actor,
                    session=session,
                    ai=grade,
                    given=given or {},
                )
            except ModelUnavailable as exc:
                failure = exc
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


# -- grade, use-previous, complete ---------------------------------------------------------------


def attempt_grade(
    *,
    actor,
    attempt_id,
    chat_id=None,
    resource_types: list[str] | None = None,
    user_instructions: list[str] | None = None,
    given: dict | None = None,
    session: Session | None = None,
) -> tuple[Chat, Grade]:
    """Grade an ended chat again (a new Grade; the chat points at it). Allowed after complete:
    the completion stays frozen."""
    failure, result = None, None
    with transaction.atomic():
        attempt = _lock(actor=actor, attempt_id=attempt_id)
        chat = (
            _lock_chat(attempt=attempt, chat_id=chat_id)
            if chat_id is not None
            else _current_chat(attempt)
        )
        if chat.status != ChatStatus.ENDED:
            raise StateError("End the chat before grading it.", code="chat_not_ended")
        try:
            result = _grade(
                attempt=attempt,
                chat=chat,
                actor=actor,
                session=session,
                ai=True,
                given=given or {},
                instructions=user_instructions or [],
                keep_from=chat.grade if chat.grade_id else None,
                resource_types=resource_types,
            )
        except ModelUnavailable as exc:
            failure = exc
        _rollup_save(attempt)
    if failure is not None:
        raise failure
    return chat, result


@transaction.atomic
def attempt_use_previous(*, actor, attempt_id, previous_chat_map: dict) -> int:
    """Copy grades from the same learner's earlier attempt at the same simulation, chat by chat."""
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    _require_owner(attempt, actor)
    _require_in_progress(attempt)
    chats = {str(chat.pk): chat for chat in Chat.objects.filter(attempt=attempt)}
    earlier = Attempt.objects.filter(
        organization_id=attempt.organization_id,
        profile_id=attempt.profile_id,
        simulation_id=attempt.simulation_id,
        started_at__lt=attempt.started_at,
    ).exclude(pk=attempt.pk)
    sources = {
        str(chat.pk): chat
        for chat in Chat.objects.select_related("grade").filter(
            pk__in=list(previous_chat_map.values()), attempt__in=earlier
        )
    }
    problems = {}
    for chat_id, previous_id in previous_chat_map.items():
        chat, source = chats.get(str(chat_id)), sources.get(str(previous_id))
        if chat is None:
            problems[str(chat_id)] = "Not a chat of this attempt."
        elif source is None:
            problems[str(chat_id)] = "Not a chat of your earlier attempt at this simulation."
        elif source.scenario_id != chat.scenario_id:
            problems[str(chat_id)] = "The earlier chat is of another scenario."
        elif source.grade_id is None:
            problems[str(chat_id)] = "The earlier chat has no grade to copy."
    if problems:
        raise ApplicationError(
            "Some chats cannot use a previous grade.", fields={"previous_chat_map": problems}
        )
    now = timezone.now()
    for chat_id, previous_id in previous_chat_map.items():
        chat, earlier_grade = chats[str(chat_id)], sources[str(previous_id)].grade
        copied = {
            name: getattr(earlier_grade, name)
            for name in (
                "score",
                "points",
                "total_points",
                "passed",
                "time_taken",
                "standard_scores",
                *GRADE_ENTRY_KINDS,
            )
        }
        _grade_create(
            attempt=attempt,
            chat=chat,
            actor=actor,
            values=copied,
            source=GradeSource.COPIED,
            copied_from=earlier_grade,
        )
        if chat.status != ChatStatus.ENDED:
            chat.started_at = chat.started_at or now
            chat.status, chat.ended_at = ChatStatus.ENDED, now
            chat.save(update_fields=["status", "started_at", "ended_at"])
    attempt.ended_chat_count = Chat.objects.filter(attempt=attempt, status=ChatStatus.ENDED).count()
    attempt.save(update_fields=["ended_chat_count", "updated_at"])
    _rollup_save(attempt)
    return len(previous_chat_map)


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
    books.timeline_record(
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
    found = (
        Chat.objects.filter(pk=chat_id, attempt__in=s.attempt_queryset(actor=actor))
        .values_list("attempt_id", flat=True)
        .first()
    )
    if found is None:
        raise NotFound("No chat with that id.", fields={"chat_id": ["Not found."]})
    attempt = _lock(actor=actor, attempt_id=found)
    _require_owner(attempt, actor)
    _require_in_progress(attempt)
    chat = _lock_chat(attempt=attempt, chat_id=chat_id)
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


# -- materialised counts, archive ---------------------------------------------------------------

COUNT_KEYS = ("profile_id", "simulation_id", "department_id", "cohort_id", "practice", "archived")


@transaction.atomic
def attempt_counts_sync(*, organization_id, profile_ids=None) -> int:
    """Recount these learners' attempts (every learner of the organization when None) into
    AttemptCount; answers how many count rows now stand for them.

    The learners' profile rows are locked first, so two recounts of one learner (two starts at
    once) run one after the other instead of both inserting.
    """
    profiles = Profile.objects.filter(organization_id=organization_id)
    if profile_ids is not None:
        profiles = profiles.filter(pk__in=profile_ids)
    locked = list(profiles.select_for_update().order_by("pk").values_list("pk", flat=True))
    mine = {"organization_id": organization_id}
    if profile_ids is not None:
        mine["profile_id__in"] = locked
    AttemptCount.objects.filter(**mine).delete()
    rows = (
        Attempt.objects.filter(**mine).order_by().values(*COUNT_KEYS).annotate(number=Count("pk"))
    )
    made = AttemptCount.objects.bulk_create(
        (
            AttemptCount(organization_id=organization_id, count=row.pop("number"), **row)
            for row in rows.iterator(chunk_size=5000)
        ),
        batch_size=5000,
    )
    return len(made)


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


# -- group, export, refresh --------------------------------------------------------------------------


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


@dataclass
class ExportResult:
    upload: Upload
    row_count: int
    message_count: int


def attempt_export(
    *, actor, attempts: QuerySet, view: str, single: bool = False, session: Session | None = None
) -> ExportResult:
    """Write the ZIP to a temporary file (memory stays flat), store it, audit it (FERPA).

    A single attempt's export is readable by whoever may read the attempt; a multi-attempt
    export by its owner and the organization's admins.
    """
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    handle, path = tempfile.mkstemp(suffix=".zip")
    os.close(handle)
    try:
        counts = write_export(path=path, actor=actor, attempts=attempts, view=view)
        first = attempts.values_list("pk", flat=True).first() if single else None
        file_name = (
            f"attempt-{str(first)[:8]}-{stamp}.zip" if single else f"attempts-{view}-{stamp}.zip"
        )
        with transaction.atomic():
            upload = media.upload_save_file(
                organization_id=actor.organization_id,
                owner=actor,
                path=path,
                file_name=file_name,
                mime_type="application/zip",
                kind=UploadKind.EXPORT,
                family="attempt" if single else "",
                artifact_id=first,
                row_count=counts.attempts,
            )
            books.timeline_record(
                actor=actor,
                session=session,
                event_type="attempt.exported",
                entity_id=upload.pk,
                entity_name=file_name,
                extra_1=view,
                extra_2=f"{counts.attempts} attempts, {counts.messages} messages",
            )
    finally:
        os.unlink(path)
    return ExportResult(upload=upload, row_count=counts.attempts, message_count=counts.messages)


def _per_attempt(queryset, expression):
    return Subquery(
        queryset.filter(attempt=OuterRef("pk"))
        .order_by()
        .values("attempt")
        .annotate(value=expression)
        .values("value")[:1]
    )


@transaction.atomic
def attempt_rollups_refresh(*, actor) -> list[str]:
    """Re-derive the denormalised data of the actor's attempts from their sources (repairs drift):
    counters, live scores and frozen scores in three UPDATEs, then the materialised counts.
    """
    scope = s.attempt_queryset(actor=actor)
    chats = Chat.objects.all()
    scope.update(
        chat_count=Coalesce(_per_attempt(chats, Count("pk")), 0),
        ended_chat_count=Coalesce(
            _per_attempt(chats.filter(status=ChatStatus.ENDED), Count("pk")), 0
        ),
        message_count=Coalesce(_per_attempt(chats, Sum("message_count")), 0),
    )
    # The same weighting as selectors.weighted_score: percents weighted by rubric points.
    weight = Greatest(F("grade__total_points"), 1)
    scope.filter(status=AttemptStatus.IN_PROGRESS).update(
        score=_per_attempt(
            chats.filter(grade__isnull=False),
            Round(
                Cast(Sum(F("grade__score") * weight), FloatField())
                / Cast(Sum(weight), FloatField())
            ),
        )
    )
    completions = Completion.objects.filter(attempt=OuterRef("pk"))
    scope.filter(status=AttemptStatus.COMPLETED).update(
        score=Subquery(completions.values("score")[:1]),
        passed=Subquery(completions.values("passed")[:1]),
        time_taken=Subquery(completions.values("time_taken")[:1]),
    )
    if actor.is_admin:
        attempt_counts_sync(organization_id=actor.organization_id)
    else:
        attempt_counts_sync(
            organization_id=actor.organization_id,
            profile_ids=scope.order_by().values("profile_id").distinct(),
        )
    return ["attempt_counters", "attempt_scores", "attempt_counts"]
