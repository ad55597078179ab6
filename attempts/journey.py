"""The learner's moves that span several of the seed's ops, composed from those same services."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from attempts import lifecycle, steps
from attempts import selectors as s
from attempts.models import Attempt, ChatStatus
from glow.core.errors import StateError
from glow.core.models import Draft
from system.models import Session


@dataclass
class AdvanceResult:
    attempt: Attempt
    completed: bool


def attempt_advance(
    *, actor, attempt_id, finish: bool, session: Session | None = None
) -> AdvanceResult:
    """Next scenario (attempt/end graded, then attempt/next) or Finish (end, then complete).

    Each step is its own op with its own transaction, as over the API: if grading fails the
    chat stays ended and the error says so; sending the same move again carries on from there.
    """
    attempt = s.attempt_access(actor=actor, pk=attempt_id)
    chat = steps._current_chat(attempt)
    if chat.status == ChatStatus.ACTIVE or (chat.status == ChatStatus.ENDED and not chat.grade_id):
        lifecycle.attempt_end(
            actor=actor, attempt_id=attempt.pk, chat_id=chat.pk, grade=True, session=session
        )
    attempt.refresh_from_db()
    has_next = attempt.infinite_mode or attempt.ended_chat_count < attempt.chat_count
    if finish or not has_next:
        lifecycle.attempt_complete(actor=actor, attempt_id=attempt.pk, session=session)
        return AdvanceResult(attempt=attempt, completed=True)
    try:
        lifecycle.attempt_next(actor=actor, attempt_id=attempt.pk)
    except StateError as exc:
        if exc.code != "no_next_scenario":
            raise
        lifecycle.attempt_complete(actor=actor, attempt_id=attempt.pk, session=session)
        return AdvanceResult(attempt=attempt, completed=True)
    return AdvanceResult(attempt=attempt, completed=False)


@transaction.atomic
def attempt_draft_clear(*, actor, attempt: Attempt) -> int:
    """A sent message is no longer a draft: drop the learner's unsent text for this attempt."""
    deleted, _ = Draft.objects.filter(
        author=actor, family="attempt", artifact_id=attempt.pk
    ).delete()
    return deleted
