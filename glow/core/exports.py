"""The one export pipeline: a ZIP streamed to disk, its CSV/JSONL members, stored and audited, and
the export op's answer. Attempts, tests and sessions say only what goes in."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from rest_framework import serializers

from glow.core.media import upload_save_file
from glow.core.models import Upload, UploadKind

ZIP_MIME = "application/zip"


def iso(value) -> str:
    """A date or time as export columns write it: ISO 8601, blank when unset."""
    return value.isoformat() if value else ""


def csv_member(archive: zipfile.ZipFile, name: str, header: list[str], rows: Iterable) -> int:
    """Write one CSV file into the ZIP as the rows stream by; answers how many rows."""
    count = 0
    with archive.open(name, "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def jsonl_member(archive: zipfile.ZipFile, name: str, objects: Iterable[Any]) -> int:
    """Write one JSON object a line into the ZIP as they stream by; answers how many."""
    count = 0
    with archive.open(name, "w") as raw:
        for item in objects:
            raw.write((json.dumps(item, default=str) + "\n").encode())
            count += 1
    return count


def json_member(archive: zipfile.ZipFile, name: str, value: Any) -> None:
    archive.writestr(name, json.dumps(value, indent=2, default=str))


def export_store(
    *,
    actor,
    file_name: str,
    write: Callable[[zipfile.ZipFile], int],
    audit: Callable[[Upload], None],
    family: str = "",
    artifact_id=None,
) -> Upload:
    """Build the ZIP on disk with `write` (it answers the row count; memory stays flat), store
    it as the actor's export Upload (read back with file/download), and write the audit row in
    the same transaction as the Upload, so neither exists without the other."""
    handle, path = tempfile.mkstemp(suffix=".zip")
    try:
        with (
            os.fdopen(handle, "wb") as raw,
            zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            row_count = write(archive)
        with transaction.atomic():
            upload = upload_save_file(
                organization_id=actor.organization_id,
                owner=actor,
                path=path,
                file_name=file_name,
                mime_type=ZIP_MIME,
                kind=UploadKind.EXPORT,
                family=family,
                artifact_id=artifact_id,
                row_count=row_count,
            )
            audit(upload)
    finally:
        os.unlink(path)
    return upload


class ExportResponse(serializers.Serializer):
    file_id = serializers.UUIDField()
    upload_id = serializers.UUIDField(help_text="Same as file_id.")
    file_name = serializers.CharField()
    row_count = serializers.IntegerField()


def export_body(upload: Upload, **extra) -> dict:
    """The export op's answer (ExportResponse): the stored file and its row count."""
    return {
        "file_id": upload.pk,
        "upload_id": upload.pk,
        "file_name": upload.file_name,
        "row_count": upload.row_count or 0,
        **extra,
    }
