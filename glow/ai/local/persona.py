"""Simulated student replies: the persona's temperament and intensity react to the learner."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from glow.ai.local.text import (
    DISMISSIVE,
    EMPATHY,
    WEAK_WORDS,
    count_phrases,
    keywords,
    salient,
    seeded_random,
    sentences,
    signals,
    stems,
    topic_phrase,
)

# Checked in order; traits weigh double the free-text description.
TEMPERAMENT_CUES: dict[str, tuple[str, ...]] = {
    "upset": ("angry", "frustrat", "hostile", "irritat", "furious", "defensive", "aggressive",
              "upset", "annoyed", "bitter", "rude"),
    "anxious": ("anxious", "nervous", "worr", "stress", "panic", "overwhelm", "insecure",
                "fearful", "perfectionis"),
    "confused": ("confus", "lost", "unsure", "uncertain", "struggl", "puzzled",
                 "disorganized", "behind"),
    "demanding": ("entitled", "demanding", "argumentative", "skeptic", "stubborn",
                  "competitive", "grade-focused", "pushy", "persistent"),
    "withdrawn": ("shy", "quiet", "withdrawn", "reserved", "disengaged", "apathetic",
                  "unmotivated", "bored", "detached"),
    "eager": ("eager", "curious", "enthusias", "motivated", "friendly", "polite", "diligent"),
}  # fmt: skip

REACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "upset": {
        "dismissive": (
            "Wow. That's exactly the kind of answer that makes this worse.",
            "Are you serious right now? That's not helping at all.",
        ),
        "empathy": (
            "Okay... thanks for actually listening, I guess.",
            "Fine. At least someone is hearing me out.",
        ),
        "question": ("You want to know about {kw}? Fine.", "Why are you asking me about {kw}?"),
        "explanation": (
            "I get that you're explaining the {kw}, but it still feels unfair.",
            "That's a nice explanation of the {kw}, but it doesn't fix anything.",
        ),
        "plan": (
            "Fine, {plan}, but I want an actual answer this time.",
            "Okay, {plan}. But if that doesn't fix this, I'm going to the department.",
        ),
        "statement": (
            "I don't see how the {kw} is the point here.",
            "Okay, but the {kw} isn't what I'm upset about.",
        ),
        "silence": ("Hello? Are you even going to say anything?",),
    },
    "anxious": {
        "dismissive": (
            "Oh. Okay. I guess I'll just try to figure it out on my own.",
            "Sorry, I didn't mean to be a bother.",
        ),
        "empathy": (
            "Thank you, that actually helps a little.",
            "Okay, it helps to hear that, honestly.",
        ),
        "question": (
            "About {kw}? I'm not sure, I keep second-guessing myself.",
            "Um, {kw}... I've been worrying about that a lot.",
        ),
        "explanation": (
            "Okay, so the {kw}... I think I follow, but I'm still nervous.",
            "That makes a bit more sense, but what if I get the {kw} wrong again?",
        ),
        "plan": (
            "Okay, that would really help. Is {plan} going to be enough?",
            "Thank you, having a plan makes me feel a bit better.",
        ),
        "statement": (
            "Sorry, does the {kw} mean I'm in trouble?",
            "I keep thinking about the {kw} and it stresses me out.",
        ),
        "silence": ("Um... is everything okay? Did I do something wrong?",),
    },
    "confused": {
        "dismissive": (
            "Oh... okay, sorry, I didn't mean to waste your time.",
            "I still don't really get it, but okay.",
        ),
        "empathy": (
            "Yeah, thanks, I think I'm just really lost.",
            "Thanks. I honestly don't know where I went wrong.",
        ),
        "question": (
            "Um, {kw}? I'm honestly not sure how to answer that.",
            "I'm not sure what you mean about {kw}.",
        ),
        "explanation": (
            "Wait, so the {kw} means what exactly for me?",
            "I think I kind of follow the part about the {kw}?",
        ),
        "plan": (
            "Okay, {plan}... so what should I bring?",
            "Sure, but what exactly are we doing at {plan}?",
        ),
        "statement": (
            "Sorry, what does the {kw} have to do with it?",
            "I don't really understand the {kw} part.",
        ),
        "silence": ("Um, sorry, I'm not sure what to say either.",),
    },
    "demanding": {
        "dismissive": (
            "That's not an acceptable answer.",
            "I'm going to need a better answer than that.",
        ),
        "empathy": (
            "I appreciate that, but I still want this resolved.",
            "Fine, thank you, but feelings aren't really the issue here.",
        ),
        "question": (
            "Why does the {kw} matter? The issue is obvious.",
            "About {kw}: I already explained that.",
        ),
        "explanation": (
            "I understand the {kw}, I just don't agree with it.",
            "That {kw} explanation doesn't change my position.",
        ),
        "plan": (
            "Fine, as long as {plan} ends with my grade corrected.",
            "I'll come, but I expect {plan} to resolve this.",
        ),
        "statement": (
            "Sure, {kw}, but that's beside the point.",
            "I'm not here to talk about {kw}.",
        ),
        "silence": ("I'm waiting for an answer.",),
    },
    "withdrawn": {
        "dismissive": ("Okay. Never mind.", "Fine."),
        "empathy": ("...Yeah. Thanks.", "I guess. Thanks for asking."),
        "question": ("{Kw}? I don't know.", "Not sure about {kw}."),
        "explanation": ("Okay. {Kw}. Got it, I think.", "Mm. {Kw}, okay."),
        "plan": ("Okay. I'll try.", "Sure, {plan}. I guess."),
        "statement": ("Okay.", "Sure, {kw}."),
        "silence": ("...",),
    },
    "eager": {
        "dismissive": (
            "Oh, sorry, I thought this was something we could talk about.",
            "Oh. Okay, I didn't realize that.",
        ),
        "empathy": ("Thanks so much, I really appreciate that!", "That's kind of you, thank you!"),
        "question": ("Good question about {kw}!", "Oh, {kw}? Sure, happy to explain."),
        "explanation": (
            "Oh, that makes sense about the {kw}, thanks!",
            "Got it, so the {kw} works like that. Cool.",
        ),
        "plan": ("Perfect, {plan} works for me!", "Great, I'll prepare for {plan}."),
        "statement": ("Interesting, I hadn't thought about the {kw}.", "Oh, {kw}, right!"),
        "silence": ("Hi! Is now a good time to talk?",),
    },
}

DETAILS: dict[str, tuple[str, ...]] = {
    "upset": ("This whole thing with {topic} has been a mess from the start.",
              "Nobody even told me the {detail} would count like that."),
    "anxious": ("It's {topic}, and I keep worrying about the {detail}.",
                "I've lost sleep over the {detail}, honestly."),
    "confused": ("It's about {topic}, I think? The {detail} part loses me.",
                 "I read everything about the {detail} and still didn't get it."),
    "demanding": ("It's {topic}, and the {detail} was handled unfairly.",
                  "I put real work into the {detail} and it wasn't recognized."),
    "withdrawn": ("Just {topic}, I guess.",
                  "The {detail}. Whatever."),
    "eager": ("It's about {topic}; I really want to get the {detail} right.",
              "I've been reading up on the {detail} for {topic}."),
}  # fmt: skip

CLOSINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "upset": {
        "high": ("So what are you actually going to do about it?", "I want this fixed. Now."),
        "mid": ("I just want this fixed.", "Can you actually help or not?"),
        "low": ("I'd just like it sorted out.", "Can we figure this out?"),
    },
    "anxious": {
        "high": ("Is this going to ruin my whole semester?", "I really can't fail this."),
        "mid": ("Is my grade going to be okay?", "I just don't want to fall behind."),
        "low": ("Could you tell me what to focus on?", "Is that normal?"),
    },
    "confused": {
        "high": ("I have no idea what I'm supposed to do now.", "Can you start from the beginning?"),
        "mid": ("Can you explain it another way?", "What should I do first?"),
        "low": ("Could you give me an example?", "Does that sound right?"),
    },
    "demanding": {
        "high": ("I want this escalated today.", "I expect this to be corrected."),
        "mid": ("I expect a real answer.", "Who else can I talk to about this?"),
        "low": ("Could you take another look?", "I'd like you to reconsider."),
    },
    "withdrawn": {
        "high": ("Can I go now?", "It doesn't matter anyway."),
        "mid": ("I don't know.", "Whatever works."),
        "low": ("Maybe.", "I guess."),
    },
    "eager": {
        "high": ("What should I work on next?", "Could we go over it together right now?"),
        "mid": ("What would you suggest I try next?", "Is there anything I should read?"),
        "low": ("Does that sound okay?", "Thanks for your time!"),
    },
}  # fmt: skip

PLAN_NOUNS = ("office hours", "meeting", "regrade", "extension", "email", "call", "review",
              "resubmission", "plan")  # fmt: skip
_HEAT_WORDS = {"upset": ("Honestly, ", "Ugh. ", "Look, "), "demanding": ("Look, ",)}
_HEDGES = (", I guess.", ". Sorry.")
_MAX_SENTENCES = 4
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CONTRACTIONS = {"I'm": "I am", "don't": "do not", "can't": "cannot", "it's": "it is",
                 "It's": "It is", "That's": "That is", "that's": "that is", "I've": "I have",
                 "didn't": "did not", "doesn't": "does not", "isn't": "is not",
                 "wasn't": "was not", "you're": "you are", "I'd": "I would"}  # fmt: skip


@dataclass(frozen=True)
class Persona:
    name: str
    temperament: str
    intensity: int
    voice: str


def read_persona(raw: dict) -> Persona:
    traits = " ".join(str(trait) for trait in raw.get("traits") or []).lower()
    description = str(raw.get("description") or "").lower()
    scores = {
        temperament: 2 * count_phrases(traits, cues) + count_phrases(description, cues)
        for temperament, cues in TEMPERAMENT_CUES.items()
    }
    best = max(scores, key=lambda temperament: scores[temperament])
    return Persona(
        name=str(raw.get("name") or "Student"),
        temperament=best if scores[best] else "eager",
        intensity=_clamp(int(raw.get("intensity") or 5)),
        voice=str(raw.get("voice") or "").lower(),
    )


def _clamp(value: int, low: int = 1, high: int = 10) -> int:
    return max(low, min(high, value))


def effective_intensity(persona: Persona, transcript: list[dict], message: str) -> int:
    """Empathy calms the student over the conversation; dismissiveness inflames them."""
    earlier = " ".join(turn.get("content", "") for turn in transcript if turn.get("role") == "user")
    history = count_phrases(earlier, DISMISSIVE) - count_phrases(earlier, EMPATHY)
    now = signals(message)
    return _clamp(persona.intensity + max(-3, min(3, history)) + 2 * now.dismissive - now.empathy)


def tier(intensity: int) -> str:
    return "high" if intensity >= 7 else "mid" if intensity >= 4 else "low"


def persona_reply(context: dict) -> str:
    persona = read_persona(context.get("persona") or {})
    scenario = context.get("scenario") or {}
    transcript = context.get("transcript") or []
    message = str(context.get("learner_message") or "")
    rng = seeded_random("persona_reply", context)
    intensity = effective_intensity(persona, transcript, message)
    move = signals(message).main_move
    fills = _fills(message, scenario, rng)
    parts = _compose(persona.temperament, move, tier(intensity), rng)
    text = " ".join(part.format(**fills) for part in parts)
    text = _apply_voice(_apply_intensity(text, persona.temperament, intensity, rng), persona)
    return " ".join(_SENTENCE_BREAK.split(text)[:_MAX_SENTENCES])


def _fills(message: str, scenario: dict, rng: random.Random) -> dict[str, str]:
    title = str(scenario.get("title") or "this class")
    scenario_text = f"{title} {scenario.get('context') or ''}"
    learner_words = salient(_question_text(message) or message, stems(scenario_text))
    title_words = set(keywords(title))
    details = [
        word
        for word in salient(str(scenario.get("context") or ""))
        if word not in title_words and word not in WEAK_WORDS
    ]
    keyword = next(iter(learner_words), details[0] if details else "assignment")
    return {
        "kw": keyword,
        "plan": _plan(message),
        "Kw": keyword[:1].upper() + keyword[1:],
        "topic": topic_phrase(title),
        "detail": rng.choice(details[:4]) if details else "assignment",
    }


def _plan(message: str) -> str:
    lowered = message.lower()
    return next((f"the {noun}" for noun in PLAN_NOUNS if noun in lowered), "that plan")


def _question_text(message: str) -> str:
    return " ".join(part for part in sentences(message) if part.endswith("?"))


def _compose(temperament: str, move: str, level: str, rng: random.Random) -> list[str]:
    parts = [rng.choice(REACTIONS[temperament][move])]
    if move == "silence":
        return parts
    if move in ("question", "empathy", "statement") or rng.random() < 0.5:
        parts.append(rng.choice(DETAILS[temperament]))
    parts.append(rng.choice(CLOSINGS[temperament][level]))
    limit = {"high": 4, "mid": 3, "low": 2}[level] - (temperament == "withdrawn")
    return parts[: max(1, limit)]


def _apply_intensity(text: str, temperament: str, intensity: int, rng: random.Random) -> str:
    if intensity >= 8 and temperament in _HEAT_WORDS:
        prefix = rng.choice(_HEAT_WORDS[temperament])
        text = prefix + (text if prefix.endswith(". ") else _lower_first(text))
    if intensity >= 8 and temperament == "upset":
        text = re.sub(r"\.(\s|$)", r"!\1", text, count=1)
    if intensity <= 2 and temperament != "eager" and text.endswith("."):
        text = text[:-1] + rng.choice(_HEDGES)
    return text


def _lower_first(text: str) -> str:
    if re.match(r"I\b", text):
        return text
    return text[:1].lower() + text[1:]


def _apply_voice(text: str, persona: Persona) -> str:
    if "formal" in persona.voice:
        for short, long in _CONTRACTIONS.items():
            text = re.sub(rf"\b{re.escape(short)}\b", long, text)
    if any(cue in persona.voice for cue in ("casual", "slang", "texting")):
        text = text.replace("Honestly, ", "Tbh, ").replace("I guess", "I guess lol")
    return text
