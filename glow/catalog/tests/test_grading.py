"""The one rubric grader attempts and tests share: its answer read back against the rubric."""

from glow.ai.negotiation import grammar_schema
from glow.ai.schema import schema_errors
from glow.catalog.grading import (
    GRADE_SCHEMA,
    grade_request,
    grade_schema,
    group_totals,
    standard_scores,
)

STRUCTURE = [
    {
        "id": "g1",
        "name": "Empathy",
        "total_points": 5,
        "standards": [
            {"id": "s1", "name": "Feelings", "description": "", "points": 3},
            {"id": "s2", "name": "Questions", "description": "", "points": 2},
        ],
    },
    {
        "id": "g2",
        "name": "Policy",
        "total_points": 4,
        "standards": [{"id": "s3", "name": "Explains", "description": "", "points": 4}],
    },
]


def test_scores_are_clamped_to_the_rubrics_points_not_the_graders_word():
    data = {
        "standards": [
            {"standard_id": "s1", "group_id": "g1", "score": 9, "points": 10},
            {"standard_id": "s2", "group_id": "g1", "score": -1, "points": 2},
            {"standard_id": "s3", "group_id": "g2", "score": 3, "points": 4, "feedback": "ok"},
            "not an entry",
        ]
    }

    entries = standard_scores(data, STRUCTURE)

    assert [(e["standard_id"], e["score"], e["points"]) for e in entries] == [
        ("s1", 3, 3),
        ("s2", 0, 2),
        ("s3", 3, 4),
    ]
    assert entries[2]["feedback"] == "ok"
    assert group_totals(entries) == {"g1": [3, 5], "g2": [3, 4]}


def test_the_request_carries_the_rubric_in_words_and_in_context():
    transcript = [{"id": "1", "role": "user", "content": "How are you feeling about it?"}]

    request = grade_request(
        subject="the agent", transcript=transcript, structure=STRUCTURE, pass_threshold=70
    )

    assert request.task == "grade" and request.json_schema == grade_schema(STRUCTURE)
    assert request.context["rubric"] == {"groups": STRUCTURE}
    assert request.context["persona"] == {} and request.context["scenario"] == {}
    system, user = (message["content"] for message in request.messages)
    assert system.startswith("Grade the agent (role user)") and "70%" in system
    assert '"id": "s3"' in user and "[1] user: How are you feeling about it?" in user


def test_each_standard_is_scored_once_in_the_rubrics_order_under_its_own_group():
    data = {
        "standards": [
            {"standard_id": "s3", "group_id": "g1", "score": 4, "points": 4},
            {"standard_id": "s1", "group_id": "g2", "score": 2, "points": 3, "feedback": "first"},
            {"standard_id": "s1", "group_id": "g1", "score": 0, "points": 3, "feedback": "again"},
            {"standard_id": "invented", "group_id": "g1", "score": 9, "points": 9},
        ]
    }

    entries = standard_scores(data, STRUCTURE)

    assert [(e["standard_id"], e["group_id"], e["score"]) for e in entries] == [
        ("s1", "g1", 2),
        ("s2", "g1", 0),
        ("s3", "g2", 4),
    ]
    assert entries[0]["feedback"] == "first"
    # A standard the grader skipped still counts toward the total, at 0, and says why.
    assert entries[1]["points"] == 2 and "no score" in entries[1]["feedback"]
    assert group_totals(entries) == {"g1": [2, 5], "g2": [4, 4]}


def test_the_grade_schema_names_the_rubrics_standards_and_asks_for_each_once():
    schema = grade_schema(STRUCTURE)
    # Totals, percent and pass come from the rubric: the grader gives each standard's score.
    answer = {
        "feedback": "Good.",
        "standards": [
            {"standard_id": sid, "group_id": gid, "score": 1}
            for sid, gid in (("s1", "g1"), ("s2", "g1"), ("s3", "g2"))
        ],
    }

    assert schema_errors(answer, schema) == []
    garbled = {**answer, "standards": [{**answer["standards"][0], "standard_id": "s9"}]}
    problems = schema_errors(garbled, schema)
    assert any("'s9' is not one of ['s1', 's2', 's3']" in problem for problem in problems)
    assert any("at least 3" in problem for problem in problems), problems
    too_high = {**answer, "standards": [{**answer["standards"][0], "score": 5}] * 3}
    assert "$.standards[0].score: 5 is above the maximum 4" in schema_errors(too_high, schema)
    # The grammar a llama.cpp server samples from keeps the ids and the count.
    grammar = grammar_schema(schema)["properties"]["standards"]
    assert grammar["minItems"] == grammar["maxItems"] == 3
    assert grammar["items"]["properties"]["standard_id"]["enum"] == ["s1", "s2", "s3"]
    assert grammar["items"]["properties"]["score"]["enum"] == [0, 1, 2, 3, 4]
    assert grammar_schema(schema)["required"] == ["standards", "feedback"]
    # Without a rubric there is nothing to name: the generic schema.
    assert grade_schema([]) is GRADE_SCHEMA
