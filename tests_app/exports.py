"""The test export: a ZIP of a test's invocations (CSV and JSONL), stored and audited."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from typing import Any

from django.db import transaction
from django.utils import timezone

from glow.core import media
from glow.core.errors import ApplicationError, NotFound
from glow.core.models import Upload, UploadKind
from system.ledger import timeline_record
from tests_app.models import (
    Invocation,
)
from tests_app.selectors import (
    benchmark_grid,
    export_invocations,
    test_access,
    tool_call_body,
)

EXPORT_VIEWS = ("test", "invocations")


INVOCATION_COLUMNS = [
    "invocation_id",
    "position",
    "model",
    "scenario",
    "agent",
    "status",
    "score",
    "total_points",
    "tool_calls",
    "messages",
    "input_tokens",
    "output_tokens",
    "cost",
    "started_at",
    "finished_at",
    "error",
]


def _iso(value) -> str:
    return value.isoformat() if value else ""


def _invocation_row(invocation: Invocation) -> list:
    grade = getattr(invocation, "grade", None)
    return [
        invocation.pk,
        invocation.position,
        invocation.model.title,
        invocation.scenario.title,
        invocation.agent.title,
        invocation.status,
        "" if grade is None else grade.score,
        "" if grade is None else grade.total_points,
        len(invocation.tool_calls.all()),
        len(invocation.transcript or []),
        invocation.input_tokens,
        invocation.output_tokens,
        invocation.cost,
        _iso(invocation.started_at),
        _iso(invocation.finished_at),
        invocation.error,
    ]


def _invocation_json(invocation: Invocation) -> dict:
    grade = getattr(invocation, "grade", None)
    return {
        "invocation_id": str(invocation.pk),
        "model": invocation.model.title,
        "scenario": invocation.scenario.title,
        "agent": invocation.agent.title,
        "status": invocation.status,
        "transcript": invocation.transcript,
        "tool_calls": [tool_call_body(call) for call in invocation.tool_calls.all()],
        "grade": None
        if grade is None
        else {
            "grade_id": str(grade.pk),
            "score": grade.score,
            "total_points": grade.total_points,
            "groups": grade.groups,
            "feedback": grade.feedback,
            "source": grade.source,
        },
    }


def test_export(
    *, actor, session=None, test_id: Any, view: str = "test", invocation_id: Any = None
) -> Upload:
    """A ZIP built on disk and stored through core media; `test/file/download` streams it back."""
    test = test_access(actor=actor, pk=test_id)
    if view not in EXPORT_VIEWS:
        raise ApplicationError(
            f"view must be one of {', '.join(EXPORT_VIEWS)}.",
            fields={"view": [f"One of {', '.join(EXPORT_VIEWS)}."]},
        )
    if (
        invocation_id is not None
        and not Invocation.objects.filter(test=test, pk=invocation_id).exists()
    ):
        raise NotFound("No invocation with that id in this test.")
    file_name = f"glow-test-{view}-{str(test.pk)[:8]}.zip"
    rows = 0
    handle, path = tempfile.mkstemp(suffix=".zip")
    try:
        with (
            os.fdopen(handle, "wb") as raw,
            zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        ):
            queryset = export_invocations(test=test, invocation_id=invocation_id)
            with (
                archive.open("invocations.csv", "w") as member,
                io.TextIOWrapper(member, encoding="utf-8", newline="") as out,
            ):
                writer = csv.writer(out)
                writer.writerow(INVOCATION_COLUMNS)
                for invocation in queryset.iterator(chunk_size=500):
                    writer.writerow(_invocation_row(invocation))
                    rows += 1
            if view == "invocations":
                # A second pass: a ZIP takes one open member at a time, and memory stays flat.
                for invocation in queryset.iterator(chunk_size=500):
                    archive.writestr(
                        f"invocations/{invocation.position:05d}-{invocation.pk}.json",
                        json.dumps(_invocation_json(invocation), indent=2, default=str),
                    )
            if view == "test":
                grid = benchmark_grid(actor=actor, test_id=test.pk)
                archive.writestr("benchmark.json", json.dumps(grid, indent=2, default=str))
            manifest = {
                "test_id": str(test.pk),
                "title": test.title,
                "view": view,
                "status": test.status,
                "exported_at": _iso(timezone.now()),
                "exported_by": actor.name,
                "row_count": rows,
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        with transaction.atomic():
            upload = media.upload_save_file(
                organization_id=actor.organization_id,
                owner=actor,
                path=path,
                file_name=file_name,
                mime_type="application/zip",
                kind=UploadKind.EXPORT,
                family="test",
                artifact_id=test.pk,
                row_count=rows,
            )
            timeline_record(
                actor=actor,
                session=session,
                event_type="test.export",
                entity_id=test.pk,
                entity_name=test.title,
                extra_1=upload.pk,
                extra_2=view,
            )
    finally:
        os.unlink(path)
    return upload
