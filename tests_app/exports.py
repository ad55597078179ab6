"""The test export: a ZIP of the test's invocations (and their transcripts, or its benchmark grid)
through the one export pipeline of glow.core.exports."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from glow.core.errors import ApplicationError, NotFound
from glow.core.exports import csv_member, export_store, iso, json_member
from glow.core.models import Upload
from system.ledger import timeline_record
from tests_app.models import Invocation
from tests_app.selectors import benchmark_grid, export_invocations, test_access, tool_call_body

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
        iso(invocation.started_at),
        iso(invocation.finished_at),
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
    """Invocations as CSV, plus each one's JSON (view invocations) or the benchmark grid (view
    test); stored as the actor's export and audited on the timeline in one transaction."""
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
    queryset = export_invocations(test=test, invocation_id=invocation_id)

    def write(archive) -> int:
        rows = csv_member(
            archive,
            "invocations.csv",
            INVOCATION_COLUMNS,
            map(_invocation_row, queryset.iterator(chunk_size=500)),
        )
        if view == "invocations":
            # A second pass: a ZIP takes one open member at a time, and memory stays flat.
            for invocation in queryset.iterator(chunk_size=500):
                json_member(
                    archive,
                    f"invocations/{invocation.position:05d}-{invocation.pk}.json",
                    _invocation_json(invocation),
                )
        else:
            json_member(archive, "benchmark.json", benchmark_grid(actor=actor, test_id=test.pk))
        json_member(
            archive,
            "manifest.json",
            {
                "test_id": str(test.pk),
                "title": test.title,
                "view": view,
                "status": test.status,
                "exported_at": iso(timezone.now()),
                "exported_by": actor.name,
                "row_count": rows,
            },
        )
        return rows

    return export_store(
        actor=actor,
        file_name=f"glow-test-{view}-{str(test.pk)[:8]}.zip",
        write=write,
        family="test",
        artifact_id=test.pk,
        audit=lambda upload: timeline_record(
            actor=actor,
            session=session,
            event_type="test.export",
            entity_id=test.pk,
            entity_name=test.title,
            extra_1=upload.pk,
            extra_2=view,
        ),
    )
