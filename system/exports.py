"""The session export: a ZIP of a session's groups, runs, timeline and what other apps add."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass

from django.utils import timezone

from glow.core.media import upload_save_file
from glow.core.models import UploadKind
from glow.core.registry import registry
from system.ledger import timeline_record
from system.models import Group, Run, Session


@dataclass(frozen=True)
class ExportFile:
    """A file an app adds to a session export (hook "session_export"): ZIP path, content, rows."""

    name: str
    content: str | bytes
    row_count: int = 0


def _iso(value) -> str:
    return value.isoformat() if value else ""


def _csv(archive: zipfile.ZipFile, name: str, header: list[str], rows) -> int:
    count = 0
    with archive.open(name, "w") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


GROUP_COLUMNS = [
    "group_id",
    "group_name",
    "family",
    "artifact_id",
    "created_at",
    "first_run_at",
    "last_run_at",
    "run_count",
    "total_tokens",
    "total_cost",
]
RUN_COLUMNS = [
    "run_id",
    "group_id",
    "kind",
    "status",
    "model_id",
    "provider",
    "provider_model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "created_at",
    "started_at",
    "finished_at",
    "latency_ms",
    "error",
    "client_run_id",
    "mcp",
]
TIMELINE_COLUMNS = ["event_type", "entity_id", "entity_name", "created_at", "extra_1", "extra_2"]


def _group_row(group: Group) -> list:
    return [
        group.pk,
        group.name,
        group.family,
        group.artifact_id or "",
        _iso(group.created_at),
        _iso(group.first_run_at),
        _iso(group.last_run_at),
        group.run_count,
        group.total_tokens,
        group.total_cost,
    ]


def _run_row(run: Run) -> list:
    return [
        run.pk,
        run.group_id,
        run.kind,
        run.status,
        run.model_id or "",
        run.provider,
        run.provider_model,
        run.input_tokens,
        run.output_tokens,
        run.total_tokens,
        run.cost,
        _iso(run.created_at),
        _iso(run.started_at),
        _iso(run.finished_at),
        "" if run.latency_ms is None else run.latency_ms,
        run.error,
        run.client_run_id,
        run.mcp,
    ]


def _timeline_row(item) -> list:
    return [
        item.event_type,
        item.entity_id,
        item.entity_name,
        _iso(item.created_at),
        item.extra_1,
        item.extra_2,
    ]


def _run_json(run: Run) -> dict:
    return {
        "run_id": str(run.pk),
        "group_id": str(run.group_id),
        "kind": run.kind,
        "status": run.status,
        "model_id": str(run.model_id or ""),
        "provider_model": run.provider_model,
        "messages": run.messages,
        "output": run.output,
        "error": run.error,
        "events": [
            {
                "seq": event.seq,
                "event_type": event.event_type,
                "payload": event.payload,
                "created_at": _iso(event.created_at),
            }
            for event in run.ordered_events
        ],
    }


def session_export(*, actor, session: Session, audit_session: Session | None = None):
    """Write a ZIP of the session's groups, runs (with messages and events), timeline and what
    other apps add through the "session_export" hook, store it as the actor's export Upload
    (read back with file/download), and audit it on the timeline (FERPA)."""
    from system.selectors import EXPORT_EVENT, session_export_data

    groups, runs, timeline = session_export_data(session=session)
    file_name = f"glow-session-{session.created_at:%Y%m%d}-{str(session.pk)[:8]}.zip"
    counts: dict[str, int] = {}
    with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            counts["groups.csv"] = _csv(
                archive, "groups.csv", GROUP_COLUMNS, map(_group_row, groups)
            )
            run_rows = []
            with archive.open("runs.jsonl", "w") as raw:
                for run in runs.iterator(chunk_size=500):
                    raw.write((json.dumps(_run_json(run), default=str) + "\n").encode())
                    run_rows.append(_run_row(run))
            counts["runs.csv"] = _csv(archive, "runs.csv", RUN_COLUMNS, run_rows)
            counts["timeline.csv"] = _csv(
                archive, "timeline.csv", TIMELINE_COLUMNS, map(_timeline_row, timeline)
            )
            for contribution in registry.run_hooks("session_export", actor=actor, session=session):
                for part in contribution or []:
                    archive.writestr(part.name, part.content)
                    counts[part.name] = part.row_count
            manifest = {
                "session_id": str(session.pk),
                "profile_id": str(session.profile_id),
                "profile_name": session.profile.name,
                "session_created_at": _iso(session.created_at),
                "exported_at": _iso(timezone.now()),
                "exported_by": actor.name,
                "files": counts,
            }
            archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        handle.flush()
        upload = upload_save_file(
            organization_id=actor.organization_id,
            owner=actor,
            path=handle.name,
            file_name=file_name,
            mime_type="application/zip",
            kind=UploadKind.EXPORT,
            # Sessions are no registered row family: the exporter (and admins) may read it back.
            row_count=sum(counts.values()),
        )
    timeline_record(
        actor=actor,
        session=audit_session,
        event_type=EXPORT_EVENT,
        entity_id=session.pk,
        entity_name=f"Session of {session.profile.name}",
        extra_1=upload.pk,
        extra_2=file_name,
    )
    return upload
