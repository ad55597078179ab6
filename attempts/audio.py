"""Spoken conversations in a chat: audio sessions, frames heard as messages, replies spoken back."""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from attempts import lifecycle, messaging, steps
from attempts import selectors as s
from attempts.models import (
    Attempt,
    AudioSession,
    AudioSessionStatus,
    Chat,
    ChatStatus,
    Message,
)
from glow.ai import ProviderError
from glow.core import media
from glow.core.errors import ApplicationError, ConflictError, StateError
from glow.core.models import Upload, UploadKind
from glow.core.tasks import enqueue
from system import events, gateway, ledger
from system.models import RunStatus, Session

STARTED_EVENT = "AudioSessionStartedEvent"
TRANSCRIPT_EVENT = "AudioTranscriptEvent"
REPLY_EVENT = "AudioReplyEvent"
ERROR_EVENT = "AudioErrorEvent"
STOPPED_EVENT = "AudioSessionStoppedEvent"


def media_url(upload_id) -> str:
    """Where a browser's <audio> element (or a client) fetches the bytes, with range requests."""
    return f"/api/v5/media/{upload_id}"


def _require_open(attempt: Attempt, chat: Chat) -> None:
    steps._require_in_progress(attempt)
    if chat.status != ChatStatus.ACTIVE:
        raise StateError(
            f"This chat is {chat.status}: only the active chat can be spoken to.",
            code="chat_not_active",
        )
    if s.timer_of(attempt).expired:
        raise StateError(
            "The time limit has run out: the attempt can only be ended or completed.",
            code="time_expired",
        )


def _active_session(chat: Chat, *, for_update: bool = False) -> AudioSession | None:
    sessions = AudioSession.objects.select_related("run", "group")
    if for_update:
        sessions = sessions.select_for_update(of=("self",))
    return sessions.filter(chat=chat, status=AudioSessionStatus.ACTIVE).first()


@transaction.atomic
def audio_session_start(*, actor, chat_id, session: Session | None = None) -> AudioSession:
    """Open the chat's audio session; with one already open, answer that one (retries are safe)."""
    attempt, chat = steps._lock_own_chat(actor=actor, chat_id=chat_id)
    _require_open(attempt, chat)
    existing = _active_session(chat)
    if existing is not None:
        return existing
    if attempt.group_id is None:
        attempt = lifecycle.attempt_group(actor=actor, attempt_id=attempt.pk, session=session)
    run = ledger.run_create(
        group=attempt.group,
        kind="audio_session",
        family="attempt",
        artifact_id=attempt.pk,
        params={"chat_id": str(chat.pk)},
    )
    ledger.run_mark_running(run=run)
    audio_session = AudioSession.objects.create(
        attempt=attempt,
        chat=chat,
        group=attempt.group,
        run=run,
        profile=actor,
        started_at=timezone.now(),
    )
    _announce(audio_session, STARTED_EVENT)
    ledger.timeline_record(
        actor=actor,
        session=session,
        event_type="attempt.audio_started",
        entity_id=attempt.pk,
        entity_name=attempt.title,
        extra_1=chat.pk,
    )
    return audio_session


def _frame_upload(*, actor, attempt: Attempt, upload_id) -> Upload:
    """A recording the learner may send into this attempt: theirs, or already the attempt's."""
    upload = media.upload_access(actor=actor, pk=upload_id)
    media.check_kind(upload, "audio")
    mine_unattached = not upload.family and upload.owner_id == actor.pk
    this_attempts = upload.family == "attempt" and upload.artifact_id == attempt.pk
    if not (mine_unattached or this_attempts):
        raise ApplicationError(
            "That recording belongs to something else: upload it with this attempt_id.",
            code="upload_elsewhere",
            fields={"upload_id": ["Not a recording of this attempt."]},
        )
    if Message.objects.filter(chat__attempt=attempt, audio_upload=upload).exists():
        raise ConflictError(
            "That recording was already sent.",
            code="frame_already_sent",
            fields={"upload_id": ["Already heard."]},
        )
    return upload


@transaction.atomic
def audio_frame_push(*, actor, chat_id, upload_id) -> AudioSession:
    """Queue a recording for the chat's open session; it is heard once this transaction commits."""
    attempt, chat = steps._lock_own_chat(actor=actor, chat_id=chat_id)
    upload = _frame_upload(actor=actor, attempt=attempt, upload_id=upload_id)
    audio_session = _active_session(chat, for_update=True)
    if audio_session is None:
        raise ConflictError(
            "This chat has no open audio session: start one with audio/start.",
            code="audio_session_not_active",
        )
    _require_open(attempt, chat)
    if not upload.family:
        # From now on the recording is part of the transcript: whoever reads the attempt hears it.
        Upload.objects.filter(pk=upload.pk).update(family="attempt", artifact_id=attempt.pk)
    AudioSession.objects.filter(pk=audio_session.pk).update(
        frames_received=F("frames_received") + 1
    )
    audio_session.frames_received += 1
    from attempts.tasks import audio_frame

    enqueue(audio_frame, str(audio_session.pk), str(upload.pk))
    return audio_session


@transaction.atomic
def audio_session_stop(*, actor, chat_id) -> AudioSession | None:
    """Close the chat's open session (frames queued before still play out); None if none is open."""
    _, chat = steps._lock_own_chat(actor=actor, chat_id=chat_id)
    audio_session = _active_session(chat, for_update=True)
    if audio_session is None:
        return None
    audio_session.status = AudioSessionStatus.STOPPED
    audio_session.stopped_at = timezone.now()
    audio_session.save(update_fields=["status", "stopped_at"])
    audio_session.refresh_from_db(fields=["frames_received"])
    _announce(audio_session, STOPPED_EVENT, frames_received=audio_session.frames_received)
    ledger.run_finish(
        run=audio_session.run,
        status=RunStatus.SUCCEEDED,
        output=f"{audio_session.frames_received} frame(s) received.",
    )
    return audio_session


# -- the queued work ------------------------------------------------------------------------------
#
# A frame is a stored audio Upload. It is transcribed (a Run), its text goes down the ordinary
# message path (the persona's reply streams as text), the reply is spoken (another Run) into an
# audio Upload, and each step is announced on the attempt's group through the session's Run.


def _speech_run(audio_session: AudioSession, kind: str, **params):
    return ledger.run_create(
        group=audio_session.group,
        kind=kind,
        family="attempt",
        artifact_id=audio_session.attempt_id,
        params={
            "chat_id": str(audio_session.chat_id),
            "audio_session_id": str(audio_session.pk),
            **params,
        },
    )


def _announce(audio_session: AudioSession, event_type: str, **payload) -> None:
    events.event_emit(
        run=audio_session.run,
        event_type=event_type,
        payload={
            "chat_id": str(audio_session.chat_id),
            "audio_session_id": str(audio_session.pk),
            **payload,
        },
    )


def _spoken_reply(audio_session: AudioSession, reply: Message) -> Upload | None:
    """Speak the persona's reply into an audio Upload of the attempt and link it to the message."""
    run = _speech_run(audio_session, "speech", message_id=str(reply.pk))
    try:
        spoken = gateway.speech_call(run=run, text=reply.content)
    except ProviderError as exc:
        _announce(
            audio_session,
            ERROR_EVENT,
            message_id=str(reply.pk),
            stage="speech",
            message=f"The reply could not be spoken: {exc}",
        )
        return None
    with transaction.atomic():
        upload = media.upload_save_bytes(
            organization_id=audio_session.attempt.organization_id,
            owner=audio_session.profile,
            data=spoken.audio,
            file_name=f"reply-{reply.pk}.wav",
            mime_type=spoken.mime_type,
            kind=UploadKind.GENERATED,
            family="attempt",
            artifact_id=audio_session.attempt_id,
        )
        Message.objects.filter(pk=reply.pk).update(audio_upload=upload)
        _announce(
            audio_session,
            REPLY_EVENT,
            message_id=str(reply.pk),
            user_message_id=str(reply.parent_id),
            upload_id=str(upload.pk),
            url=media_url(upload.pk),
            mime_type=upload.mime_type,
            duration_seconds=round(spoken.duration_seconds, 3),
            content=reply.content,
            speech_run_id=str(run.pk),
        )
    return upload


def audio_frame_process(*, session_id, upload_id) -> uuid.UUID | None:
    """Hear one frame and answer it; answers the learner's message id (None if nothing was said).

    Running it again for the same recording does nothing: the recording is already a message.
    Refusals (the chat ended meanwhile, the model failed) are announced as AudioErrorEvent.
    """
    audio_session = AudioSession.objects.select_related(
        "attempt", "group__session", "run", "profile__user"
    ).get(pk=session_id)
    upload = Upload.objects.get(pk=upload_id)
    if Message.objects.filter(chat_id=audio_session.chat_id, audio_upload=upload).exists():
        return None
    run = _speech_run(audio_session, "transcription", upload_id=str(upload.pk))
    try:
        with upload.file.open("rb") as handle:
            recording = handle.read()
        heard = gateway.speech_call(run=run, audio=recording, mime_type=upload.mime_type)
    except ProviderError as exc:
        _announce(
            audio_session,
            ERROR_EVENT,
            upload_id=str(upload.pk),
            stage="transcription",
            message=f"The recording could not be understood: {exc}",
        )
        return None
    text = heard.text.strip()
    _announce(
        audio_session,
        TRANSCRIPT_EVENT,
        upload_id=str(upload.pk),
        text=text,
        audio_seconds=round(heard.usage_seconds, 3),
        transcription_run_id=str(run.pk),
    )
    if not text:
        return None
    try:
        result = messaging.attempt_message(
            actor=audio_session.profile,
            attempt_id=audio_session.attempt_id,
            chat_id=audio_session.chat_id,
            message=text,
            session=audio_session.group.session,
        )
    except ApplicationError as exc:
        # A failed reply keeps the learner's message: it still gets its recording.
        kept = exc.extra.get("user_message_id")
        if kept:
            Message.objects.filter(pk=kept).update(audio_upload=upload)
        _announce(
            audio_session,
            ERROR_EVENT,
            upload_id=str(upload.pk),
            stage="reply",
            code=exc.code,
            message=exc.detail,
        )
        return kept
    Message.objects.filter(pk=result.user_message.pk).update(audio_upload=upload)
    reply = result.assistant_message
    if reply is not None and reply.content.strip():
        _spoken_reply(audio_session, reply)
    return result.user_message.pk
