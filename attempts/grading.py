"""Grades of chats: the agent's, the AI judge's (k samples combined) or a copied one; grade again, use previous."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from attempts import prompts
from attempts import selectors as s
from attempts.models import (
    GRADE_ENTRY_KINDS,
    Attempt,
    Chat,
    ChatStatus,
    Grade,
    Review,
)
from attempts.rollups import _rollup_save
from attempts.steps import (
    ModelUnavailable,
    _current_chat,
    _ensure_group,
    _lock,
    _lock_chat,
    _require_in_progress,
    _require_owner,
)
from glow.ai import ProviderError
from glow.catalog.grading import GradeSource, grade_request, group_totals, standard_scores
from glow.catalog.models import judge_models_of
from glow.core.errors import (
    ApplicationError,
    StateError,
)
from system import events, gateway, ledger
from system.models import Run, Session

GRADE_EVENT = "ChatGradeEvent"


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
    standards = standard_scores(data, structure)
    earned = sum(entry["score"] for entry in standards)
    total = sum(entry["points"] for entry in standards) or int(data.get("total_points") or 0)
    score = s.percent(earned, total) or 0
    by_group = group_totals(standards)
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
        run = ledger.run_create(
            group=group,
            kind="grade",
            model=judges[index] if judges else None,
            family="attempt",
            artifact_id=attempt.pk,
            params={"chat_id": str(chat.pk), "sample": index, "samples": samples},
        )
        request = grade_request(
            subject="the teaching assistant",
            scenario_title=chat.scenario.title,
            transcript=prompts.turns_of(s.chat_transcript(chat)),
            structure=structure,
            pass_threshold=attempt.simulation.pass_threshold,
            instructions=instructions,
            scenario=prompts.scenario_of(chat.scenario),
            persona=prompts.persona_of(chat.scenario),
        )
        if samples > 1 and not judges:
            # Independent samples: a remote judge samples at temperature 1; the sample number
            # is part of the simulator's context.
            request.temperature = 1.0
            request.context = {**request.context, "sample": index}
        try:
            result = gateway.model_call(run=run, request=request)
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


def _grade_keeping_outage(**options) -> tuple[Grade | None, ModelUnavailable | None]:
    """`_grade` under the caller's lock, with a model outage handed back instead of raised: the
    caller's transaction then commits what it did (the ended chat, the rollup) and raises it after."""
    try:
        return _grade(**options), None
    except ModelUnavailable as exc:
        return None, exc


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
    with transaction.atomic():
        attempt = _lock(actor=actor, attempt_id=attempt_id)
        chat = (
            _lock_chat(attempt=attempt, chat_id=chat_id)
            if chat_id is not None
            else _current_chat(attempt)
        )
        if chat.status != ChatStatus.ENDED:
            raise StateError("End the chat before grading it.", code="chat_not_ended")
        result, failure = _grade_keeping_outage(
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
