"""Persona-fidelity checks: each kind of flag, and a faithful reply passes clean."""

from __future__ import annotations

from glow.ai import fidelity

PERSONA = {"traits": ["angry", "defensive"]}
SCENARIO = {
    "title": "Office hours: midterm regrade dispute",
    "context": "Morgan storms in about question 4 of the midterm. The rubric allowed partial "
    "credit only for a correct invariant.",
    "learner_goal": "Morgan understands how to file a written regrade request within the week.",
}
EARLIER = ["Hi Morgan.", "I lost 15 points on question 4 and my answer was basically right."]


def _codes(reply: str, **extra) -> list[str]:
    flags = fidelity.check_reply(
        reply, earlier=EARLIER, persona=PERSONA, scenario=SCENARIO, **extra
    )
    return [flag["code"] for flag in flags]


def test_a_faithful_reply_has_no_flags():
    assert _codes("That's not fair. Nobody told me the invariant mattered that much.") == []


def test_repeats_verbatim_and_near_verbatim():
    assert _codes("I lost 15 points on question 4 and my answer was basically right.") == [
        fidelity.REPEAT
    ]
    assert _codes("I lost 15 points on question 4, and my answer was basically right!") == [
        fidelity.REPEAT
    ]
    assert _codes("Hi Morgan.") == [fidelity.REPEAT]  # echoing the learner


def test_breaking_character():
    assert _codes("As an AI language model, I cannot have a grade.") == [fidelity.CHARACTER]
    assert _codes("How can I assist you today?") == [fidelity.CHARACTER]


def test_leaking_the_brief_the_goal_the_title_or_hidden_text():
    assert _codes("The rubric allowed partial credit only for a correct invariant, right?") == [
        fidelity.LEAK
    ]
    assert _codes("So I should file a written regrade request within the week, okay.") == [
        fidelity.LEAK
    ]
    assert _codes("Is this the office hours: midterm regrade dispute thing?") == [fidelity.LEAK]
    hidden = ["Stays calm and respectful with no dismissive or sarcastic language at all."]
    assert _codes("You stay calm and respectful with no dismissive or sarcastic language at all.",
                  hidden=hidden) == [fidelity.LEAK]  # fmt: skip


def test_contradicting_stated_traits():
    assert _codes("Honestly I'm not angry at all, I love this class.") == [fidelity.TRAIT]
    quiet = {"traits": ["shy", "quiet"]}
    long_reply = " ".join(["I have so much to say about this."] * 15)
    flags = fidelity.check_reply(long_reply, persona=quiet)
    assert [flag["code"] for flag in flags] == [fidelity.TRAIT]


def test_flagged_rate_counts_replies_with_any_flag():
    assert fidelity.flagged_rate([[], [{"code": "repeat"}], [], []]) == (1, 4)
