"""Media: storing uploads (with size and type limits), deciding who may read them, streaming ranges."""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
from collections.abc import Iterator
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import FileResponse, HttpResponse, StreamingHttpResponse

from glow.core.errors import ApplicationError, NotFound
from glow.core.models import Upload, UploadKind

CHUNK = 64 * 1024

# What clients may upload; each type's leading bytes are checked so a renamed file is refused.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "audio/wav": (b"RIFF",),
    "audio/mpeg": (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"),
    "audio/ogg": (b"OggS",),
    "audio/webm": (b"\x1a\x45\xdf\xa3",),
    "video/webm": (b"\x1a\x45\xdf\xa3",),
    "video/mp4": (),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF",),
    "text/plain": (),
    "text/markdown": (),
    "application/json": (),
}
ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
}
KIND_PREFIX = {"image": "image/", "audio": "audio/", "video": "video/", "text": "text/"}


def max_upload_bytes() -> int:
    return settings.GLOW_UPLOAD_MAX_BYTES


def _mime_of(uploaded, declared: str | None) -> str:
    mime = (declared or getattr(uploaded, "content_type", "") or "").split(";")[0].strip().lower()
    if not mime or mime == "application/octet-stream":
        mime = mimetypes.guess_type(getattr(uploaded, "name", "") or "")[0] or ""
    return ALIASES.get(mime, mime)


def is_json(data: bytes) -> bool:
    """A JSON text (UTF-8, or the UTF-16/32 RFC 8259 lets a reader detect)."""
    try:
        json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return False
    return True


def _checked_head(stream: IO[bytes], mime: str) -> None:
    head = stream.read(16)
    stream.seek(0)
    signatures = SIGNATURES[mime]
    # JSON has no leading bytes: the whole file must parse, as whoever reads it back will parse it.
    if mime == "application/json":
        matches = is_json(stream.read())
        stream.seek(0)
    else:
        matches = not signatures or any(head.startswith(sig) for sig in signatures)
    if not matches:
        raise ApplicationError(
            f"The file's contents are not {mime}.",
            code="unsupported_media_type",
            fields={"file": ["Contents do not match the type."]},
        )
    if mime == "audio/wav" and head[8:12] != b"WAVE":
        raise ApplicationError(
            "The file is not a WAV file.",
            code="unsupported_media_type",
            fields={"file": ["Contents do not match the type."]},
        )


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


@transaction.atomic
def upload_store(
    *,
    actor,
    uploaded,
    mime_type: str | None = None,
    family: str = "",
    artifact_id=None,
    kind: str = UploadKind.UPLOAD,
    allowed_prefix: str | None = None,
) -> Upload:
    """Validate and store a client's file; nothing is stored when it is refused."""
    if uploaded is None:
        raise ApplicationError(
            "Send the file as multipart/form-data in a field named file.",
            fields={"file": ["No file was submitted."]},
        )
    limit = max_upload_bytes()
    if uploaded.size > limit:
        raise ApplicationError(
            f"The file is {uploaded.size} bytes; the limit is {limit}.",
            code="file_too_large",
            status_code=413,
            fields={"file": ["Too large."]},
        )
    if uploaded.size == 0:
        raise ApplicationError(
            "The file is empty.", fields={"file": ["The submitted file is empty."]}
        )
    mime = _mime_of(uploaded, mime_type)
    if mime not in SIGNATURES or (allowed_prefix and not mime.startswith(allowed_prefix)):
        allowed = sorted(
            m for m in SIGNATURES if not allowed_prefix or m.startswith(allowed_prefix)
        )
        raise ApplicationError(
            f"Files of type {mime or 'unknown'} are not accepted; send one of {', '.join(allowed)}.",
            code="unsupported_media_type",
            fields={"file": ["Unsupported type."]},
        )
    _checked_head(uploaded, mime)
    checksum = _sha256(uploaded)
    name = os.path.basename(getattr(uploaded, "name", "") or "upload")[:200] or "upload"
    upload = Upload(
        organization_id=actor.organization_id,
        owner=actor,
        kind=kind,
        family=family,
        artifact_id=artifact_id,
        file_name=name,
        mime_type=mime,
        size=uploaded.size,
        checksum=checksum,
    )
    upload.file.save(name, File(uploaded), save=False)
    upload.save()
    return upload


def upload_save_bytes(
    *,
    organization_id,
    owner,
    data: bytes,
    file_name: str,
    mime_type: str,
    kind: str = UploadKind.GENERATED,
    family: str = "",
    artifact_id=None,
    row_count: int | None = None,
) -> Upload:
    """Store bytes the server made (generated media, exports built in memory)."""
    upload = Upload(
        organization_id=organization_id,
        owner=owner,
        kind=kind,
        family=family,
        artifact_id=artifact_id,
        file_name=file_name,
        mime_type=mime_type,
        size=len(data),
        checksum=hashlib.sha256(data).hexdigest(),
        row_count=row_count,
    )
    upload.file.save(file_name, ContentFile(data), save=False)
    upload.save()
    return upload


def upload_save_file(
    *,
    organization_id,
    owner,
    path: str,
    file_name: str,
    mime_type: str,
    kind: str = UploadKind.EXPORT,
    family: str = "",
    artifact_id=None,
    row_count: int | None = None,
) -> Upload:
    """Store a file built on disk (a streamed ZIP), copying it in chunks: memory stays flat."""
    with open(path, "rb") as handle:
        checksum = _sha256(handle)
        upload = Upload(
            organization_id=organization_id,
            owner=owner,
            kind=kind,
            family=family,
            artifact_id=artifact_id,
            file_name=file_name,
            mime_type=mime_type,
            size=os.path.getsize(path),
            checksum=checksum,
            row_count=row_count,
        )
        upload.file.save(file_name, File(handle, name=file_name), save=False)
    upload.save()
    return upload


def upload_access(*, actor, pk) -> Upload:
    """An upload the actor may read: the row it belongs to must be visible to them; same 404 otherwise."""
    from glow.core.registry import registry
    from glow.core.selectors import artifact_queryset

    upload = (
        Upload.objects.filter(pk=pk, organization_id=actor.organization_id).first() if pk else None
    )
    if upload is None:
        raise NotFound("No file with that id.")
    if upload.family and upload.artifact_id:
        family = registry.find(upload.family)
        if (
            family is None
            or family.model is None
            or not artifact_queryset(actor=actor, family=family)
            .filter(pk=upload.artifact_id)
            .exists()
        ):
            raise NotFound("No file with that id.")
        return upload
    if upload.owner_id != actor.pk and not actor.is_admin:
        raise NotFound("No file with that id.")
    return upload


RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _file_chunks(handle, start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def stream_upload(
    upload: Upload, *, range_header: str | None = None, inline: bool = False
) -> HttpResponse:
    """The bytes with type and length; a single `Range: bytes=a-b` answers 206 (audio and video seek)."""
    size = upload.size
    disposition = "inline" if inline else "attachment"
    if range_header:
        match = RANGE.match(range_header.strip())
        if match and (match.group(1) or match.group(2)):
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last) if last else size - 1, size - 1)
            else:
                start, end = max(size - int(last), 0), size - 1
            if start > end or start >= size:
                response = HttpResponse(status=416)
                response["Content-Range"] = f"bytes */{size}"
                return response
            handle = upload.file.open("rb")
            response = StreamingHttpResponse(
                _file_chunks(handle, start, end - start + 1),
                status=206,
                content_type=upload.mime_type,
            )
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
            response["Content-Length"] = str(end - start + 1)
            response["Accept-Ranges"] = "bytes"
            response["Content-Disposition"] = f'{disposition}; filename="{upload.file_name}"'
            return response
    response = FileResponse(
        upload.file.open("rb"),
        content_type=upload.mime_type,
        as_attachment=not inline,
        filename=upload.file_name,
    )
    response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    return response


def check_kind(upload: Upload, kind: str | None) -> None:
    prefix = KIND_PREFIX.get(kind or "")
    if (
        prefix
        and not upload.mime_type.startswith(prefix)
        and not (kind == "text" and upload.mime_type in ("application/json",))
    ):
        raise ApplicationError(
            f"That file is {upload.mime_type}, not {kind}.",
            code="wrong_media_kind",
            fields={"upload_id": [f"Not a {kind} file."]},
        )
