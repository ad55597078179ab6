"""Seed 000's lifecycle end to end, over HTTP with an API key, as the demo's learner1."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from system.models import TimelineEvent

pytestmark = pytest.mark.django_db


def ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


def test_learner1_runs_the_demo_simulation_from_start_to_export_and_archive(demo, make_client):
    client = make_client(demo.learner1)

    started = ok(client.op("attempt/start", {"home_id": str(demo.home.pk)}))
    attempt_id, chat_ids = started["attempt_id"], started["chat_ids"]
    assert len(chat_ids) == 3
    assert started["attempt_chat_id"] == chat_ids[0]
    assert started["chat_entry_id"] == str(demo.home.pk)

    first = ok(
        client.op(
            "attempt/message",
            {
                "attempt_id": attempt_id,
                "chat_id": chat_ids[0],
                "message": "It sounds like recursion has been really frustrating. "
                "What have you tried so far with the base case?",
            },
        )
    )
    assert first["assistant_content"]
    assert first["hints"]

    ended = ok(
        client.op("attempt/end", {"attempt_id": attempt_id, "chat_id": chat_ids[0], "grade": True})
    )
    assert ended["grade_id"] and 0 <= ended["score"] <= 100
    assert ended["is_attempt_finished"] is False

    moved = ok(client.op("attempt/next", {"attempt_id": attempt_id}))
    assert moved["chat_id"] == chat_ids[1]
    ok(
        client.op(
            "attempt/message",
            {
                "attempt_id": attempt_id,
                "chat_id": chat_ids[1],
                "message": "I hear that you're upset about question 4. Let me explain the "
                "regrade policy: submit a written request within one week, and next step is "
                "we review it together.",
            },
        )
    )
    ok(client.op("attempt/end", {"attempt_id": attempt_id, "chat_id": chat_ids[1], "grade": True}))

    completed = ok(
        client.op("attempt/complete", {"attempt_id": attempt_id, "message": "Completed by learner"})
    )
    assert completed["completion_id"]
    assert completed["score"] is not None
    assert [group["name"] for group in completed["groups"]] == [
        "Empathy and rapport",
        "Guidance and teaching",
        "Policy and professionalism",
    ]

    history = ok(client.op("attempt/search", {}))
    assert history["total_count"] == 1
    row = history["attempts"][0]
    assert row["attempt_id"] == attempt_id
    assert row["score"] == completed["score"]
    assert row["score_percent"] == f"{completed['score']}%"
    assert row["simulation_title"] == "Office hours: CS-180"
    assert row["learner_name"] == "Lena Learner"
    assert row["status"] == "completed"
    assert history["simulation_filter"]["options"][0]["count"] == 1

    exported = ok(client.op("attempt/export", {"attempt_id": attempt_id}))
    assert exported["file_id"] == exported["upload_id"]
    assert exported["row_count"] == 1
    download = client.op("attempt/file/download", {"file_id": exported["file_id"]})
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    names = set(archive.namelist())
    assert {"manifest.json", "attempts.csv", "grades.csv", "rubric_scores.csv"} <= names
    transcript = archive.read(f"transcripts/{attempt_id}.jsonl").decode().splitlines()
    assert json.loads(transcript[0])["content"].startswith("It sounds like recursion")
    assert "regrade policy" in archive.read(f"transcripts/{attempt_id}.md").decode()
    assert TimelineEvent.objects.filter(
        event_type="attempt.exported", entity_id=exported["file_id"], actor=demo.learner1
    ).exists()

    archived = ok(client.op("attempt/archive", {"attempt_ids": [attempt_id], "archived": True}))
    assert archived["updated_count"] == 1
    assert ok(client.op("attempt/search", {}))["total_count"] == 0
    assert ok(client.op("attempt/search", {"show_archived": True}))["total_count"] == 1
    assert ok(client.op("attempt/search", {"is_archived": True}))["total_count"] == 1
