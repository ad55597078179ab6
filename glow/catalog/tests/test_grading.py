"""The one rubric grader attempts and tests share: its answer read back against the rubric."""

from glow.catalog.grading import GRADE_SCHEMA, grade_request, group_totals, standard_scores

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

    assert request.task == "grade" and request.json_schema is GRADE_SCHEMA
    assert request.context["rubric"] == {"groups": STRUCTURE}
    assert request.context["persona"] == {} and request.context["scenario"] == {}
    system, user = (message["content"] for message in request.messages)
    assert system.startswith("Grade the agent (role user)") and "70%" in system
    assert '"id": "s3"' in user and "[1] user: How are you feeling about it?" in user
