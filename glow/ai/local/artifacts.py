"""New artifacts (personas, scenarios, rubrics, ...) drafted from a user's instructions."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from glow.ai.local.declarations import FAMILY_FIELDS, FAMILY_TITLES
from glow.ai.local.dialogue import temperament_of
from glow.ai.local.grading import CONCEPT_CUES
from glow.ai.local.lines import fallback_line
from glow.ai.local.text import STOPWORDS, clip_words, count_phrases, keywords, seeded_random

DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "persona": (
        "name",
        "title",
        "description",
        "traits",
        "intensity",
        "voice",
        "goal",
        "concerns",
        "phrases",
    ),
    "scenario": (
        "title",
        "description",
        "context",
        "learning_objectives",
        "learner_goal",
        "persona_opens",
        "opening_line",
    ),
    "rubric": ("title", "description", "groups"),
    "agent": ("name", "title", "description", "system_prompt"),
    "field": ("title", "description", "name", "type", "enum_values", "required", "default"),
    "parameter": ("title", "description", "temperature", "top_p", "max_tokens", "seed"),
}

TRAIT_WORDS = (
    "angry", "frustrated", "hostile", "defensive", "impatient", "sarcastic", "anxious",
    "nervous", "worried", "stressed", "overwhelmed", "confused", "lost", "unsure", "entitled",
    "demanding", "argumentative", "skeptical", "stubborn", "shy", "quiet", "withdrawn",
    "disengaged", "eager", "curious", "enthusiastic", "motivated", "friendly", "polite",
    "perfectionist", "grade-focused", "aggressive", "passive", "evasive", "scared", "afraid",
    "pleading", "apologetic", "rude", "confrontational", "persistent", "calm", "confident",
    "cheerful", "hesitant", "distracted", "tired", "bored", "proud", "honest",
)  # fmt: skip
# How strongly a trait runs when the instructions give no intensity.
HOT_TRAITS = ("aggressive", "angry", "hostile", "furious", "confrontational", "rude")
_ADJECTIVE_BEFORE_STUDENT = re.compile(
    r"\b([a-z][a-z-]{3,})\s+(?:student|learner|freshman|sophomore|undergrad\w*|ta)\b",
    re.IGNORECASE,
)
_NOT_TRAITS = frozenset(
    [
        "create",
        "make",
        "generate",
        "write",
        "design",
        "build",
        "draft",
        "new",
        "first",
        "second",
        "third",
        "fourth",
        "graduate",
        "international",
        "transfer",
        "year",
        "older",
        "younger",
        "male",
        "female",
        "another",
        "their",
    ]
)
_TOPIC = re.compile(
    r"\b(?:in|about|regarding|over|with|for|on)\s+((?:the|their|his|her)\s+)?(?:(?:a|an)\s+)?"
    r"((?:[A-Z0-9][\w-]*|[a-z][\w-]{3,})(?:\s+(?:[A-Z0-9][\w-]*|[a-z][\w-]{3,})){0,2})"
)
_NOT_TOPIC = frozenset(
    [
        "every",
        "each",
        "reply",
        "replies",
        "sentence",
        "answer",
        "message",
        "intensity",
        "level",
        "office",
        "hours",
    ]
)
_STARTS_WITH = re.compile(
    r"\b(?:starts|begins|opens)\s+(?:every|each)\s+\w+\s+with\s+[\"']?([^\"',;]+?)[\"']?"
    r"(?:[,;]|$)",
    re.IGNORECASE,
)
_OPENS = ("opens the conversation", "starts the conversation", "speaks first", "storms in",
          "comes in", "walks in", "barges in", "opens with")  # fmt: skip
VOICE_WORDS = ("formal", "casual", "slang", "terse", "sarcastic", "polite", "rambling")
NAMES = ("Maya Chen", "Jordan Reyes", "Priya Natarajan", "Sam Okafor", "Elena Petrova",
         "Marcus Lee", "Aisha Rahman", "Diego Alvarez", "Hannah Kim", "Tomás Silva")  # fmt: skip

STANDARD_LIBRARY = {
    "empathy": ("Acknowledges feelings",
                "Names and validates the student's emotions before problem-solving."),
    "questions": ("Asks open questions",
                  "Asks open questions to understand the student's perspective."),
    "explanation": ("Explains policy clearly",
                    "Explains the relevant policy or criteria and the reason behind it."),
    "next_steps": ("Agrees on next steps",
                   "Ends with a concrete, agreed plan and follow-up."),
    "respect": ("Keeps a respectful tone",
                "Stays calm and professional and avoids dismissive language."),
}  # fmt: skip

_LEADING_FILLER = re.compile(
    r"^(?:please\s+)?(?:(?:create|make|generate|write|design|build|draft|add|give me|i want|"
    r"we need)\b\s*)?(?:(?:an|a|the|new)\b\s*)*",
    re.IGNORECASE,
)
_INTENSITY = re.compile(r"intensity\s*(?:of|level|is|:|=)?\s*(\d+)", re.IGNORECASE)
_NAMED = re.compile(r"\b(?:named|called|name:?)\s+([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)")
_POINTS = re.compile(r"(\d+)\s*points?", re.IGNORECASE)


def generate_artifact(context: dict) -> dict:
    family = str(context.get("family") or "artifact")
    instructions = [str(item).strip() for item in context.get("instructions") or [] if item]
    text = " ".join(instructions)
    rng = seeded_random("generate_artifact", context)
    fields = dict(context.get("fields") or {}) or dict.fromkeys(DEFAULT_FIELDS.get(family, ()), "")
    titled = FAMILY_TITLES.get(family)
    data = {
        "title": titled(text) if titled and text else title(instructions, family),
        "description": description(instructions, family),
    }
    for name, spec in fields.items():
        if name not in data:
            data[name] = fill_field(name, str(spec), family, text, rng)
    return data


def title(instructions: list[str], family: str) -> str:
    first = re.split(r"[,;.:\n]", instructions[0])[0] if instructions else ""
    cleaned = _LEADING_FILLER.sub("", first).strip()
    if not cleaned:
        return f"New {family}"
    words = cleaned.split()[:8]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def description(instructions: list[str], family: str) -> str:
    if not instructions:
        return f"A {family} drafted by the local simulator."
    joined = " ".join(
        item if item.endswith((".", "!", "?")) else f"{item}." for item in instructions
    )
    return joined[:1].upper() + joined[1:]


def fill_field(name: str, spec: str, family: str, text: str, rng: random.Random) -> object:
    filler = FAMILY_FIELDS.get(family, {}).get(name) or _NAMED_FIELDS.get(name)
    if filler is not None:
        return filler(text, family, rng)
    return _by_type(name, spec.lower(), text)


def _name(text: str, family: str, rng: random.Random) -> str:
    match = _NAMED.search(text)
    if match:
        return match.group(1)
    return rng.choice(NAMES) if family == "persona" else title([text], family)


def _traits(text: str, family: str, rng: random.Random) -> list[str]:
    """The traits the instructions name, in their order; never ones they do not."""
    lowered = text.lower()
    found = sorted(
        (match.start(), word)
        for word in TRAIT_WORDS
        if (match := re.search(rf"\b{re.escape(word)}\b", lowered))
    )
    traits = [word for _, word in found]
    for match in _ADJECTIVE_BEFORE_STUDENT.finditer(text):
        word = match.group(1).lower()
        if word not in traits and word not in _NOT_TRAITS and not word.endswith("ly"):
            traits.append(word)
    return traits[:8] or ["reserved"]


def _intensity(text: str, family: str, rng: random.Random) -> int:
    match = _INTENSITY.search(text)
    if match:
        return max(1, min(10, int(match.group(1))))
    if count_phrases(text.lower(), ("extremely", "very", "furious", "highly", "really")):
        return 8
    if count_phrases(text.lower(), HOT_TRAITS):
        return 7
    if count_phrases(text.lower(), ("slightly", "mildly", "a bit", "somewhat", "a little")):
        return 3
    return 5


def _voice(text: str, family: str, rng: random.Random) -> str:
    lowered = text.lower()
    found = [word for word in VOICE_WORDS if re.search(rf"\b{word}\b", lowered)]
    return ", ".join(found) if found else "casual, first-person student voice"


def topic_of(text: str) -> str:
    """What the instructions say the student is about ("in CS-180" gives "CS-180"), or ""."""
    text = _STARTS_WITH.sub(" ", text)
    for match in _TOPIC.finditer(text):
        kept = []
        for word in match.group(2).split():
            if word.lower() in _NOT_TOPIC or word.lower() in STOPWORDS:
                break
            kept.append(word)
        if kept:
            article = "the " if match.group(1) else ""
            return article + " ".join(kept)
    return ""


def _temperament(text: str) -> str:
    return temperament_of(" ".join(_traits(text, "persona", random.Random(0))), text.lower())


def _concerns(text: str, family: str, rng: random.Random) -> list[dict]:
    topic = topic_of(text)
    if not topic:
        return []
    temperament = _temperament(text)
    return [
        {
            "topic": topic,
            "worry": fallback_line("worry", temperament, topic),
            "ask": fallback_line("ask", temperament, topic),
            "pushback": fallback_line("pushback", temperament, topic),
        }
    ]


def _goal(text: str, family: str, rng: random.Random) -> str:
    topic = topic_of(text)
    return fallback_line("want", _temperament(text), topic) if topic else ""


def _phrases(text: str, family: str, rng: random.Random) -> list[str]:
    return [match.group(1).strip() for match in _STARTS_WITH.finditer(text)]


def _learner_goal(text: str, family: str, rng: random.Random) -> str:
    topic = topic_of(text)
    about = f" about {topic}" if topic else ""
    return f"Acknowledge the student's concern{about}, explain it plainly and agree a next step."


def _persona_opens(text: str, family: str, rng: random.Random) -> bool:
    return bool(count_phrases(text.lower(), _OPENS))


def _opening_line(text: str, family: str, rng: random.Random) -> str:
    quoted = re.search(r"[\"“]([^\"”]{3,300})[\"”]", text)
    if quoted:
        return quoted.group(1).strip()
    if not _persona_opens(text, family, rng):
        return ""
    topic = topic_of(text)
    return fallback_line("worry", _temperament(text), topic) if topic else ""


def _context(text: str, family: str, rng: random.Random) -> str:
    return description([text], family) if text else "A student comes to office hours."


def _objectives(text: str, family: str, rng: random.Random) -> list[str]:
    concepts = _concepts(text) or ["empathy", "questions", "next_steps"]
    return [STANDARD_LIBRARY[concept][1] for concept in concepts]


def _groups(text: str, family: str, rng: random.Random) -> list[dict]:
    standards = _standards(text, family, rng)
    rapport = [item for item in standards if item["concept"] in ("empathy", "respect")]
    solving = [item for item in standards if item not in rapport]
    halves = (
        [("Rapport", rapport), ("Problem solving", solving)]
        if rapport and solving
        else [("Communication", standards)]
    )
    return [
        {"id": f"g{index}", "name": label, "standards": [_public(item) for item in items]}
        for index, (label, items) in enumerate(halves, start=1)
    ]


def _standards(text: str, family: str, rng: random.Random) -> list[dict]:
    points = _POINTS.search(text)
    each = int(points.group(1)) if points else 5
    concepts = _concepts(text) or ["empathy", "questions", "explanation"]
    return [
        {
            "id": f"s{index}",
            "name": STANDARD_LIBRARY[concept][0],
            "description": STANDARD_LIBRARY[concept][1],
            "points": each,
            "concept": concept,
        }
        for index, concept in enumerate(concepts, start=1)
    ]


def _public(standard: dict) -> dict:
    return {key: value for key, value in standard.items() if key != "concept"}


def _concepts(text: str) -> list[str]:
    return [name for name, cues in CONCEPT_CUES.items() if count_phrases(text.lower(), cues)]


def _system_prompt(text: str, family: str, rng: random.Random) -> str:
    return f"You are a patient, supportive teaching assistant. {description([text], family)}"


def _by_type(name: str, spec: str, text: str) -> object:
    if any(hint in spec for hint in ("list", "array", "[]")):
        return keywords(text)[:5]
    if any(hint in spec for hint in ("int", "number", "float")):
        numbers = re.findall(r"\d+", text)
        return int(numbers[0]) if numbers else 0
    if "bool" in spec:
        return True
    if any(hint in spec for hint in ("dict", "object", "mapping")):
        return {}
    label = name.replace("_", " ").capitalize()
    return f"{label}: {clip_words(text, 40)}" if text else label


_NAMED_FIELDS: dict[str, Callable[[str, str, random.Random], object]] = {
    "name": _name,
    "traits": _traits,
    "intensity": _intensity,
    "voice": _voice,
    "context": _context,
    "learning_objectives": _objectives,
    "objectives": _objectives,
    "goals": _objectives,
    "groups": _groups,
    "standards": lambda text, family, rng: [
        _public(item) for item in _standards(text, family, rng)
    ],
    "system_prompt": _system_prompt,
    "concerns": _concerns,
    "goal": _goal,
    "phrases": _phrases,
    "learner_goal": _learner_goal,
    "persona_opens": _persona_opens,
    "opening_line": _opening_line,
}
