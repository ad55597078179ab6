"""Staff pages of attempts: every chat's transcript with its grade, where staff grade criteria
and comment on turns; the review queue; a rubric's calibration."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse

from attempts import calibration, progress, reviews, selectors
from attempts.models import Chat, CommentVisibility, Message, Review
from attempts.rubric_ops import calibration_for
from glow.catalog.grading import GradeSource
from glow.core.errors import ApplicationError, NotFound
from glow.core.registry import registry
from glow.core.selectors import artifact_queryset
from system.staff import staff_page


@dataclass
class CriterionRow:
    standard_id: str
    name: str
    group_name: str
    points: int
    ai_score: int | None
    human_score: int | None
    comment: str
    spread: float | None = None
    evidence: str = ""  # the judge's own words for its score


@dataclass
class ChatPage:
    chat: Chat
    messages: list[Message]
    criteria: list[CriterionRow] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        return sum(1 for message in self.messages if message.fidelity_flags)


def _transcripts(chats: list[Chat]) -> list[ChatPage]:
    """Each chat's current branch (retries replace earlier replies), from one query for all."""
    branches = progress.transcripts_of(chats)
    return [ChatPage(chat=chat, messages=branches[chat.pk]) for chat in chats]


def _criteria(page: ChatPage, structure: list[dict], chat_reviews: dict) -> list[CriterionRow]:
    """Each rubric criterion with the judge's score and staff's, side by side."""
    grade = page.chat.grade if page.chat.grade_id else None
    judge_grade = grade.based_on if grade and grade.source == GradeSource.REVIEWED else grade
    judged = {
        str(entry.get("standard_id")): entry
        for entry in (judge_grade.standard_scores if judge_grade else [])
    }
    rows = []
    for group in structure:
        for standard in group["standards"]:
            review = chat_reviews.get(standard["id"])
            entry = judged.get(standard["id"], {})
            rows.append(
                CriterionRow(
                    standard_id=standard["id"],
                    name=standard["name"],
                    group_name=group["name"],
                    points=standard["points"],
                    ai_score=entry.get("score"),
                    human_score=review.score if review else None,
                    comment=review.comment if review else "",
                    spread=entry.get("spread"),
                    evidence=str(entry.get("feedback") or ""),
                )
            )
    return rows


@staff_page
def transcript(request, pk, error: str = "", status: int = 200):
    attempt, _ = selectors.attempt_for_get(actor=request.actor, pk=pk)
    if attempt is None:
        # Out of scope and missing look alike; staff_page turns this into a 404.
        selectors.attempt_access(actor=request.actor, pk=pk)
    chats = selectors.chats_of(attempt)
    pages = _transcripts(chats)
    structure = selectors.structure_of(selectors.rubric_for(attempt))
    by_chat: dict = defaultdict(dict)
    for review in Review.objects.filter(attempt=attempt):
        by_chat[review.chat_id][str(review.standard_id)] = review
    comments = selectors.turn_comments_for_staff(attempt)
    for page in pages:
        page.criteria = _criteria(page, structure, by_chat[page.chat.pk])
        for message in page.messages:
            message.staff_comments = comments.get(message.pk, [])
    return render(
        request,
        "attempts/transcript.html",
        {
            "attempt": attempt,
            "chats": pages,
            "completion": selectors.completion_of(attempt),
            "gate": selectors.learner_gate(attempt, chats),
            "visibilities": CommentVisibility.choices,
            "error": error,
            "actor": request.actor,
        },
        status=status,
    )


def _back(pk, chat_id) -> str:
    return f"{reverse('staff-attempt', kwargs={'pk': pk})}#chat-{chat_id}"


@staff_page
def review(request, pk):
    """The transcript page's criterion form: each criterion with a score given is reviewed."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    chat_id = request.POST.get("chat_id", "")
    criteria = []
    for key, value in request.POST.items():
        if key.startswith("score-") and value.strip():
            standard_id = key.removeprefix("score-")
            try:
                score = int(value)
            except ValueError:
                return _refused(request, pk, f"{value!r} is not a whole number.")
            criteria.append(
                {
                    "standard_id": standard_id,
                    "score": score,
                    "comment": request.POST.get(f"comment-{standard_id}", ""),
                }
            )
    if not _is_uuid(chat_id):
        raise NotFound("No chat with that id.")
    try:
        reviews.attempt_review(
            actor=request.actor, attempt_id=pk, chat_id=chat_id, criteria=criteria
        )
    except NotFound:
        raise
    except ApplicationError as exc:
        return _refused(request, pk, str(exc.detail))
    return redirect(_back(pk, chat_id))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _refused(request, pk, error: str):
    """The transcript again with the reason at the top: nothing was saved."""
    return transcript.__wrapped__(request, pk, error=error, status=400)


@staff_page
def comment(request, pk):
    """A comment on one turn, for the learner or for staff only."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not _is_uuid(request.POST.get("message_id", "")):
        raise NotFound("No message with that id.")
    try:
        made = reviews.attempt_annotate(
            actor=request.actor,
            attempt_id=pk,
            message_id=request.POST.get("message_id", ""),
            body=request.POST.get("body", ""),
            visibility=request.POST.get("visibility", CommentVisibility.LEARNER),
        )
    except NotFound:
        raise
    except ApplicationError as exc:
        return _refused(request, pk, str(exc.detail))
    return redirect(_back(pk, made.chat_id))


@staff_page
def review_queue(request):
    rows = calibration.review_queue(actor=request.actor)
    rubrics = (
        artifact_queryset(actor=request.actor, family=registry.get("rubric"))
        .filter(archived=False)
        .order_by("title")
        .values_list("pk", "title")[:50]
    )
    return render(
        request,
        "staff/review_queue.html",
        {"rows": rows, "rubrics": list(rubrics), "actor": request.actor},
    )


@staff_page
def rubric_calibration(request, pk):
    report = calibration_for(
        actor=request.actor, rubric_id=pk, simulation_id=request.GET.get("simulation") or None
    )
    for criterion in report["criteria"]:
        criterion["matrix_rows"] = list(
            zip(criterion["labels"], criterion["confusion_matrix"], strict=True)
        )
    return render(
        request, "staff/rubric_calibration.html", {"report": report, "actor": request.actor}
    )
