"""The next turn of an AI teaching-assistant agent talking to a simulated student.

The agent follows its own instructions: what its system prompt asks for (acknowledge
feelings, ask open questions, explain the policy, agree next steps, be brief, ask nothing)
decides which moves it makes, so differently instructed agents hold different conversations
and score differently. Transcript roles follow the attempt's convention: "user" is the
teaching assistant (here the agent), "assistant" is the student persona.
"""

from __future__ import annotations

from dataclasses import dataclass

from glow.ai.local.dialogue import RESOLVED, read_student, replay
from glow.ai.local.text import count_phrases, seeded_random, sentences, stems
from glow.ai.schema import conform

_POLICY_WORDS = ("policy", "process", "within", "must", "rubric", "regrade", "report",
                 "deadline", "credit", "request", "instructor", "extension", "allowed")  # fmt: skip


@dataclass(frozen=True)
class Style:
    empathy: bool
    questions: bool
    explain: bool
    next_steps: bool
    brief: bool


_EMPATHY_ASKS = ("empath", "acknowledge", "feeling", "warm", "kind", "validat", "supportive",
                 "patient")  # fmt: skip
_QUESTION_ASKS = ("question", "ask", "curious", "explore")
_NO_QUESTIONS = ("do not ask", "don't ask", "no questions", "never ask")
_EXPLAIN_ASKS = ("explain", "policy", "accurate", "clarif", "teach")
_NEXT_STEP_ASKS = ("next step", "plan", "follow up", "follow-up")
_BRIEF_ASKS = ("one short sentence", "one sentence", "concise", "brief", "short answer", "terse")


def read_style(system_prompt: str) -> Style:
    text = system_prompt.lower()
    return Style(
        empathy=bool(count_phrases(text, _EMPATHY_ASKS)),
        questions=not count_phrases(text, _NO_QUESTIONS)
        and bool(count_phrases(text, _QUESTION_ASKS)),
        explain=bool(count_phrases(text, _EXPLAIN_ASKS)),
        next_steps=bool(count_phrases(text, _NEXT_STEP_ASKS)),
        brief=bool(count_phrases(text, _BRIEF_ASKS)),
    )


def agent_turn(context: dict) -> tuple[str, dict | None]:
    """The agent's message, plus {"tool_calls": [...]} on turns where it uses a tool."""
    agent = context.get("agent") or {}
    transcript = context.get("transcript") or []
    scenario = context.get("scenario") or {}
    persona = context.get("persona") or {}
    style = read_style(str(agent.get("system_prompt") or ""))
    student = read_student(persona, scenario)
    state = replay(student, transcript)
    turn_number = sum(1 for turn in transcript if turn.get("role") == "user")
    rng = seeded_random("agent_turn", context)
    name = student.name
    current = state.current
    topic = current.topic if current else "what's on your mind"
    policy = _policy_sentence(scenario, topic)
    parts: list[str] = []
    if turn_number == 0 and not any(turn.get("role") == "assistant" for turn in transcript):
        parts.append(f"Hi {name}, thanks for coming in.")
        if style.questions:
            parts.append("What would you like to talk about today?")
        elif not style.brief:
            parts.append("Tell me what brings you here and I'll help where I can.")
    else:
        if style.empathy:
            parts.append(
                rng.choice(
                    (
                        f"I can hear that you're worried about {topic}, and that makes sense.",
                        f"It sounds like {topic} has been weighing on you; thank you for telling "
                        "me.",
                    )
                )
            )
        if style.explain and policy:
            parts.append(f"Here is how it works: {policy}")
        elif style.explain and current is not None:
            parts.append(f"Let me explain {topic} step by step, because that is the key point.")
        if style.questions and current is not None and state.status_of(current) != RESOLVED:
            parts.append(f"What worries you most about {topic}?")
        if style.next_steps and turn_number >= 1:
            parts.append(
                f"Let's agree on a next step: come to office hours on Thursday and we'll go "
                f"through {topic} together."
            )
        if not parts:
            parts.append(policy or f"Please check the course page about {topic}.")
    if style.brief:
        parts = [parts[-1] if style.next_steps else parts[0]]
        parts = [part.split("? ")[0].rstrip("?") + "." if "?" in part else part for part in parts]
    calls = _tool_calls(agent.get("tools") or [], turn_number, transcript, scenario)
    return " ".join(parts), ({"tool_calls": calls} if calls else None)


def _policy_sentence(scenario: dict, topic: str) -> str:
    """The situation's sentence that states a rule, the one nearest the topic first."""
    topic_stems = stems(topic)
    candidates = [
        part
        for part in sentences(str(scenario.get("context") or ""))
        if count_phrases(part, _POLICY_WORDS)
    ]
    candidates.sort(key=lambda part: -len(stems(part) & topic_stems))
    return candidates[0] if candidates else ""


def _tool_calls(
    tools: list[dict], turn_number: int, transcript: list[dict], scenario: dict
) -> list[dict]:
    """Use the first tool to open the conversation, later a tool the student's words name."""
    if not tools:
        return []
    students = [turn for turn in transcript if turn.get("role") == "assistant"]
    student = str(students[-1].get("content") or "") if students else ""
    if turn_number == 0:
        chosen = tools[0]
    else:
        mentioned = stems(student)
        chosen = next(
            (
                tool
                for tool in tools
                if stems(str(tool.get("name", "")).replace("_", " ")) & mentioned
            ),
            None,
        )
    if chosen is None:
        return []
    filler = str(scenario.get("context") or student or "student question")[:80]
    arguments = conform({}, chosen.get("schema") or {"type": "object"}, filler)
    return [{"name": str(chosen.get("name", "")), "arguments": arguments}]
