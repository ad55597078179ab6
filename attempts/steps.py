"""The steps every attempt write shares: row locks in one order, owner and state checks, the streaming group."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F

from attempts import selectors as s
from attempts.models import (
    Attempt,
    AttemptStatus,
    Chat,
    ChatStatus,
)
from glow.core.errors import (
    ApplicationError,
    ConflictError,
    NotFound,
    PermissionDenied,
)
from system import ledger
from system.models import ClientKind, Group, Session

# Locking: every state change takes the attempt row first, then a chat row (the same order
# everywhere, so concurrent calls queue instead of deadlocking). A persona reply is generated
# outside any transaction, so `stop` can see and cancel its Run while it streams.


class ModelUnavailable(ApplicationError):
    """The model failed or timed out; what was saved before the call stays saved."""

    status_code = 502
    code = "model_error"


def _session(*, actor, session: Session | None) -> Session:
    return session or ledger.session_touch(actor=actor, client_kind=ClientKind.API, auth="service")


def _ensure_group(*, attempt: Attempt, actor, session: Session | None) -> Group:
    """The attempt's streaming group; rows made by bulk paths may not have one yet."""
    if attempt.group_id is not None:
        return attempt.group
    group = ledger.group_create(
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


def _lock_own_chat(*, actor, chat_id) -> tuple[Attempt, Chat]:
    """The learner's own attempt and chat, found by the chat's id, both locked (attempt first)."""
    attempt_id = (
        Chat.objects.filter(pk=chat_id, attempt__in=s.attempt_queryset(actor=actor))
        .values_list("attempt_id", flat=True)
        .first()
    )
    if attempt_id is None:
        raise NotFound("No chat with that id.", fields={"chat_id": ["Not found."]})
    attempt = _lock(actor=actor, attempt_id=attempt_id)
    _require_owner(attempt, actor)
    return attempt, _lock_chat(attempt=attempt, chat_id=chat_id)


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


def _messages_counted(*, attempt_id, chat_id, added: int, tip) -> None:
    """Count `added` new messages on the chat and its attempt; `tip` is the chat's branch tip now."""
    Chat.objects.filter(pk=chat_id).update(
        message_count=F("message_count") + added, last_message=tip
    )
    Attempt.objects.filter(pk=attempt_id).update(message_count=F("message_count") + added)


def _chat_end(*, attempt: Attempt, chat: Chat, now: datetime) -> None:
    chat.status, chat.ended_at = ChatStatus.ENDED, now
    chat.save(update_fields=["status", "ended_at"])
    attempt.ended_chat_count = F("ended_chat_count") + 1
    attempt.save(update_fields=["ended_chat_count", "updated_at"])
    attempt.refresh_from_db(fields=["ended_chat_count"])
