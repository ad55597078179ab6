"""Staff review of chats: criterion grades by hand, comments on turns, and the reviewed grade
that every rollup, feedback text and export reads from then on."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from attempts import selectors as s
from attempts.models import (
    Attempt,
    Chat,
    ChatStatus,
    CommentVisibility,
    Completion,
    Grade,
    Message,
    Review,
    TurnComment,
)
from glow.catalog.grading import GradeSource
from glow.core.errors import ApplicationError, NotFound, PermissionDenied, StateError
from system import ledger
from system.models import Session

STRONG = 0.7  # the AI grader's share of points for a strength (glow.ai.local.grading._STRONG)


def require_staff(actor) -> None:
    if not actor.is_staff_role:
        raise PermissionDenied("Only instructors and admins review chats.", code="staff_only")


def ai_grade_of(chat: Chat) -> Grade | None:
    """The judge's grade under a chat's current one (a reviewed grade lies over it)."""
    grade = chat.grade if chat.grade_id else None
    if grade is not None and grade.source == GradeSource.REVIEWED:
        return grade.based_on
    return grade


def _entries_by_standard(grade: Grade | None) -> dict[str, dict]:
    if grade is None:
        return {}
    return {str(entry.get("standard_id")): entry for entry in grade.standard_scores or []}


def _names(entries: list[dict], reviewed: dict[str, Review]) -> set[str]:
    return {entry["name"] for entry in entries if entry["standard_id"] in reviewed}


def _reviewed_values(
    *, base: Grade | None, reviews: list[Review], structure: list[dict], chat: Chat, threshold: int
) -> dict:
    """The base grade's values with each reviewed criterion's score and comment laid over them;
    totals, pass, analyses and the summary recomputed. The AI's numbers stay on each entry."""
    reviewed = {str(review.standard_id): review for review in reviews}
    judged = _entries_by_standard(base)
    entries = []
    for group in structure:
        for standard in group["standards"]:
            key = standard["id"]
            entry = {
                "standard_id": key,
                "group_id": group["id"],
                "score": 0,
                "points": standard["points"],
                "feedback": "",
                **judged.get(key, {}),
                "name": standard["name"],
            }
            review = reviewed.get(key)
            if review is not None:
                entry.update(
                    ai_score=judged[key]["score"] if key in judged else None,
                    ai_feedback=judged.get(key, {}).get("feedback", ""),
                    score=review.score,
                    feedback=review.comment or judged.get(key, {}).get("feedback", ""),
                    reviewed=True,
                    reviewer=review.reviewer.name if review.reviewer_id else "",
                )
            entries.append(entry)
    earned = sum(entry["score"] for entry in entries)
    total = sum(entry["points"] for entry in entries)
    score = s.percent(earned, total) or 0
    changed = _names(entries, reviewed)
    summary = (
        f"Scored {earned}/{total} ({score}%) after staff reviewed "
        f"{len(reviewed)} of {len(entries)} criteria."
    )
    feedbacks = [{"content": summary, "source": "staff"}]
    for entry in entries:
        if entry.get("reviewed") and entry["feedback"]:
            feedbacks.append(
                {
                    "content": entry["feedback"],
                    "standard_id": entry["standard_id"],
                    "source": "staff",
                }
            )
        elif not entry.get("reviewed") and entry["feedback"]:
            feedbacks.append({"content": entry["feedback"], "standard_id": entry["standard_id"]})

    def about_unreviewed(item: dict) -> bool:
        return not any(str(item.get("content", "")).startswith(f"{name}:") for name in changed)

    strengths = [item for item in (base.strengths if base else []) if about_unreviewed(item)]
    improvements = [item for item in (base.improvements if base else []) if about_unreviewed(item)]
    for entry in entries:
        if not entry.get("reviewed") or not entry["points"]:
            continue
        line = f"{entry['name']}: {entry['score']}/{entry['points']} (staff review)"
        if entry["score"] / entry["points"] >= STRONG:
            strengths.append({"content": line, "standard_id": entry["standard_id"]})
        else:
            improvements.append({"content": line, "standard_id": entry["standard_id"]})
    analyses = []
    for group in structure:
        mine = [entry for entry in entries if entry["group_id"] == group["id"]]
        analyses.append(
            {
                "title": group["name"],
                "group_id": group["id"],
                "content": f"{sum(e['score'] for e in mine)}/{sum(e['points'] for e in mine)} points",
            }
        )
    return {
        "score": score,
        "points": earned,
        "total_points": total,
        "passed": score >= threshold,
        "time_taken": base.time_taken if base else chat.time_taken,
        "standard_scores": [{k: v for k, v in e.items() if k != "name"} for e in entries],
        "feedbacks": feedbacks,
        "strengths": strengths,
        "improvements": improvements,
        "analyses": analyses,
        "highlights": base.highlights if base else [],
        "replacements": base.replacements if base else [],
        "judge_samples": base.judge_samples if base else 0,
        "judge_spread": base.judge_spread if base else None,
    }


def reviews_apply(*, attempt: Attempt, chat: Chat, actor) -> Grade | None:
    """Point the chat at its judge's grade with staff's reviews laid over it (a new Grade row;
    the judge's stays as it was). Without reviews the chat points at the judge's grade."""
    base = ai_grade_of(chat)
    reviews = list(Review.objects.filter(chat=chat).select_related("reviewer"))
    if not reviews:
        grade = base
    else:
        judged = _entries_by_standard(base)
        for review in reviews:
            entry = judged.get(str(review.standard_id))
            ai_score = int(entry["score"]) if entry and base.source == GradeSource.AI else None
            if review.ai_score != ai_score:
                Review.objects.filter(pk=review.pk).update(ai_score=ai_score)
        values = _reviewed_values(
            base=base,
            reviews=reviews,
            structure=s.structure_of(s.rubric_for(attempt)),
            chat=chat,
            threshold=attempt.simulation.pass_threshold,
        )
        grade = Grade.objects.create(
            chat=chat,
            attempt=attempt,
            source=GradeSource.REVIEWED,
            based_on=base,
            created_by=actor,
            **values,
        )
    if chat.grade_id != (grade.pk if grade else None):
        Chat.objects.filter(pk=chat.pk).update(grade=grade)
        chat.grade = grade
    return grade


def rollup_recompute(attempt: Attempt) -> None:
    """The attempt's score, pass and (when completed) its completion from the chats' current
    grades: a review after completion changes what the completion reports."""
    chats = s.chats_of(attempt)
    rollup = s.rollup_of(
        chats=chats,
        structure=s.structure_of(s.rubric_for(attempt)),
        pass_threshold=attempt.simulation.pass_threshold,
    )
    completion = Completion.objects.filter(attempt=attempt).first()
    if completion is not None:
        for name in ("score", "points", "total_points", "passed", "groups", "standards"):
            setattr(completion, name, getattr(rollup, name))
        completion.graded_chat_count = rollup.graded_chat_count
        completion.save(
            update_fields=[
                "score",
                "points",
                "total_points",
                "passed",
                "groups",
                "standards",
                "graded_chat_count",
            ]
        )
    attempt.score = rollup.score
    attempt.passed = rollup.passed if rollup.score is not None else None
    attempt.save(update_fields=["score", "passed", "updated_at"])


@dataclass
class ReviewResult:
    chat: Chat
    grade: Grade | None
    reviews: list[Review]


def _criteria_of(attempt: Attempt) -> dict[str, dict]:
    return {
        standard["id"]: {**standard, "group_id": group["id"]}
        for group in s.structure_of(s.rubric_for(attempt))
        for standard in group["standards"]
    }


@transaction.atomic
def attempt_review(
    *, actor, attempt_id, chat_id, criteria: list[dict], session: Session | None = None
) -> ReviewResult:
    """Grade criteria of an ended chat by hand: each {standard_id, score, comment}. The judge's
    grade is kept; the chat's grade becomes the reviewed one and the attempt's rollup (and a
    completion's) is recomputed. Every criterion reviewed is a TimelineEvent."""
    from attempts.steps import _lock, _lock_chat

    require_staff(actor)
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    chat = _lock_chat(attempt=attempt, chat_id=chat_id)
    if chat.status != ChatStatus.ENDED:
        raise StateError("End the chat before reviewing it.", code="chat_not_ended")
    known = _criteria_of(attempt)
    problems = {}
    for item in criteria:
        standard = known.get(str(item["standard_id"]))
        if standard is None:
            problems[str(item["standard_id"])] = "Not a criterion of this simulation's rubric."
        elif item.get("score") is None:
            problems[str(item["standard_id"])] = "Give a score."
        elif not 0 <= int(item["score"]) <= standard["points"]:
            problems[str(item["standard_id"])] = f"Score between 0 and {standard['points']}."
    if not criteria:
        raise ApplicationError(
            "Give standard_id and score, or criteria.",
            code="no_criteria",
            fields={"standard_id": ["Required."]},
        )
    if problems:
        raise ApplicationError(
            "Some criteria cannot take that grade.",
            code="invalid_criteria",
            fields={"criteria": problems},
        )
    earlier = {str(review.standard_id): review.score for review in Review.objects.filter(chat=chat)}
    base = ai_grade_of(chat)
    judged = _entries_by_standard(base)
    saved = []
    for item in criteria:
        key = str(item["standard_id"])
        judge = judged.get(key, {}).get("score")
        review, _ = Review.objects.update_or_create(
            chat=chat,
            standard_id=key,
            defaults={
                "attempt": attempt,
                "score": int(item["score"]),
                "comment": (item.get("comment") or "").strip()[:4000],
                "reviewer": actor,
                "ai_score": judge if base is not None and base.source == GradeSource.AI else None,
            },
        )
        saved.append(review)
        before = f"staff {earlier[key]} → " if key in earlier else ""
        ledger.timeline_record(
            actor=actor,
            session=session,
            event_type="attempt.reviewed",
            entity_id=attempt.pk,
            entity_name=attempt.title,
            extra_1=f"{known[key]['name']}: judge {'—' if judge is None else judge}, "
            f"{before}staff {review.score}/{known[key]['points']}",
            extra_2=f"chat {chat.pk}",
        )
    grade = reviews_apply(attempt=attempt, chat=chat, actor=actor)
    rollup_recompute(attempt)
    return ReviewResult(chat=chat, grade=grade, reviews=saved)


@transaction.atomic
def attempt_annotate(
    *,
    actor,
    attempt_id,
    message_id,
    body: str,
    visibility: str = CommentVisibility.LEARNER,
    session: Session | None = None,
) -> TurnComment:
    """Comment on one turn of a chat, for the learner (beside that turn on their results) or
    for staff only. Audited."""
    require_staff(actor)
    text = (body or "").strip()
    if not text:
        raise ApplicationError("The comment is blank.", fields={"body": ["Blank."]})
    if visibility not in CommentVisibility.values:
        raise ApplicationError(
            "visibility is learner or staff.", fields={"visibility": ["learner or staff."]}
        )
    attempt = s.attempt_access(actor=actor, pk=attempt_id)
    message = Message.objects.select_related("chat").filter(pk=message_id, chat__attempt=attempt)
    message = message.first()
    if message is None:
        raise NotFound(
            "No message with that id in this attempt.", fields={"message_id": ["Not found."]}
        )
    comment = TurnComment.objects.create(
        attempt=attempt,
        chat=message.chat,
        message=message,
        body=text[:4000],
        visibility=visibility,
        author=actor,
    )
    ledger.timeline_record(
        actor=actor,
        session=session,
        event_type="attempt.annotated",
        entity_id=attempt.pk,
        entity_name=attempt.title,
        extra_1=f"{visibility} comment on turn {message.seq} of chat {message.chat.position + 1}",
        extra_2=f"message {message.pk}",
    )
    return comment
