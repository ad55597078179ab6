"""The attempt export service: write the ZIP, store it as an Upload, audit it (FERPA)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from attempts.exports import write_export
from glow.core import media
from glow.core.models import Upload, UploadKind
from system import ledger
from system.models import Session


@dataclass
class ExportResult:
    upload: Upload
    row_count: int
    message_count: int


def attempt_export(
    *, actor, attempts: QuerySet, view: str, single: bool = False, session: Session | None = None
) -> ExportResult:
    """Write the ZIP to a temporary file (memory stays flat), store it, audit it (FERPA).

    A single attempt's export is readable by whoever may read the attempt; a multi-attempt
    export by its owner and the organization's admins.
    """
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    handle, path = tempfile.mkstemp(suffix=".zip")
    os.close(handle)
    try:
        counts = write_export(path=path, actor=actor, attempts=attempts, view=view)
        first = attempts.values_list("pk", flat=True).first() if single else None
        file_name = (
            f"attempt-{str(first)[:8]}-{stamp}.zip" if single else f"attempts-{view}-{stamp}.zip"
        )
        with transaction.atomic():
            upload = media.upload_save_file(
                organization_id=actor.organization_id,
                owner=actor,
                path=path,
                file_name=file_name,
                mime_type="application/zip",
                kind=UploadKind.EXPORT,
                family="attempt" if single else "",
                artifact_id=first,
                row_count=counts.attempts,
            )
            ledger.timeline_record(
                actor=actor,
                session=session,
                event_type="attempt.exported",
                entity_id=upload.pk,
                entity_name=file_name,
                extra_1=view,
                extra_2=f"{counts.attempts} attempts, {counts.messages} messages",
            )
    finally:
        os.unlink(path)
    return ExportResult(upload=upload, row_count=counts.attempts, message_count=counts.messages)
