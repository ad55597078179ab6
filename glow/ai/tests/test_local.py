"""Tests of the local simulator: in-character replies, hints, grades, artifacts, agent turns."""

import json
import re

import pytest

from glow.ai import ECHO_MODEL, CompletionRequest, LocalProvider, count_tokens, get_provider
from glow.ai.schema import schema_errors

ANGRY = {
    "name": "Alex Stone",
    "traits": ["angry", "defensive"],
    "intensity": 8,
    "voice": "casual",
    "description": "Pre-med student who cares a lot about their GPA.",
}
CONFUSED = {
    "name": "Bea Park",
    "traits": ["confused", "shy"],
    "intensity": 3,
    "voice": "quiet",
    "description": "First-year student who missed two lectures.",
}
SCENARIO = {
    "title": "Midterm grade dispute",
    "context": "The student got 52 on the chemistry midterm and says the titration question "
    "was graded unfairly.",
}
RUBRIC = {
    "groups": [
        {
            "id": "g1",
            "name": "Rapport",
            "standards": [
                {
                    "id": "s1",
                    "name": "Acknowledges feelings",
                    "description": "Acknowledges the student's frustration and validates emotions.",
                    "points": 10,
                },
                {
                    "id": "s2",
                    "name": "Respectful tone",
                    "description": "Stays calm and professional; avoids dismissive language.",
                    "points": 5,
                },
            ],
        },
        {
            "id": "g2",
            "name": "Problem solving",
            "standards": [
                {
                    "id": "s3",
                    "name": "Asks open questions",
                    "description": "Asks open questions to understand what happened.",
                    "points": 10,
                },
                {
                    "id": "s4",
                    "name": "Explains the regrade policy",
                    "description": "Explains the regrade policy and the rubric criteria.",
                    "points": 10,
                },
                {
                    "id": "s5",
                    "name": "Agrees next steps",
                    "description": "Ends with a concrete plan such as office hours.",
                    "points": 5,
                },
            ],
        },
    ]
}
GOOD_TRANSCRIPT = [
    {
        "id": "m1",
        "role": "user",
        "content": "Hi Alex, I can hear how frustrated you are, and that makes sense.",
    },
    {"id": "m2", "role": "assistant", "content": "It was unfair!"},
    {
        "id": "m3",
        "role": "user",
        "content": "What happened on the titration question? How did you approach it?",
    },
    {"id": "m4", "role": "assistant", "content": "I used the right method."},
    {
        "id": "m5",
        "role": "user",
        "content": "Our regrade policy gives partial credit for the method, because the rubric "
        "criteria reward it. Let's meet at office hours tomorrow to file the regrade request.",
    },
]
BAD_TRANSCRIPT = [
    {"id": "m1", "role": "user", "content": "Calm down. Rules are rules."},
    {"id": "m2", "role": "assistant", "content": "But it was unfair!"},
    {"id": "m3", "role": "user", "content": "Nothing I can do, the grade stands."},
]


@pytest.fixture
def local():
    return get_provider("local")


def _persona_request(persona, message, transcript=()):
    context = {
        "persona": persona,
        "scenario": SCENARIO,
        "transcript": list(transcript),
        "learner_message": message,
    }
    return CompletionRequest(
        messages=[{"role": "user", "content": message}], task="persona_reply", context=context
    )


def _reply(provider, persona, message, transcript=()):
    return provider.complete(_persona_request(persona, message, transcript))


def _sentences(text):
    return [part for part in re.split(r"(?<=[.!?])\s+(?=[A-Z.])", text) if part]


def test_two_personas_answer_the_same_message_differently(local):
    message = "Why do you think the grading was unfair?"

    angry = _reply(local, ANGRY, message).text
    confused = _reply(local, CONFUSED, message).text

    assert angry != confused
    for reply in (angry, confused):
        # Each answers from its own situation, never by echoing the question's words back.
        assert any(word in reply.lower() for word in ("midterm", "titration", "chemistry"))
        assert "grading" not in reply.lower()
        assert SCENARIO["title"].lower() not in reply.lower()


def test_reply_reacts_to_what_the_learner_does(local):
    empathic = _reply(local, ANGRY, "I can hear how frustrated you are, that makes sense.").text
    dismissive = _reply(local, ANGRY, "Calm down, rules are rules.").text
    question = _reply(local, ANGRY, "What happened with the titration question?").text

    assert len({empathic, dismissive, question}) == 3
    assert "listening" in empathic or "hearing" in empathic
    assert "titration" in question.lower()


def test_intensity_shapes_the_tone(local):
    mild = _reply(local, {**ANGRY, "intensity": 1}, "Calm down.").text
    furious = _reply(local, {**ANGRY, "intensity": 10}, "Calm down.").text

    assert mild != furious
    assert "!" in furious


def test_reply_refers_to_the_scenario(local):
    text = _reply(local, CONFUSED, "I can see this has been hard for you.").text

    assert "midterm" in text.lower() or "titration" in text.lower() or "chemistry" in text.lower()


@pytest.mark.parametrize("persona", [ANGRY, CONFUSED, {"name": "Cy", "traits": ["anxious"]}, {}])
@pytest.mark.parametrize(
    "message",
    [
        "",
        "ok",
        "Why?",
        "Calm down.",
        "I understand, that sounds stressful.",
        "Let's meet tomorrow.",
    ],
)
def test_replies_are_one_to_four_sentences(local, persona, message):
    text = _reply(local, persona, message).text

    assert text
    assert 1 <= len(_sentences(text)) <= 4


def test_same_inputs_give_the_same_outputs():
    first = _reply(LocalProvider(), ANGRY, "What happened?")
    second = _reply(LocalProvider(), ANGRY, "What happened?")

    assert first.text == second.text
    assert first.usage == second.usage


def test_usage_counts_messages_and_output(local):
    result = _reply(local, ANGRY, "What happened?")

    assert result.usage.input_tokens == count_tokens("What happened?")
    assert result.usage.output_tokens == count_tokens(result.text)


def test_stream_sends_small_chunks_that_add_up(local):
    request = _persona_request(ANGRY, "Calm down.")

    stream = local.stream(request)
    chunks = list(stream)

    assert len(chunks) > 2
    assert all(1 <= len(chunk.split()) <= 3 for chunk in chunks)
    assert "".join(chunks) == local.complete(request).text == stream.result.text
    assert stream.result.finish_reason == "stop"


def test_cancelled_stream_keeps_the_partial_text(local):
    request = _persona_request(ANGRY, "Calm down.")
    received: list[str] = []

    stream = local.stream(request, should_cancel=lambda: len(received) == 2)
    for chunk in stream:
        received.append(chunk)

    assert len(received) == 2
    assert stream.result.finish_reason == "cancelled"
    assert stream.result.text == "".join(received)
    assert stream.result.usage.output_tokens == count_tokens(stream.result.text)


def _hints(provider, message):
    context = {
        "persona": ANGRY,
        "scenario": SCENARIO,
        "transcript": [],
        "learner_message": message,
        "persona_reply": "Why should I trust you?",
    }
    result = provider.complete(CompletionRequest(messages=[], task="hint", context=context))
    assert json.loads(result.text) == result.data
    assert 1 <= len(result.data) <= 3
    assert all(hint["type"] in ("suggestion", "warning", "praise") for hint in result.data)
    return result.data


def test_hints_warn_about_dismissive_replies(local):
    hints = _hints(local, "Calm down, rules are rules.")

    assert hints[0]["type"] == "warning"


def test_hints_praise_empathy_and_open_questions(local):
    hints = _hints(local, "I hear you, that sounds frustrating. What part felt unfair?")

    assert hints[0]["type"] == "praise"
    assert not any(hint["type"] == "warning" for hint in hints)


def _grade(provider, transcript, **extra):
    context = {"rubric": RUBRIC, "transcript": transcript, **extra}
    return provider.complete(CompletionRequest(messages=[], task="grade", context=context)).data


def test_grade_rewards_a_transcript_that_meets_the_standards(local):
    good = _grade(local, GOOD_TRANSCRIPT)
    bad = _grade(local, BAD_TRANSCRIPT)

    assert good["total_points"] == bad["total_points"] == 40
    assert good["score"] >= 30
    assert bad["score"] <= 10
    assert good["passed"] and not bad["passed"]
    for standard_good, standard_bad in zip(good["standards"], bad["standards"], strict=True):
        assert standard_good["score"] >= standard_bad["score"]


def test_grade_report_is_consistent(local):
    report = _grade(local, GOOD_TRANSCRIPT)

    assert report["score"] == sum(item["score"] for item in report["standards"])
    assert [group["group_id"] for group in report["groups"]] == ["g1", "g2"]
    assert report["groups"][0]["total_points"] == 15
    assert sum(group["score"] for group in report["groups"]) == report["score"]
    assert all(0 <= item["score"] <= item["points"] for item in report["standards"])
    assert report["feedback"] and report["strengths"]
    learner = {turn["id"]: turn["content"] for turn in GOOD_TRANSCRIPT if turn["role"] == "user"}
    assert report["highlights"]
    for highlight in report["highlights"]:
        assert highlight["quote"] in learner[highlight["message_id"]]


def test_grade_flags_dismissive_quotes(local):
    report = _grade(local, BAD_TRANSCRIPT)

    quotes = [item["quote"] for item in report["highlights"]]
    assert "Calm down." in quotes
    assert report["improvements"]


def test_grade_of_an_empty_transcript_is_zero(local):
    report = _grade(local, [{"role": "assistant", "content": "Hello?"}])

    assert report["score"] == 0
    assert not report["passed"]
    assert report["highlights"] == []


def test_grade_honours_the_pass_threshold(local):
    report = _grade(local, GOOD_TRANSCRIPT, pass_threshold=100.5)

    assert not report["passed"]


def test_generate_persona_from_instructions(local):
    context = {
        "family": "persona",
        "instructions": [
            "Create an anxious first-year student named Jordan Blake, intensity 7",
            "Speaks in a formal voice",
        ],
        "fields": {"name": "str", "traits": "list[str]", "intensity": "int 1-10", "voice": "str"},
    }

    data = local.complete(
        CompletionRequest(messages=[], task="generate_artifact", context=context)
    ).data

    assert data["name"] == "Jordan Blake"
    assert data["intensity"] == 7
    assert "anxious" in data["traits"]
    assert data["voice"] == "formal"
    assert data["title"].startswith("Anxious first-year student")
    assert "Speaks in a formal voice." in data["description"]


def test_generate_rubric_builds_standards(local):
    context = {
        "family": "rubric",
        "instructions": ["A rubric on empathy and clear policy explanation, 4 points each"],
        "fields": {"groups": "list of groups"},
    }

    data = local.complete(
        CompletionRequest(messages=[], task="generate_artifact", context=context)
    ).data

    standards = [item for group in data["groups"] for item in group["standards"]]
    assert {item["name"] for item in standards} == {
        "Acknowledges feelings",
        "Explains policy clearly",
    }
    assert all(item["points"] == 4 for item in standards)


def test_generate_unknown_family_fills_title_and_description(local):
    context = {"family": "checklist", "instructions": ["Make a checklist for lab safety"]}

    data = local.complete(
        CompletionRequest(messages=[], task="generate_artifact", context=context)
    ).data

    assert data == {
        "title": "Checklist for lab safety",
        "description": "Make a checklist for lab safety.",
    }


def _agent_context(transcript):
    return {
        "agent": {
            "name": "Coach",
            "system_prompt": "Be supportive.",
            "tools": [
                {
                    "name": "lookup_policy",
                    "schema": {
                        "type": "object",
                        "properties": {"topic": {"type": "string"}},
                        "required": ["topic"],
                    },
                },
                {"name": "schedule_meeting", "schema": {"type": "object"}},
            ],
        },
        "persona": ANGRY,
        "scenario": SCENARIO,
        "transcript": transcript,
    }


def test_agent_opens_with_a_tool_call(local):
    request = CompletionRequest(messages=[], task="agent_turn", context=_agent_context([]))

    first = local.complete(request)

    assert "Alex" in first.text
    call = first.data["tool_calls"][0]
    assert call["name"] == "lookup_policy"
    assert schema_errors(call["arguments"], _agent_context([])["agent"]["tools"][0]["schema"]) == []
    assert local.complete(request).text == first.text


def test_agent_answers_the_student(local):
    transcript = [
        {"role": "user", "content": "Hi Alex, what brings you here?"},
        {"role": "assistant", "content": "The grading was unfair and I'm furious."},
    ]
    result = local.complete(
        CompletionRequest(messages=[], task="agent_turn", context=_agent_context(transcript))
    )

    # An empathetic agent acknowledges the student's worry about their own situation.
    assert "worried" in result.text or "weighing on you" in result.text
    assert "midterm" in result.text or "titration" in result.text
    assert result.data is None


def test_echo_model_returns_the_last_user_message(local):
    request = CompletionRequest(
        messages=[{"role": "user", "content": "first"}, {"role": "user", "content": "  exact  "}],
        model=ECHO_MODEL,
        task="persona_reply",
    )

    assert local.complete(request).text == "  exact  "


def test_generic_reply_uses_the_last_user_message(local):
    request = CompletionRequest(messages=[{"role": "user", "content": "How do office hours work?"}])

    text = local.complete(request).text

    assert "office" in text and "hours" in text
    assert text == local.complete(request).text


def test_max_tokens_truncates_with_length_finish(local):
    request = CompletionRequest(
        messages=[{"role": "user", "content": "one two three four five"}],
        model=ECHO_MODEL,
        max_tokens=3,
    )

    result = local.complete(request)

    assert result.text == "one two three"
    assert result.finish_reason == "length"


def test_requested_schema_is_always_met(local):
    schema = {
        "type": "object",
        "properties": {"reply": {"type": "string"}, "mood": {"enum": ["calm", "angry"]}},
        "required": ["reply", "mood"],
    }
    request = CompletionRequest(
        messages=[],
        task="persona_reply",
        context={"persona": ANGRY, "learner_message": "Hello"},
        json_schema=schema,
    )

    result = local.complete(request)

    assert schema_errors(result.data, schema) == []
    assert result.data["reply"]
