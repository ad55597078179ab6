"""Celery tasks of attempts: they load by id and call services; running one twice is harmless."""

from __future__ import annotations

from celery import shared_task

from attempts import audio, grading, selectors
from glow.accounts.models import Profile


# A rerun adds one more grade per chat and moves the chats to it: nothing is lost or doubled.
@shared_task(
    name="attempts.regrade", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def attempt_regrade(attempt_id: str, actor_id: str) -> int:
    """Grade every ended chat of the attempt again with the AI grader; answers how many."""
    actor = Profile.objects.select_related("user").get(pk=actor_id)
    chat_ids = selectors.gradable_chat_ids(actor=actor, attempt_id=attempt_id)
    for chat_id in chat_ids:
        grading.attempt_grade(actor=actor, attempt_id=attempt_id, chat_id=chat_id)
    return len(chat_ids)


# A rerun finds the recording already made a message and does nothing.
@shared_task(
    name="attempts.audio_frame", acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def audio_frame(session_id: str, upload_id: str) -> str | None:
    """Hear one audio frame, answer it as text and as speech; answers the learner's message id."""
    message_id = audio.audio_frame_process(session_id=session_id, upload_id=upload_id)
    return str(message_id) if message_id else None
