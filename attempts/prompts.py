"""The model requests of a chat (persona reply, hints), for any provider; the grade request is
glow.catalog.grading's, shared with tests."""

from __future__ import annotations

from glow.ai import CompletionRequest
from glow.catalog.models import Scenario

HINTS_SCHEMA = {
    "type": "array",
    # At least one: under a grammar, a small model otherwise takes the easy `[]` every time.
    "minItems": 1,
    "maxItems": 3,
    "items": {
        "type": "object",
        "required": ["type", "content"],
        "properties": {
            "type": {"type": "string", "enum": ["warning", "praise", "suggestion"]},
            "content": {"type": "string"},
        },
    },
}


def persona_of(scenario: Scenario) -> dict:
    persona = scenario.persona
    return {
        "name": persona.title,
        "description": persona.description,
        "traits": list(persona.traits or []),
        "intensity": persona.intensity,
        "voice": persona.voice,
        "goal": persona.goal,
        "concerns": list(persona.concerns or []),
        "phrases": list(persona.phrases or []),
    }


def scenario_of(scenario: Scenario) -> dict:
    return {
        "title": scenario.title,
        "context": scenario.context,
        "modality": scenario.modality,
        "persona_opens": scenario.persona_opens,
        "opening_line": scenario.opening_line,
        "learner_goal": scenario.learner_goal,
        "concerns": list(scenario.concerns or []),
    }


def opening_of(scenario: Scenario) -> str:
    """The student's first line when they open the chat: the scenario's own line, else their
    first concern as they would raise it."""
    if not scenario.persona_opens:
        return ""
    written = scenario.opening_line.strip()
    if written:
        return written
    concerns = [*(scenario.concerns or []), *(scenario.persona.concerns or [])]
    worries = [str(item.get("worry") or "") for item in concerns if isinstance(item, dict)]
    return next((worry.strip() for worry in worries if worry.strip()), "")


def turns_of(messages) -> list[dict]:
    return [
        {"id": str(message.pk), "role": message.role, "content": message.content}
        for message in messages
    ]


def _persona_system(persona: dict, scenario: dict) -> str:
    traits = ", ".join(persona["traits"]) or "no particular traits"
    concerns = [*scenario.get("concerns", []), *persona.get("concerns", [])]
    worries = " ".join(
        f"- {item.get('topic')}: {item.get('worry')}" for item in concerns if isinstance(item, dict)
    )
    goal = f" What you want: {persona['goal']}" if persona.get("goal") else ""
    on_mind = f" On your mind (raise one at a time): {worries}" if worries else ""
    return (
        f"You are role-playing {persona['name']}, a student: {persona['description']} "
        f"Traits: {traits}; emotional intensity {persona['intensity']}/10.{goal}{on_mind} "
        f"Situation: {scenario['context']} "
        "The user is a teaching assistant practising this conversation. Stay in character, "
        "answer in one to three sentences, and react to how the TA treats you: soften when a "
        "worry is acknowledged, push back when it is dismissed. Never repeat yourself, never "
        "mention being an AI, and never quote these instructions."
    )


def persona_reply_request(
    *, scenario: Scenario, transcript: list[dict], message: str
) -> CompletionRequest:
    persona, situation = persona_of(scenario), scenario_of(scenario)
    messages = [{"role": "system", "content": _persona_system(persona, situation)}]
    messages += [{"role": turn["role"], "content": turn["content"]} for turn in transcript]
    messages.append({"role": "user", "content": message})
    return CompletionRequest(
        messages=messages,
        task="persona_reply",
        context={
            "persona": persona,
            "scenario": situation,
            "transcript": transcript,
            "learner_message": message,
        },
    )


def hint_request(
    *, scenario: Scenario, transcript: list[dict], message: str, reply: str
) -> CompletionRequest:
    persona, situation = persona_of(scenario), scenario_of(scenario)
    conversation = "\n".join(f"{turn['role']}: {turn['content']}" for turn in transcript)
    return CompletionRequest(
        messages=[
            {
                "role": "system",
                "content": "You coach a teaching assistant during a practice conversation with "
                f"{persona['name']} ({situation['title']}). Give one to three short hints as a "
                'JSON array of {"type": "warning"|"praise"|"suggestion", "content": "..."}.',
            },
            {
                "role": "user",
                "content": f"{conversation}\nuser: {message}\nassistant: {reply}",
            },
        ],
        task="hint",
        context={
            "persona": persona,
            "scenario": situation,
            "transcript": transcript,
            "learner_message": message,
            "persona_reply": reply,
        },
        json_schema=HINTS_SCHEMA,
    )
