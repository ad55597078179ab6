"""The session export: a ZIP of a session's groups, runs, timeline and what other apps add."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from glow.core.exports import csv_member, export_store, json_member, jsonl_member
from glow.core.exports import iso as _iso
from glow.core.registry import registry
from system.ledger import timeline_record
from system.models import Group, Run, Session


@dataclass(frozen=True)
class ExportFile:
    """A file an app adds to a session export (hook "session_export"): ZIP path, content, rows."""

    name: str
    content: str | bytes
    row_count: int = 0


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
    (read back with file/download), and audit it on the timeline (FERPA) in the same
    transaction."""
    from system.selectors import EXPORT_EVENT, session_export_data

    groups, runs, timeline = session_export_data(session=session)
    file_name = f"glow-session-{session.created_at:%Y%m%d}-{str(session.pk)[:8]}.zip"

    def write(archive) -> int:
        counts = {
            "groups.csv": csv_member(archive, "groups.csv", GROUP_COLUMNS, map(_group_row, groups))
        }
        run_rows = []

        def run_objects():
            for run in runs.iterator(chunk_size=500):
                run_rows.append(_run_row(run))
                yield _run_json(run)

        jsonl_member(archive, "runs.jsonl", run_objects())
        counts["runs.csv"] = csv_member(archive, "runs.csv", RUN_COLUMNS, run_rows)
        counts["timeline.csv"] = csv_member(
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
        json_member(archive, "manifest.json", manifest)
        return sum(counts.values())

    # Sessions are no registered row family: the exporter (and admins) may read it back.
    return export_store(
        actor=actor,
        file_name=file_name,
        write=write,
        audit=lambda upload: timeline_record(
            actor=actor,
            session=audit_session,
            event_type=EXPORT_EVENT,
            entity_id=session.pk,
            entity_name=f"Session of {session.profile.name}",
            extra_1=upload.pk,
            extra_2=file_name,
        ),
    )
