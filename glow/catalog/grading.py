"""The rubric grader attempts and tests share: GradeSource, the grade schema, the request, the
answer read back as criterion scores."""

from __future__ import annotations

import copy
import json

from django.db import models

from glow.ai import CompletionRequest


class GradeSource(models.TextChoices):
    """Who set a grade: the rubric grader, an agent client, a copy, or staff over the grader."""

    AI = "ai", "AI grader"
    AGENT = "agent", "Given by an agent client"
    COPIED = "copied", "Copied from a previous attempt"
    REVIEWED = "reviewed", "Reviewed by staff"


GRADE_SCHEMA = {
    "type": "object",
    "required": ["score", "total_points", "passed", "standards", "feedback"],
    "properties": {
        "score": {"type": "integer", "minimum": 0},
        "total_points": {"type": "integer", "minimum": 0},
        "passed": {"type": "boolean"},
        "feedback": {"type": "string"},
        "standards": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["standard_id", "group_id", "score", "points"],
                "properties": {
                    "standard_id": {"type": "string"},
                    "group_id": {"type": "string"},
                    "score": {"type": "integer", "minimum": 0},
                    "points": {"type": "integer", "minimum": 0},
                    "feedback": {"type": "string"},
                },
            },
        },
        "strengths": {"type": "array", "items": {"type": "string"}},
        "improvements": {"type": "array", "items": {"type": "string"}},
        "highlights": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["quote"],
                "properties": {
                    "quote": {"type": "string"},
                    "comment": {"type": "string"},
                    "message_id": {"type": "string"},
                },
            },
        },
        "replacements": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["original", "replacement"],
                "properties": {
                    "original": {"type": "string"},
                    "replacement": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
        },
    },
}


def grade_schema(structure: list[dict]) -> dict:
    """GRADE_SCHEMA for one rubric: one entry per standard, each naming a standard and group by
    the rubric's own ids, its score bounded by the largest standard's points. The totals, the
    percent and pass come from the rubric, so the grader is not asked for them. A
    grammar-constrained server (llama.cpp) then cannot invent or garble an id, drop a standard
    or score out of range; any other server's answer is validated, and repaired, against it."""
    ids = [standard["id"] for group in structure for standard in group["standards"]]
    if not ids:
        return GRADE_SCHEMA
    most = max(standard["points"] for group in structure for standard in group["standards"])
    schema = copy.deepcopy(GRADE_SCHEMA)
    schema["required"] = ["standards", "feedback"]
    standards = schema["properties"]["standards"]
    standards["minItems"] = standards["maxItems"] = len(ids)
    standards["items"]["required"] = ["standard_id", "group_id", "score"]
    entry = standards["items"]["properties"]
    entry["standard_id"] = {"type": "string", "enum": ids}
    entry["group_id"] = {"type": "string", "enum": [group["id"] for group in structure]}
    entry["score"] = {"type": "integer", "minimum": 0, "maximum": most}
    return schema


def grade_request(
    *,
    subject: str,
    transcript: list[dict],
    structure: list[dict],
    pass_threshold: int,
    instructions: list[str] = (),
    scenario_title: str = "",
    scenario: dict | None = None,
    persona: dict | None = None,
) -> CompletionRequest:
    """Grade `subject` (the speaker of the transcript's "user" turns) against the rubric's
    `structure`. `context` feeds the offline simulator; `messages` carry the same facts in words,
    so a remote model gets everything it needs. Without a scenario or persona the simulator
    judges the subject's moves alone."""
    rubric = {"groups": structure}
    conversation = "\n".join(
        f"[{turn['id']}] {turn['role']}: {turn['content']}" for turn in transcript
    )
    extra = "\n".join(f"- {line}" for line in instructions)
    heading = f"Scenario: {scenario_title}\n" if scenario_title else ""
    return CompletionRequest(
        messages=[
            {
                "role": "system",
                "content": f"Grade {subject} (role user) in this conversation against "
                "the rubric. Score each standard from 0 to its points, from evidence in the "
                f"user's turns only. Passing is {pass_threshold}% of the total points. Answer "
                "with JSON matching the schema."
                + (f"\nAlso follow these instructions:\n{extra}" if extra else ""),
            },
            {
                "role": "user",
                "content": f"{heading}Rubric: {json.dumps(rubric)}\n\n"
                f"Conversation:\n{conversation}",
            },
        ],
        task="grade",
        context={
            "rubric": rubric,
            "transcript": transcript,
            "pass_threshold": pass_threshold,
            "scenario": scenario or {},
            "persona": persona or {},
            "instructions": list(instructions),
        },
        json_schema=grade_schema(structure),
    )


def standard_scores(data: dict, structure: list[dict]) -> list[dict]:
    """The grader's criterion entries in the rubric's order, one per standard, each score clamped
    to its standard's points and filed under its own group (the rubric's word, not the
    grader's). A standard the grader left out scores 0 and says so; an entry for a standard the
    rubric lacks is dropped. Without a rubric the grader's entries stand as given."""
    entries = [entry for entry in data.get("standards") or [] if isinstance(entry, dict)]
    if not structure:
        return [
            _entry(entry, entry.get("group_id", ""), _int(entry.get("points"))) for entry in entries
        ]
    given: dict[str, dict] = {}
    for entry in entries:
        given.setdefault(str(entry.get("standard_id")), entry)
    standards = []
    for group in structure:
        for standard in group["standards"]:
            entry = given.get(str(standard["id"]))
            if entry is None:
                entry = {"score": 0, "feedback": "The grader gave this standard no score."}
            standards.append(
                _entry({**entry, "standard_id": standard["id"]}, group["id"], standard["points"])
            )
    return standards


def _entry(entry: dict, group_id: str, points: int) -> dict:
    return {
        "standard_id": str(entry.get("standard_id", "")),
        "group_id": str(group_id),
        "score": max(0, min(points, _int(entry.get("score")))),
        "points": points,
        "feedback": str(entry.get("feedback") or ""),
    }


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def group_totals(standards: list[dict]) -> dict[str, list[int]]:
    """[earned, points] of each group the criterion entries name."""
    by_group: dict[str, list[int]] = {}
    for entry in standards:
        row = by_group.setdefault(entry["group_id"], [0, 0])
        row[0] += entry["score"]
        row[1] += entry["points"]
    return by_group
