"""The local simulator as a dialogue engine: state, replies, hints, grades and agents agree."""

from __future__ import annotations

import re

from glow.ai.local.agent import agent_turn
from glow.ai.local.coaching import hints
from glow.ai.local.dialogue import RESOLVED, read_student, replay
from glow.ai.local.grading import grade
from glow.ai.local.persona import persona_reply

MORGAN = {
    "name": "Morgan, angry about a midterm grade",
    "description": "Lost points on a midterm question; scholarship on the line.",
    "traits": ["angry", "persistent"],
    "intensity": 8,
    "goal": "I want the points on question 4 back.",
    "phrases": ["This is my scholarship we're talking about."],
    "concerns": [
        {
            "topic": "the points lost on question 4",
            "worry": "I lost 15 points on question 4 and my answer was basically right.",
            "ask": "Why did my answer get almost nothing?",
            "more": "I wrote the loop right, I just skipped the invariant.",
            "pushback": "Don't brush me off. Fifteen points is not a small thing.",
            "relief": "Okay. At least you're actually looking at what I wrote.",
            "cues": ["question 4", "points", "invariant", "partial credit"],
        },
        {
            "topic": "how the regrade works",
            "worry": "Nobody has told me how to get this looked at again.",
            "ask": "So what do I actually do to get it regraded?",
            "relief": "Okay, a written request this week. I can do that.",
            "cues": ["regrade", "written request", "one week"],
        },
    ],
}
SITUATION = {
    "title": "Office hours: midterm regrade dispute",
    "context": "Morgan storms in about question 4. Regrade requests go through a written process "
    "within one week.",
    "opening_line": "I need to talk about my midterm. Question 4 was graded unfairly.",
    "persona_opens": True,
}
RUBRIC = {
    "groups": [
        {
            "id": "g1",
            "name": "Rapport",
            "standards": [
                {"id": "empathy", "name": "Acknowledge feelings",
                 "description": "Validates the student's emotion.", "points": 4},
                {"id": "respect", "name": "Respectful tone",
                 "description": "Stays calm; no dismissive language.", "points": 3},
            ],
        },
        {
            "id": "g2",
            "name": "Guidance",
            "standards": [
                {"id": "questions", "name": "Ask open questions",
                 "description": "Asks questions that get the student talking.", "points": 4},
                {"id": "explain", "name": "Explain the policy",
                 "description": "Explains the regrade policy clearly.", "points": 4},
                {"id": "next", "name": "Concrete next steps",
                 "description": "Ends with a concrete plan.", "points": 2},
            ],
        },
    ]
}  # fmt: skip
RESPECTFUL = [
    "Hi Morgan, thanks for coming in. What happened?",
    "I hear you, losing points on question 4 is really frustrating. How did you approach it?",
    "The rubric gave partial credit only for a correct invariant, which is why the points went.",
    "The regrade policy is a written request within one week; let's send it by Friday and I'll "
    "follow up with the instructor.",
]
DISMISSIVE = [
    "Hi.",
    "Stop complaining, the grade is final.",
    "Rules are rules, deal with it.",
    "Whatever.",
]


def _talk(lines: list[str], persona=MORGAN, scenario=SITUATION) -> list[dict]:
    transcript = [{"id": "m0", "role": "assistant", "content": scenario["opening_line"]}]
    for index, line in enumerate(lines):
        reply = persona_reply(
            {
                "persona": persona,
                "scenario": scenario,
                "transcript": transcript,
                "learner_message": line,
            }
        )
        transcript += [
            {"id": f"u{index}", "role": "user", "content": line},
            {"id": f"a{index}", "role": "assistant", "content": reply},
        ]
    return transcript


def _replies(transcript: list[dict]) -> list[str]:
    return [turn["content"] for turn in transcript if turn["role"] == "assistant"][1:]


def test_a_dismissed_concern_is_pushed_back_and_an_addressed_one_lets_go():
    dismissed = _replies(_talk(DISMISSIVE))
    assert "brush me off" in dismissed[1] and "not a small thing" in dismissed[1]
    respectful = _talk(RESPECTFUL)
    replies = _replies(respectful)
    assert "actually looking at what I wrote" in replies[2]
    assert "written request this week" in replies[3]
    state = replay(read_student(MORGAN, SITUATION), respectful)
    assert all(state.status_of(concern) == RESOLVED for concern in state.student.concerns)
    assert state.plan_agreed
    assert state.mood < MORGAN["intensity"]


def test_the_student_follows_up_on_what_is_still_open():
    replies = _replies(_talk(RESPECTFUL[:3]))
    # With question 4 settled, the student brings up the regrade process unprompted.
    assert "Nobody has told me how to get this looked at again." in replies[2]


def test_questions_get_answers_from_the_persona_not_echoes():
    replies = _replies(_talk(["What would help you most right now?", "How are you feeling?"]))
    assert MORGAN["goal"] in replies[0]
    assert "angry" in replies[1]  # a feeling from its traits, not a character sheet
    odd = _replies(_talk(["Do purple elephants dance at midnight?"]))[0]
    assert "elephant" not in odd.lower() and "midnight" not in odd.lower()


def test_no_reply_repeats_an_earlier_one_or_names_the_title():
    replies = _replies(_talk(["ok"] * 6 + ["Calm down."] * 6 + ["Nice weather today."] * 4))
    normal = [" ".join(re.findall(r"[a-z0-9']+", reply.lower())) for reply in replies]
    assert len(set(normal)) == len(normal)
    assert not any(SITUATION["title"].lower() in reply.lower() for reply in replies)


def test_same_inputs_same_conversation():
    assert _talk(RESPECTFUL) == _talk(RESPECTFUL)


def test_hints_name_the_open_concern_and_a_move():
    transcript = _talk(DISMISSIVE[:1])
    found = hints(
        {
            "persona": MORGAN,
            "scenario": SITUATION,
            "transcript": transcript,
            "learner_message": "Stop complaining.",
            "persona_reply": "Don't brush me off.",
        }
    )
    assert found[0]["type"] == "warning"
    assert "the points lost on question 4" in found[0]["content"]
    assert any("Acknowledge" in hint["content"] for hint in found)
    for hint in found:
        assert hint["content"][0].isupper() and hint["content"].rstrip('"').endswith((".", "?"))
        assert "Morgan, angry" not in hint["content"]


def test_grades_rest_on_the_state_and_quote_the_turns():
    good = grade({"persona": MORGAN, "scenario": SITUATION, "rubric": RUBRIC,
                  "transcript": _talk(RESPECTFUL)})  # fmt: skip
    bad = grade({"persona": MORGAN, "scenario": SITUATION, "rubric": RUBRIC,
                 "transcript": _talk(DISMISSIVE)})  # fmt: skip
    good_by = {entry["standard_id"]: entry for entry in good["standards"]}
    bad_by = {entry["standard_id"]: entry for entry in bad["standards"]}
    assert all(good_by[key]["score"] > bad_by[key]["score"] for key in good_by)
    # "Stop complaining" fails empathy outright, and the feedback quotes it.
    assert bad_by["empathy"]["score"] == 0
    assert '"Stop complaining, the grade is final."' in bad_by["empathy"]["feedback"]
    assert "question 4" in good_by["empathy"]["feedback"]
    quoted = {item["message_id"] for item in bad["highlights"]}
    assert {"u1", "u2"} <= quoted


def _agent_conversation(system_prompt: str) -> tuple[list[dict], dict]:
    transcript: list[dict] = []
    for _ in range(3):
        line, _calls = agent_turn(
            {
                "agent": {"system_prompt": system_prompt, "tools": []},
                "transcript": transcript,
                "scenario": SITUATION,
                "persona": MORGAN,
            }
        )
        reply = persona_reply(
            {"persona": MORGAN, "scenario": SITUATION, "transcript": transcript,
             "learner_message": line}
        )  # fmt: skip
        transcript += [
            {"id": str(len(transcript)), "role": "user", "content": line},
            {"id": str(len(transcript) + 1), "role": "assistant", "content": reply},
        ]
    return transcript, grade({"rubric": RUBRIC, "transcript": transcript})


def test_agents_follow_their_own_instructions_and_score_differently():
    coach, coach_grade = _agent_conversation(
        "You are a calm, empathetic TA. Acknowledge feelings, ask open questions, explain "
        "policy accurately and end with next steps."
    )
    terse, terse_grade = _agent_conversation("Answer in one short sentence. Do not ask questions.")
    terse_lines = [turn["content"] for turn in terse if turn["role"] == "user"]
    assert terse_lines[0].strip()
    assert all("?" not in line and line.count(". ") == 0 for line in terse_lines)
    assert any("?" in turn["content"] for turn in coach if turn["role"] == "user")
    assert coach_grade["score"] > terse_grade["score"]
