"""The attempt export ZIP: transcripts (JSONL, Markdown) and their audio, grades, rubric scores."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from django.db.models import QuerySet
from django.utils import timezone

from attempts import selectors
from attempts.models import Chat, Message, Role
from glow.catalog.models import Standard
from glow.core.errors import ApplicationError
from glow.core.exports import csv_member, export_store, json_member
from glow.core.models import Upload
from system.ledger import timeline_record

# A synchronous export beyond this many attempts would hold a web worker for minutes.
MAX_EXPORT_ATTEMPTS = 10_000
# Streamed: every file is written while its rows are read with .iterator(), straight into the
# ZIP on disk, so memory stays flat whatever the size; the number of queries is fixed.
CHUNK = 2000  # rows per fetch from a server-side cursor
CHUNK_BYTES = 256 * 1024
SPOOL_BYTES = 1024 * 1024  # a Markdown transcript past this goes to a temporary file

ATTEMPT_COLUMNS = [
    "attempt_id",
    "title",
    "learner_id",
    "learner_name",
    "simulation_id",
    "simulation_title",
    "department",
    "cohort",
    "practice",
    "infinite_mode",
    "status",
    "started_at",
    "completed_at",
    "score_percent",
    "passed",
    "time_taken_seconds",
    "chat_count",
    "message_count",
    "archived",
]
GRADE_COLUMNS = [
    "attempt_id",
    "chat_id",
    "position",
    "scenario",
    "persona",
    "chat_status",
    "started_at",
    "ended_at",
    "grade_id",
    "source",
    "score_percent",
    "points",
    "total_points",
    "passed",
    "time_taken_seconds",
    "feedback",
    "strengths",
    "improvements",
]
RUBRIC_COLUMNS = [
    "attempt_id",
    "chat_id",
    "position",
    "grade_id",
    "group_id",
    "group_name",
    "standard_id",
    "standard_name",
    "score",
    "points",
    "judge_score",
    "reviewed_by_staff",
]


@dataclass
class Counts:
    attempts: int = 0
    chats: int = 0
    rubric_scores: int = 0
    messages: int = 0
    audio_files: int = 0


def _iso(value) -> str:
    return value.isoformat() if value else ""


def _blank(value) -> object:
    return "" if value is None else value


def _joined(entries: list) -> str:
    return " | ".join(str(entry.get("content", "")) for entry in entries or [] if entry)


def _attempt_rows(attempts: QuerySet) -> Iterator[list]:
    rows = attempts.select_related("simulation", "profile__user", "department", "cohort")
    for attempt in rows.order_by("created_at", "id").iterator(chunk_size=CHUNK):
        yield [
            attempt.pk,
            attempt.title,
            attempt.profile_id,
            attempt.profile.name,
            attempt.simulation_id,
            attempt.simulation.title,
            attempt.department.name if attempt.department_id else "",
            attempt.cohort.name if attempt.cohort_id else "",
            attempt.practice,
            attempt.infinite_mode,
            attempt.status,
            _iso(attempt.started_at),
            _iso(attempt.completed_at),
            _blank(attempt.score),
            _blank(attempt.passed),
            _blank(attempt.time_taken),
            attempt.chat_count,
            attempt.message_count,
            attempt.archived,
        ]


def _chats(attempts: QuerySet) -> QuerySet:
    return (
        Chat.objects.filter(attempt__in=attempts.values("pk"))
        .select_related("scenario__persona", "grade")
        .order_by("attempt__created_at", "attempt_id", "position")
    )


def _grade_rows(attempts: QuerySet) -> Iterator[list]:
    for chat in _chats(attempts).iterator(chunk_size=CHUNK):
        grade = chat.grade
        yield [
            chat.attempt_id,
            chat.pk,
            chat.position + 1,
            chat.scenario.title,
            chat.scenario.persona.title,
            chat.status,
            _iso(chat.started_at),
            _iso(chat.ended_at),
            grade.pk if grade else "",
            grade.source if grade else "",
            grade.score if grade else "",
            grade.points if grade else "",
            grade.total_points if grade else "",
            grade.passed if grade else "",
            _blank(grade.time_taken) if grade else "",
            _joined(grade.feedbacks) if grade else "",
            _joined(grade.strengths) if grade else "",
            _joined(grade.improvements) if grade else "",
        ]


def _rubric_rows(attempts: QuerySet, names: dict) -> Iterator[list]:
    graded = _chats(attempts).filter(grade__isnull=False)
    for chat in graded.iterator(chunk_size=CHUNK):
        for entry in chat.grade.standard_scores or []:
            group_name, standard_name = names.get(str(entry.get("standard_id")), ("", ""))
            yield [
                chat.attempt_id,
                chat.pk,
                chat.position + 1,
                chat.grade_id,
                entry.get("group_id", ""),
                group_name,
                entry.get("standard_id", ""),
                standard_name,
                entry.get("score", ""),
                entry.get("points", ""),
                # A reviewed criterion keeps the judge's score beside staff's.
                entry.get("ai_score", "") if entry.get("reviewed") else entry.get("score", ""),
                "yes" if entry.get("reviewed") else "no",
            ]


def _standard_names(attempts: QuerySet) -> dict[str, tuple[str, str]]:
    rubric_ids = attempts.values("simulation__rubric_id")
    return {
        str(pk): (group, name)
        for pk, group, name in Standard.objects.filter(group__rubric_id__in=rubric_ids).values_list(
            "pk", "group__name", "name"
        )
    }


MESSAGE_FIELDS = (
    "chat_id",
    "pk",
    "seq",
    "role",
    "content",
    "parent_id",
    "stopped",
    "hints",
    "contents",
    "created_at",
    "audio_upload_id",
    "audio_upload__mime_type",
)
AUDIO_EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/webm": ".webm",
}


def audio_path(upload_id, mime_type: str) -> str:
    """Where a message's recording sits in the ZIP; the transcripts name it."""
    return f"audio/{upload_id}{AUDIO_EXTENSIONS.get(mime_type, '')}"


def _conversation(attempts: QuerySet) -> Iterator[tuple[Chat, tuple]]:
    """(chat, message row) in transcript order, from two cursors read side by side.

    Messages come as plain tuples (no model instances, no joins per row); their chats come
    from a second cursor in the same order, so neither side is ever held in memory.
    """
    chats = _chats(attempts).select_related("attempt").iterator(chunk_size=CHUNK)
    rows = (
        Message.objects.filter(chat__attempt__in=attempts.values("pk"))
        .order_by("chat__attempt__created_at", "chat__attempt_id", "chat__position", "seq")
        .values_list(*MESSAGE_FIELDS)
        .iterator(chunk_size=CHUNK)
    )
    chat = next(chats, None)
    for row in rows:
        while chat is not None and chat.pk != row[0]:
            chat = next(chats, None)
        yield chat, row


class _Transcripts:
    """Per attempt: transcripts/<id>.jsonl written into the ZIP as the rows stream by, and
    transcripts/<id>.md spooled beside it (a ZIP takes one open entry at a time), then copied in."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.attempt_id = None
        self.chat_id = None
        self.jsonl = None
        self.markdown = None

    def write(self, chat: Chat, row: tuple) -> None:
        _, pk, seq, role, content, parent_id, stopped, hints, contents, created_at = row[:10]
        audio_id, audio_type = row[10:12]
        audio_file = audio_path(audio_id, audio_type) if audio_id else None
        if chat.attempt_id != self.attempt_id:
            self.close()
            self._open(chat.attempt)
        line = {
            "attempt_id": str(chat.attempt_id),
            "chat_id": str(chat.pk),
            "chat_position": chat.position + 1,
            "scenario": chat.scenario.title,
            "persona": chat.scenario.persona.title,
            "message_id": str(pk),
            "seq": seq,
            "role": role,
            "content": content,
            "parent_id": str(parent_id) if parent_id else None,
            "stopped": stopped,
            "hints": hints,
            "contents": contents,
            "created_at": _iso(created_at),
            "audio_upload_id": str(audio_id) if audio_id else None,
            "audio_file": audio_file,
        }
        self.jsonl.write(json.dumps(line, ensure_ascii=False) + "\n")
        if chat.pk != self.chat_id:
            self.chat_id = chat.pk
            self.markdown.write(
                f"\n## Chat {chat.position + 1}: {chat.scenario.title} "
                f"(with {chat.scenario.persona.title})\n\n"
            )
        speaker = "Learner" if role == Role.USER else chat.scenario.persona.title
        mark = " _(stopped)_" if stopped else ""
        if audio_file:
            mark += f" [recording](../{audio_file})"
        self.markdown.write(f"**{speaker}** ({created_at:%H:%M:%S}): {content}{mark}\n\n")

    def _open(self, attempt) -> None:
        self.attempt_id, self.chat_id = attempt.pk, None
        raw = self.archive.open(f"transcripts/{attempt.pk}.jsonl", "w")
        self.jsonl = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        # Closed in close(), when the attempt's rows end: it outlives this call.
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.markdown = io.TextIOWrapper(spool, encoding="utf-8", newline="\n")
        score = "" if attempt.score is None else f" · Score: {attempt.score}%"
        self.markdown.write(
            f"# {attempt.title}\n\nStarted {_iso(attempt.started_at)} · "
            f"Status: {attempt.status}{score}\n"
        )

    def close(self) -> None:
        if self.jsonl is None:
            return
        self.jsonl.close()
        self.markdown.flush()
        spool = self.markdown.detach()
        spool.seek(0)
        with self.archive.open(f"transcripts/{self.attempt_id}.md", "w") as out:
            shutil.copyfileobj(spool, out, CHUNK_BYTES)
        spool.close()
        self.jsonl = self.markdown = None


def _write_transcripts(archive: zipfile.ZipFile, attempts: QuerySet) -> int:
    transcripts, count = _Transcripts(archive), 0
    try:
        for chat, row in _conversation(attempts):
            transcripts.write(chat, row)
            count += 1
    finally:
        transcripts.close()
    return count


def _write_audio(archive: zipfile.ZipFile, attempts: QuerySet) -> tuple[int, list[str]]:
    """Every recording the transcripts name, copied in chunks; answers (copied, missing ids)."""
    referenced = Message.objects.filter(
        chat__attempt__in=attempts.values("pk"), audio_upload__isnull=False
    ).values("audio_upload_id")
    uploads = Upload.objects.filter(pk__in=referenced).only("pk", "file", "mime_type")
    copied, missing = 0, []
    for upload in uploads.order_by("pk").iterator(chunk_size=CHUNK):
        try:
            source = upload.file.open("rb")
        except FileNotFoundError:
            # A file lost from storage must not cost the whole export: the manifest names it.
            missing.append(str(upload.pk))
            continue
        with source, archive.open(audio_path(upload.pk, upload.mime_type), "w") as out:
            shutil.copyfileobj(source, out, CHUNK_BYTES)
        copied += 1
    return copied, missing


def write_members(archive: zipfile.ZipFile, *, actor, attempts: QuerySet, view: str) -> Counts:
    """Write every member of the attempt export into the ZIP; answer what it holds."""
    counts = Counts()
    counts.attempts = csv_member(archive, "attempts.csv", ATTEMPT_COLUMNS, _attempt_rows(attempts))
    counts.chats = csv_member(archive, "grades.csv", GRADE_COLUMNS, _grade_rows(attempts))
    counts.rubric_scores = csv_member(
        archive,
        "rubric_scores.csv",
        RUBRIC_COLUMNS,
        _rubric_rows(attempts, _standard_names(attempts)),
    )
    counts.messages = _write_transcripts(archive, attempts)
    counts.audio_files, missing_audio = _write_audio(archive, attempts)
    manifest = {
        "format": "glow-attempt-export",
        "version": 1,
        "view": view,
        "exported_at": _iso(timezone.now()),
        "exported_by": actor.name,
        "organization_id": str(actor.organization_id),
        "counts": asdict(counts),
        "files": {
            "attempts.csv": "One row per attempt.",
            "grades.csv": "One row per chat, with its current grade.",
            "rubric_scores.csv": "One row per rubric standard of each graded chat.",
            "transcripts/<attempt_id>.jsonl": "Every message, one JSON object a line.",
            "transcripts/<attempt_id>.md": "The same conversations, readable.",
            "audio/<upload_id>.<ext>": "Spoken messages' recordings and spoken replies, "
            "named by the transcripts' audio_file.",
        },
        "missing_audio_upload_ids": missing_audio,
    }
    json_member(archive, "manifest.json", manifest)
    return counts


@dataclass
class ExportResult:
    upload: Upload
    row_count: int
    message_count: int


def attempt_export(
    *, actor, attempts: QuerySet, view: str, single: bool = False, session=None
) -> ExportResult:
    """Write the ZIP to a temporary file (memory stays flat), store it, audit it (FERPA), through
    the one export pipeline (glow.core.exports).

    A single attempt's export is readable by whoever may read the attempt; a multi-attempt
    export by its owner and the organization's admins.
    """
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    first = attempts.values_list("pk", flat=True).first() if single else None
    file_name = (
        f"attempt-{str(first)[:8]}-{stamp}.zip" if single else f"attempts-{view}-{stamp}.zip"
    )
    counts = Counts()

    def write(archive) -> int:
        nonlocal counts
        counts = write_members(archive, actor=actor, attempts=attempts, view=view)
        return counts.attempts

    upload = export_store(
        actor=actor,
        file_name=file_name,
        write=write,
        family="attempt" if single else "",
        artifact_id=first,
        audit=lambda upload: timeline_record(
            actor=actor,
            session=session,
            event_type="attempt.exported",
            entity_id=upload.pk,
            entity_name=file_name,
            extra_1=view,
            extra_2=f"{counts.attempts} attempts, {counts.messages} messages",
        ),
    )
    return ExportResult(upload=upload, row_count=counts.attempts, message_count=counts.messages)


def attempts_export(*, actor, params: dict, session=None) -> ExportResult:
    """The export op: which attempts (one attempt_id, a learner's record, or the dashboard's
    filtered slice, bounded by MAX_EXPORT_ATTEMPTS), then `attempt_export`."""
    attempt_id = params.get("attempt_id")
    view = params.get("view") or ("attempt" if attempt_id else "dashboard")
    if view == "attempt" and attempt_id is None:
        raise ApplicationError(
            "Name the attempt to export.", fields={"attempt_id": ["Required for view attempt."]}
        )
    attempts = selectors.export_selection(
        actor=actor, view=view, params=params, attempt_id=attempt_id
    )
    if attempts.count() > MAX_EXPORT_ATTEMPTS:
        raise ApplicationError(
            f"That is more than {MAX_EXPORT_ATTEMPTS} attempts: narrow the filters.",
            code="export_too_large",
        )
    return attempt_export(
        actor=actor, attempts=attempts, view=view, single=attempt_id is not None, session=session
    )
