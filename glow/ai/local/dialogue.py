"""The simulated student's model of a chat: who they are, what worries them, and where things stand.

A `Student` is read from the persona and the scenario (traits, goal, concerns). A `State` is
replayed from the transcript: which concerns the student has raised, which the learner has
acknowledged, resolved or dismissed, whether a next step was agreed, and the student's mood.
Replies, hints, grades and the simulated agent all read the same state, so they agree.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field

from glow.ai.local.text import (
    DISMISSIVE,
    DOMAIN_WORDS,
    EMPATHY,
    EXPLANATION,
    NEXT_STEPS,
    OPEN_QUESTION_STARTS,
    STOPWORDS,
    WEAK_WORDS,
    count_phrases,
    keywords,
    salient,
    sentences,
    stem,
    stems,
    words,
)

# Checked in order; traits weigh double the free-text description.
TEMPERAMENT_CUES: dict[str, tuple[str, ...]] = {
    "upset": ("angry", "frustrat", "hostile", "irritat", "furious", "aggressive", "upset",
              "annoyed", "bitter", "rude", "confrontational"),
    "anxious": ("anxious", "nervous", "worr", "stress", "panic", "overwhelm", "insecure",
                "fearful", "perfectionis", "scared", "afraid", "pleading", "apologetic"),
    "confused": ("confus", "lost", "unsure", "uncertain", "struggl", "puzzled",
                 "disorganized", "behind"),
    "demanding": ("entitled", "demanding", "argumentative", "skeptic", "stubborn",
                  "competitive", "grade-focused", "pushy", "persistent", "defensive"),
    "withdrawn": ("shy", "quiet", "withdrawn", "reserved", "disengaged", "apathetic",
                  "unmotivated", "bored", "detached", "passive", "evasive"),
    "eager": ("eager", "curious", "enthusias", "motivated", "friendly", "polite", "diligent"),
}  # fmt: skip

EMOTIONAL = ("upset", "anxious", "demanding")
GREETINGS = ("hi", "hello", "hey", "good morning", "good afternoon", "good evening", "welcome")
MORE_DISMISSIVE = ("just read", "not my job", "figure it out", "whining", "stop asking",
                   "i don't have time", "you copied", "you cheated", "grade is final",
                   "nothing to discuss", "google it", "that's on you", "not a big deal")  # fmt: skip
ALL_DISMISSIVE = (*DISMISSIVE, *MORE_DISMISSIVE)
ACKNOWLEDGE = (*EMPATHY, "hear you", "i get it", "i get why", "that's hard", "that is hard",
               "no wonder", "of course you", "not accusing", "it's okay", "that's okay",
               "glad you came", "thanks for telling", "thanks for being honest", "honest with me",
               "i appreciate")  # fmt: skip

_QUESTION_KINDS: dict[str, tuple[str, ...]] = {
    "feelings": ("how are you", "how do you feel", "how are things", "feeling", "how's it going",
                 "doing okay", "are you okay"),
    "tried": ("what have you tried", "what did you try", "tried so far", "what have you done",
              "what did you do", "show me", "what do you have so far"),
    "want": ("what would help", "how can i help", "what do you need", "what do you want",
             "what would you like", "what are you hoping", "what outcome"),
    "account": ("what happened", "tell me more", "what's going on", "what is going on",
                "walk me through", "what's up", "what brings you", "what part", "which part",
                "what worries", "what's worrying", "say more", "can you explain", "what do you mean",
                "what would you like to talk", "talk about"),
}  # fmt: skip

_ABOUT = re.compile(
    r"\b(?:understand|about|regarding|with|over|for|on)\s+(?:(?:the|a|an|their|his|her|my)\s+)?"
    r"([a-z][a-z-]+(?:\s+[a-z][a-z-]+)?)"
)
# Where a conversation happens or how often, never what it is about.
_SETTING_WORDS = frozenset(
    """office hours every each whole entire another class course lecture student without
    within across toward towards upon whether giving""".split()  # noqa: SIM905 - prose list
)
_NAME_SPLIT = re.compile(r"[,(:;–—-]")
_CONCERN_TEXT_FIELDS = ("topic", "worry", "ask", "more", "pushback", "relief")


@dataclass(frozen=True)
class Concern:
    index: int
    topic: str
    worry: str
    ask: str
    more: str
    pushback: str
    relief: str
    cues: tuple[str, ...]
    cue_stems: frozenset[str]


@dataclass(frozen=True)
class Student:
    name: str
    temperament: str
    intensity: int
    voice: str
    traits: tuple[str, ...]
    goal: str
    phrases: tuple[str, ...]
    concerns: tuple[Concern, ...]
    vocabulary: frozenset[str]
    # Concerns guessed from the situation's words (none authored): any on-topic turn may
    # address the one in play, since its cues are only guesses.
    derived: bool = False


def first_name(raw_name: str) -> str:
    name = _NAME_SPLIT.split(str(raw_name or "").strip())[0].strip()
    return name.split()[0] if name else "the student"


def temperament_of(traits: str, description: str) -> str:
    scores = {
        temperament: 2 * count_phrases(traits, cues) + count_phrases(description, cues)
        for temperament, cues in TEMPERAMENT_CUES.items()
    }
    best = max(scores, key=lambda temperament: scores[temperament])
    return best if scores[best] else "eager"


def read_student(persona: dict, scenario: dict | None = None) -> Student:
    scenario = scenario or {}
    traits = tuple(str(trait) for trait in persona.get("traits") or [] if str(trait).strip())
    description = str(persona.get("description") or "")
    temperament = temperament_of(" ".join(traits).lower(), description.lower())
    concerns = _concerns(persona, scenario, temperament)
    goal = str(persona.get("goal") or "").strip()
    # The situation's words, not the persona's biography: "watched every lecture" must not
    # make "did you watch the game?" sound on topic.
    text = " ".join(
        [str(scenario.get("context") or ""), goal]
        + [" ".join(concern.cues) + " " + concern.topic for concern in concerns]
    )
    return Student(
        name=first_name(persona.get("name") or persona.get("title") or ""),
        temperament=temperament,
        intensity=max(1, min(10, int(persona.get("intensity") or 5))),
        voice=str(persona.get("voice") or "").lower(),
        traits=traits,
        goal=goal,
        phrases=tuple(str(p) for p in persona.get("phrases") or [] if str(p).strip()),
        concerns=concerns,
        vocabulary=frozenset(stems(text) - {stem(word) for word in WEAK_WORDS}),
        derived=not _authored(persona, scenario),
    )


def _authored(persona: dict, scenario: dict) -> bool:
    return any(
        isinstance(item, dict) and str(item.get("topic") or "").strip()
        for item in [*(scenario.get("concerns") or []), *(persona.get("concerns") or [])]
    )


def _concerns(persona: dict, scenario: dict, temperament: str) -> tuple[Concern, ...]:
    raw = [*(scenario.get("concerns") or []), *(persona.get("concerns") or [])]
    found: list[Concern] = []
    seen: set[str] = set()
    for item in raw:
        if not isinstance(item, dict) or not str(item.get("topic") or "").strip():
            continue
        topic = str(item["topic"]).strip()
        if topic.lower() in seen:
            continue
        seen.add(topic.lower())
        found.append(_concern(len(found), topic, item, temperament))
    if not found:
        found = [
            _concern(index, topic, {}, temperament)
            for index, topic in enumerate(_derived_topics(persona, scenario))
        ]
    return tuple(found)


def _concern(index: int, topic: str, item: dict, temperament: str) -> Concern:
    from glow.ai.local.lines import fallback_line

    texts = {name: str(item.get(name) or "").strip() for name in _CONCERN_TEXT_FIELDS}
    for name in ("worry", "ask", "more", "pushback", "relief"):
        if not texts[name]:
            texts[name] = fallback_line(name, temperament, topic)
    cues = tuple(str(cue).lower() for cue in item.get("cues") or [] if str(cue).strip())
    cue_stems = set(stems(" ".join(cues)))
    cue_stems |= {stem(word) for word in keywords(topic) if word not in WEAK_WORDS}
    return Concern(
        index=index,
        topic=topic,
        worry=texts["worry"],
        ask=texts["ask"],
        more=texts["more"],
        pushback=texts["pushback"],
        relief=texts["relief"],
        cues=cues,
        cue_stems=frozenset(cue_stems),
    )


def _derived_topics(persona: dict, scenario: dict) -> list[str]:
    """Without authored concerns: the situation's most topical phrases, e.g. "the titration
    question" (a content word before a course noun), else its most topical words."""
    text = f"{scenario.get('context') or ''} {persona.get('description') or ''}"
    name_words = {first_name(persona.get("name") or persona.get("title") or "").lower()}
    found: list[str] = []
    for sentence in sentences(text):
        for match in _ABOUT.finditer(sentence.lower()):
            kept = []
            for word in match.group(1).split():
                if word in STOPWORDS or word in WEAK_WORDS or word in _SETTING_WORDS:
                    break
                kept.append(word)
            if kept and len(kept[0]) >= 4 and not set(kept) & name_words:
                _add_topic(found, "the " + " ".join(kept))
    for sentence in sentences(text):
        tokens = [word.strip("'") for word in words(sentence)]
        for first, second in itertools.pairwise(tokens):
            if (
                second in DOMAIN_WORDS
                and second not in _SETTING_WORDS
                and len(first) >= 4
                and first not in STOPWORDS
                and first not in WEAK_WORDS
                and first not in _SETTING_WORDS
                and first not in name_words
            ):
                _add_topic(found, f"the {first} {second}")
    if len(found) < 2:
        nouns = [
            word
            for word in salient(text)
            if word in DOMAIN_WORDS and word not in name_words and word not in _SETTING_WORDS
        ]
        for word in nouns:
            _add_topic(found, f"the {word}")
    return found[:2] or ["this course"]


def _add_topic(found: list[str], phrase: str) -> None:
    """Keep `phrase` unless it says less than, or the same as, a topic already found."""
    mine = set(phrase.split()[1:])
    if not any(mine <= set(other.split()[1:]) for other in found):
        found.append(phrase)


# -- reading the learner --------------------------------------------------------------------


@dataclass(frozen=True)
class LearnerRead:
    """What one learner turn does, in the student's eyes."""

    text: str
    greeting: bool
    questions: tuple[str, ...]
    question_kind: str | None
    open_question: bool
    empathy: int
    dismissive: int
    explanation: int
    plan: int
    touched: tuple[int, ...]
    on_topic: bool

    @property
    def off_topic(self) -> bool:
        return not self.on_topic and not self.greeting and not self.empathy and not self.dismissive


@functools.lru_cache(maxsize=4096)
def read_learner(text: str, student: Student) -> LearnerRead:
    """Cached: a chat's earlier turns are read again for every reply, hint and grade."""
    return _read_learner(text, student)


def _read_learner(text: str, student: Student) -> LearnerRead:
    lowered = text.lower().strip()
    parts = sentences(text)
    asked = tuple(part for part in parts if part.endswith("?"))
    text_stems = stems(text)
    touched = tuple(
        concern.index
        for concern in student.concerns
        if (concern.cue_stems & text_stems) or any(cue in lowered for cue in concern.cues)
    )
    kind = _question_kind(" ".join(asked).lower()) if asked else None
    plan = count_phrases(text, NEXT_STEPS)
    explanation = count_phrases(text, EXPLANATION)
    # Shared vocabulary alone is weak evidence ("last night" is in many situations): it takes
    # three shared words, or one beside a move that engages (explaining, planning).
    shared = len(text_stems & student.vocabulary)
    course = sum(word in DOMAIN_WORDS for word in words(text))
    on_topic = bool(touched) or bool(kind) or shared >= 3 or course >= 2
    on_topic = on_topic or (bool(plan or explanation) and bool(shared or course))
    on_topic = on_topic or (bool(asked) and (shared >= 2 or course > 0))
    return LearnerRead(
        text=text,
        greeting=lowered.startswith(GREETINGS) or any(f" {g} " in f" {lowered} " for g in ("hi",)),
        questions=asked,
        question_kind=kind,
        open_question=any(part.lower().startswith(OPEN_QUESTION_STARTS) for part in asked),
        empathy=count_phrases(text, ACKNOWLEDGE),
        dismissive=count_phrases(text, ALL_DISMISSIVE),
        explanation=explanation,
        plan=plan,
        touched=touched,
        on_topic=on_topic,
    )


def _question_kind(asked: str) -> str | None:
    for kind, cues in _QUESTION_KINDS.items():
        if any(cue in asked for cue in cues):
            return kind
    return None


# -- the state of a chat --------------------------------------------------------------------

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"


@dataclass
class Event:
    """One learner turn's effect, kept for hints and grades to quote."""

    turn: int
    message_id: str | None
    read: LearnerRead
    acknowledged: tuple[int, ...] = ()
    resolved: tuple[int, ...] = ()
    dismissed: tuple[int, ...] = ()
    explored: tuple[int, ...] = ()
    mood_before: int = 0
    mood_after: int = 0


@dataclass
class State:
    student: Student
    mood: int
    status: dict[int, str] = field(default_factory=dict)
    dismissed: set[int] = field(default_factory=set)
    raised: set[int] = field(default_factory=set)
    asked: set[int] = field(default_factory=set)
    plan_agreed: bool = False
    plan_offered: bool = False
    persona_turns: list[str] = field(default_factory=list)
    said_normal: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def open_concerns(self) -> list[Concern]:
        return [c for c in self.student.concerns if self.status.get(c.index, OPEN) != RESOLVED]

    @property
    def current(self) -> Concern | None:
        """The concern in play: the first raised one still open, else the next unraised one."""
        open_ = self.open_concerns
        raised = [concern for concern in open_ if concern.index in self.raised]
        return (raised or open_ or [None])[0]

    def status_of(self, concern: Concern) -> str:
        return self.status.get(concern.index, OPEN)

    def said(self, line: str) -> bool:
        """Whether the student said `line` before, also as "it" for a topic named earlier."""
        needles = {_normal(line)}
        for concern in self.student.concerns:
            if concern.topic in line:
                needles.add(_normal(line.replace(concern.topic, "it")))
        return any(needle in turn for turn in self.said_normal for needle in needles)


@functools.lru_cache(maxsize=8192)
def _normal(text: str) -> str:
    return " ".join(words(text))


def new_state(student: Student) -> State:
    return State(student=student, mood=student.intensity)


def note_persona_turn(state: State, text: str) -> None:
    state.persona_turns.append(text)
    normal = _normal(text)
    state.said_normal.append(normal)
    for concern in state.student.concerns:
        if _normal(concern.worry) in normal or _normal(concern.more) in normal:
            state.raised.add(concern.index)
        if _normal(concern.ask) in normal:
            state.raised.add(concern.index)
            state.asked.add(concern.index)


def apply_learner(state: State, text: str, *, message_id: str | None = None) -> Event:
    """Advance the state by one learner turn and answer what it did."""
    student = state.student
    read = read_learner(text, student)
    current = state.current
    focus = list(read.touched)
    engages = read.empathy or read.dismissive
    if student.derived:
        engages = engages or (read.on_topic and bool(read.explanation or read.plan))
    if not focus and current is not None and engages:
        focus = [current.index]
    event = Event(turn=len(state.events), message_id=message_id, read=read, mood_before=state.mood)
    mood = state.mood
    if read.dismissive:
        event.dismissed = tuple(focus)
        state.dismissed.update(focus)
        mood += 2
    else:
        acknowledged, resolved, explored = [], [], []
        for index in focus:
            substantive = bool(read.explanation or read.plan) and (
                index in read.touched or student.derived
            )
            before = state.status.get(index, OPEN)
            if substantive and before != RESOLVED:
                state.status[index] = RESOLVED
                resolved.append(index)
            elif read.empathy and before == OPEN:
                state.status[index] = ACKNOWLEDGED
                acknowledged.append(index)
            elif read.questions and index in read.touched and before == OPEN:
                explored.append(index)
            if read.empathy or substantive:
                state.dismissed.discard(index)
        event.acknowledged, event.resolved, event.explored = (
            tuple(acknowledged),
            tuple(resolved),
            tuple(explored),
        )
        mood -= min(2, read.empathy) + len(resolved)
        if read.off_topic and student.temperament in ("upset", "demanding"):
            mood += 1
    if read.plan and not read.dismissive:
        state.plan_offered = True
        if not state.open_concerns:
            state.plan_agreed = True
    state.mood = max(1, min(10, mood))
    event.mood_after = state.mood
    state.events.append(event)
    return event


def replay(student: Student, transcript: list[dict]) -> State:
    """The state after `transcript` (roles: "user" is the learner, "assistant" the student)."""
    state = new_state(student)
    for turn in transcript:
        content = str(turn.get("content") or "")
        if turn.get("role") == "assistant":
            note_persona_turn(state, content)
        elif turn.get("role") == "user" and content.strip():
            apply_learner(state, content, message_id=turn.get("id"))
    return state


def mood_word(state: State) -> str:
    return "heated" if state.mood >= 7 else "tense" if state.mood >= 4 else "calm"
