"""Messages in an attempt's chats: the learner's message, the persona's streamed reply with its hints, stop."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction

from attempts import prompts
from attempts import selectors as s
from attempts.models import (
    Attempt,
    Chat,
    ChatStatus,
    Message,
    Role,
)
from attempts.steps import (
    ModelUnavailable,
    _ensure_group,
    _lock,
    _lock_chat,
    _messages_counted,
    _require_in_progress,
    _require_owner,
)
from glow.ai import ProviderError, fidelity
from glow.core.errors import (
    ApplicationError,
    NotFound,
    StateError,
)
from system import events, gateway, ledger
from system.models import Run, RunStatus, Session

DELTA_EVENT = "ChatDeltaEvent"
MESSAGE_EVENT = "ChatMessageEvent"


ERROR_EVENT = "ChatErrorEvent"


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
        run = ledger.run_create(
            group=group,
            kind="persona_reply",
            family="attempt",
            mcp=mcp,
            artifact_id=attempt.pk,
            params={"chat_id": str(chat.pk), "user_message_id": str(user.pk)},
        )
    _messages_counted(attempt_id=attempt.pk, chat_id=chat.pk, added=added, tip=tip)
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
        result = gateway.model_call(run=run, request=request, stream=True, on_delta=on_delta)
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
    run = ledger.run_create(
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
        result = gateway.model_call(run=run, request=request)
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
    _messages_counted(attempt_id=accepted.attempt.pk, chat_id=chat.pk, added=1, tip=tip)
    events.event_emit(run=accepted.run, event_type=MESSAGE_EVENT, payload=_reply_payload(assistant))
    return assistant


def _reply_payload(reply: Message) -> dict:
    """The ChatMessageEvent a client shows a finished reply from, streamed or given."""
    return {
        "chat_id": str(reply.chat_id),
        "message_id": str(reply.pk),
        "user_message_id": str(reply.parent_id),
        "content": reply.content,
        "stopped": reply.stopped,
        "hints": reply.hints,
    }


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
            payload=_reply_payload(accepted.assistant),
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
    stopped = sum(ledger.run_cancel(run=run) for run in runs) if attempt.group_id else 0
    return StopResult(
        chat_id=chat.pk if chat else None,
        success=bool(stopped),
        message="Stopped the reply in progress." if stopped else "Nothing was being generated.",
    )
