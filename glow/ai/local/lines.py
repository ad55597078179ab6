"""The simulated student's connective phrasebook, per temperament.

These lines carry tone, never content: what a student is actually about comes from their own
persona and scenario (concerns, goal, phrases), slotted in as {topic}. A line never names
a course, a title or another student.
"""

from __future__ import annotations

import random

Lines = dict[str, tuple[str, ...]]

PHRASEBOOK: dict[str, Lines] = {
    # Fallbacks for a concern's own lines when its author left them out.
    "worry": {
        "upset": ("Honestly, I'm fed up about {topic}.",
                  "Nobody has been straight with me about {topic}."),
        "anxious": ("I keep worrying about {topic}.", "I've been really stressed about {topic}."),
        "confused": ("I don't understand {topic} at all.", "I'm lost when it comes to {topic}."),
        "demanding": ("I need {topic} sorted out properly.",
                      "I have not been treated fairly about {topic}."),
        "withdrawn": ("It's about {topic}, I guess.", "Just... {topic}."),
        "eager": ("I'd really like to get {topic} right.", "I had some questions about {topic}."),
    },
    "ask": {
        "upset": ("So what are you going to do about {topic}?",),
        "anxious": ("Is everything going to be okay with {topic}?",),
        "confused": ("Could you explain {topic} another way?",),
        "demanding": ("What exactly will be done about {topic}?",),
        "withdrawn": ("Is there any point talking about {topic}?",),
        "eager": ("What should I do about {topic}?",),
    },
    "more": {
        "upset": ("Nobody talked to me about {topic} before it was too late.",),
        "anxious": ("I've lost sleep over {topic}, honestly.",),
        "confused": ("I read everything about {topic} and it still didn't click.",),
        "demanding": ("I put real work in, and it was not recognized when it came to {topic}.",),
        "withdrawn": ("I tried to deal with {topic}. It didn't go well.",),
        "eager": ("I've been reading up on {topic} on my own.",),
    },
    "pushback": {
        "upset": ("You're not even listening to what I said about {topic}.",
                  "Wow. That attitude is exactly what makes things worse about {topic}.",
                  "Are you serious? I came here about {topic}."),
        "anxious": ("Oh. Okay. I guess I'll figure out {topic} on my own.",
                    "Sorry. I didn't mean to bother you about {topic}.",
                    "Oh. I thought you might help me with {topic}."),
        "confused": ("Sorry, I still don't get {topic}, and that didn't help.",
                     "Oh... okay. I'm still lost about {topic}, though.",
                     "That doesn't really help me with {topic}."),
        "demanding": ("That's not an acceptable answer about {topic}.",
                      "I'm going to need a better answer than that about {topic}.",
                      "If that's all you have on {topic}, I'll take it to the instructor."),
        "withdrawn": ("Okay. Never mind about {topic}.", "Fine. Forget about {topic}.", "...Right."),
        "eager": ("Oh, sorry, I thought we could talk about {topic}.",
                  "Oh. Okay, I didn't realise {topic} was a bother.",
                  "Oh. Sorry, I'll look into {topic} myself then."),
    },
    "relief": {
        "upset": ("Okay. That's the first real answer I've had about {topic}.",),
        "anxious": ("Okay, that makes me feel better about {topic}.",),
        "confused": ("Oh, that clears up a lot about {topic}.",),
        "demanding": ("Fine. That's a reasonable answer on {topic}.",),
        "withdrawn": ("Okay. That helps with {topic}.",),
        "eager": ("That's really helpful about {topic}, thanks!",),
    },
    # Reactions and moves.
    "greet": {
        "upset": ("Hi. Let's just get into it.", "Yeah, hi."),
        "anxious": ("Hi, um, thanks for seeing me.", "Hi. Sorry, I'm a bit nervous."),
        "confused": ("Hi, thanks for making time.", "Oh, hi. Thanks."),
        "demanding": ("Hello. I'll get straight to the point.", "Hi. I won't take long."),
        "withdrawn": ("Hi.", "Hey."),
        "eager": ("Hi! Thanks so much for meeting with me.", "Hello! Thanks for your time."),
    },
    "ack": {
        "upset": ("Okay. At least you're hearing me on {topic}.",
                  "Fine. Thanks for not brushing me off about {topic}.",
                  "Alright. I'm still annoyed about {topic}, but thanks for listening."),
        "anxious": ("Thank you. It helps to know I'm not the only one worried about {topic}.",
                    "Okay, thanks. I've been carrying {topic} around all week.",
                    "Thanks for being kind about {topic}."),
        "confused": ("Thanks, that helps a bit. I'm just really stuck on {topic}.",
                     "Yeah, thanks. I just get lost when it comes to {topic}.",
                     "Okay, thanks for being patient with me about {topic}."),
        "demanding": ("I appreciate that, but I still need {topic} dealt with.",
                      "Thanks. Understanding is nice, but {topic} still needs fixing.",
                      "Fine, thank you. Now what about {topic}?"),
        "withdrawn": ("...Yeah. Thanks. It's mostly about {topic}.", "I guess. Thanks for asking.",
                      "Okay. Thanks."),
        "eager": ("Thanks, I appreciate it! I mostly wanted to ask about {topic}.",
                  "That's kind, thank you.", "Thanks for understanding!"),
    },
    "steer": {
        "upset": ("I'm not here to chat about that.", "Can we stay on the actual problem?",
                  "That's got nothing to do with why I'm here."),
        "anxious": ("Um, sorry, I'm too stressed to think about that right now.",
                    "Sorry, can we talk about what I came for?",
                    "I don't really know what to say to that, sorry."),
        "confused": ("Sorry, I'm not sure how that connects.",
                     "Wait, what does that have to do with it?",
                     "I'm a bit lost, sorry. Can we go back?"),
        "demanding": ("That's beside the point.", "I don't see how that's relevant.",
                      "Let's keep this on track, please."),
        "withdrawn": ("Okay.", "I don't know.", "Sure."),
        "eager": ("Ha, maybe another time!", "Oh, interesting. Can we get back to my question?",
                  "Sure, but first I had a question."),
    },
    "next": {
        "upset": ("Okay. So what happens next, exactly?", "Fine. What do I actually do now?"),
        "anxious": ("Okay. What should I do first?", "So what's the next step for me?"),
        "confused": ("Okay, so what should I do next?", "What would you do first, in my place?"),
        "demanding": ("Good. What are the next steps, and when?", "So what's the timeline?"),
        "withdrawn": ("So... what now?", "What should I do?"),
        "eager": ("Great! What should I work on next?", "What would you suggest I do next?"),
    },
    "close": {
        "upset": ("Alright. I'll do that. Thanks for actually helping.",
                  "Okay. I can work with that."),
        "anxious": ("Okay. Thank you so much, I feel a lot better.",
                    "That helps a lot. Thank you."),
        "confused": ("Okay, I think I've got a plan now. Thanks!",
                     "That makes sense. Thanks for walking me through it."),
        "demanding": ("Fine. I'll hold you to that.", "Good. I'll follow up if I need to."),
        "withdrawn": ("Okay. I'll try that. Thanks.", "Alright. Thanks."),
        "eager": ("Perfect, thank you so much!", "Great, that's really helpful. Thanks!"),
    },
    "unsure": {
        "upset": ("I don't know, and honestly that's not the point.",),
        "anxious": ("Um, I'm not sure. Sorry.",),
        "confused": ("I'm honestly not sure how to answer that.",),
        "demanding": ("I don't see why that matters.",),
        "withdrawn": ("Don't know.",),
        "eager": ("Hmm, good question. I'm not sure yet.",),
    },
    "want": {
        "upset": ("I want a real answer about {topic}.",),
        "anxious": ("I just want to know it'll be okay with {topic}.",),
        "confused": ("I want to actually understand what's going on with {topic}.",),
        "demanding": ("I want a decision about {topic} today.",),
        "withdrawn": ("I guess just to be done with {topic}.",),
        "eager": ("I'd love to get things right with {topic}.",),
    },
    "again": {
        "upset": ("I still don't have an answer about {topic}.",
                  "You still haven't said anything real about {topic}."),
        "anxious": ("Sorry, I'm still worried about {topic}.",
                    "I still don't know what to do about {topic}."),
        "confused": ("Sorry, I'm still stuck on {topic}.", "I still don't quite get {topic}."),
        "demanding": ("We still haven't talked properly about {topic}.",
                      "Nothing has been settled about {topic} yet."),
        "withdrawn": ("It's still about {topic}, I guess.", "...There's still {topic}, though."),
        "eager": ("I'm still curious about {topic}.", "Could we come back to {topic}?"),
    },
    "feel": {
        "upset": ("Honestly? I'm {traits}.",),
        "anxious": ("Honestly, I'm {traits}.",),
        "confused": ("I guess I'm {traits}.",),
        "demanding": ("I'm {traits}, frankly.",),
        "withdrawn": ("Kind of {traits}.",),
        "eager": ("I'm {traits}, mostly!",),
    },
    "silence": {
        "upset": ("Hello? Are you going to say anything?",),
        "anxious": ("Um... is everything okay?",),
        "confused": ("Sorry, I'm not sure what to say either.",),
        "demanding": ("I'm waiting.",),
        "withdrawn": ("...",),
        "eager": ("Hi! Is now a good time?",),
    },
}  # fmt: skip


def _fill(line: str, topic: str, **extra: str) -> str:
    values = {"topic": topic, "Topic": topic[:1].upper() + topic[1:], **extra}
    return line.format(**values)


def options(kind: str, temperament: str, topic: str = "", **extra: str) -> list[str]:
    lines = PHRASEBOOK[kind].get(temperament) or PHRASEBOOK[kind]["eager"]
    return [_fill(line, topic, **extra) for line in lines]


def fallback_line(kind: str, temperament: str, topic: str) -> str:
    return options(kind, temperament, topic)[0]


def shuffled(
    kind: str, temperament: str, rng: random.Random, topic: str = "", **extra
) -> list[str]:
    found = options(kind, temperament, topic, **extra)
    rng.shuffle(found)
    return found
