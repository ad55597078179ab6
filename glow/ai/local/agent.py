"""The next turn of an AI teaching-assistant agent talking to a simulated student.

Transcript roles follow the attempt's convention: "user" is the teaching assistant (here
the agent), "assistant" is the student persona.
"""

from __future__ import annotations

from glow.ai.local.persona import read_persona
from glow.ai.local.text import salient, seeded_random, signals, stems, topic_phrase
from glow.ai.schema import conform


def agent_turn(context: dict) -> tuple[str, dict | None]:
    """The agent's message, plus {"tool_calls": [...]} on turns where it uses a tool."""
    agent = context.get("agent") or {}
    transcript = context.get("transcript") or []
    scenario = context.get("scenario") or {}
    persona = read_persona(context.get("persona") or {})
    student = _last(transcript, "assistant")
    turn_number = sum(1 for turn in transcript if turn.get("role") == "user")
    rng = seeded_random("agent_turn", context)
    topic = topic_phrase(str(scenario.get("title") or ""), "your course")
    name = persona.name.split()[0]
    if turn_number == 0:
        text = rng.choice(
            (
                f"Hi {name}, thanks for coming in. What would you like to talk about regarding {topic}?",
                f"Hello {name}, I'm glad you reached out. How are things going with {topic}?",
            )
        )
    else:
        text = " ".join(_reply_parts(student, persona.temperament, turn_number, topic))
    if "concise" in str(agent.get("system_prompt") or "").lower():
        text = text.split(". ")[0].rstrip(".") + "."
    calls = _tool_calls(agent.get("tools") or [], turn_number, student, scenario)
    return text, ({"tool_calls": calls} if calls else None)


def _last(transcript: list[dict], role: str) -> str:
    turns = [turn for turn in transcript if turn.get("role") == role]
    return str(turns[-1].get("content") or "") if turns else ""


def _reply_parts(student: str, temperament: str, turn_number: int, topic: str) -> list[str]:
    seen = signals(student)
    focus = next(iter(salient(student)), "assignment")
    parts = []
    if temperament in ("upset", "anxious", "demanding") or seen.empathy:
        parts.append(f"I can hear that {topic} has been really stressful, and that makes sense.")
    if seen.questions:
        parts.append(
            f"To answer your question about the {focus}: the policy is there so everyone is "
            "graded the same way, and I'll walk you through how it applies to you."
        )
    if turn_number >= 2:
        parts.append("Let's set up a time at office hours this week to go through it together.")
    else:
        parts.append(f"Can you tell me more about what happened with the {focus}?")
    return parts


def _tool_calls(tools: list[dict], turn_number: int, student: str, scenario: dict) -> list[dict]:
    """Use the first tool to open the conversation, later a tool the student's words name."""
    if not tools:
        return []
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
    filler = str(scenario.get("title") or student or "student question")
    arguments = conform({}, chosen.get("schema") or {"type": "object"}, filler)
    return [{"name": str(chosen.get("name", "")), "arguments": arguments}]
