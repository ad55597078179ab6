"""Conversation quality of the offline simulator, measured through the real API.

Scripted learners (respectful, dismissive, off-topic, questioning, greeting) talk to every
scenario of the demo simulations and to eleven scenarios made here, through attempt/start,
attempt/message, attempt/end and attempt/get. The figures are printed (run with -s to see
them) and held to the bars the product promises.
"""

from __future__ import annotations

import io
import re

import pytest

from attempts.models import Message, Role
from glow.accounts.models import Profile
from glow.ai import fidelity
from glow.catalog import families
from glow.catalog import models as m

pytestmark = pytest.mark.django_db

# Eleven students made here: most with authored concerns, three without (the simulator then
# works from the situation's words), several opening the conversation themselves.
MADE = [
    ("Priya, worried about the lab practical", ["anxious", "perfectionist"], 6, True,
     "Hi, sorry, do you have a minute? It's about the lab practical on Friday.",
     [("the titration step", "I always mess up the titration step and lose most of the marks.",
       ["titration", "burette", "endpoint"]),
      ("the time limit", "Forty minutes isn't enough for me, I panic when the clock runs.",
       ["time", "minutes", "pace", "practice run"])]),
    ("Dmitri, disputes a late penalty", ["argumentative", "stubborn"], 7, True,
     "I was docked 20 percent for a submission that was six minutes late. That's absurd.",
     [("the late penalty", "Twenty percent for six minutes late is completely out of proportion.",
       ["penalty", "late", "20 percent", "proportion"]),
      ("the upload outage", "The upload page was crashing right before the deadline, I have screenshots.",
       ["outage", "crash", "screenshot", "upload"])]),
    ("Lena, quiet and falling behind", ["shy", "withdrawn"], 3, False, "",
     [("the missed labs", "I've missed the last three labs. I didn't know how to come back.",
       ["missed", "labs", "catch up", "come back"]),
      ("asking for help", "I don't really like asking questions in front of people.",
       ["ask", "email", "one-on-one", "privately"])]),
    ("Omar, furious about group work", ["angry", "frustrated"], 9, True,
     "My group did nothing on the project and we all got the same grade. I'm done.",
     [("the group grade", "My teammates didn't write a single line and they get my grade.",
       ["group grade", "teammates", "contribution", "peer evaluation"]),
      ("the group itself", "I don't want to be in that group for the next milestone.",
       ["switch", "group", "milestone", "reassign"])]),
    ("Grace, eager to do extra credit", ["eager", "curious"], 2, False, "",
     [("extra credit", "I was hoping there's some extra credit I could do this term.",
       ["extra credit", "bonus", "optional"]),
      ("the reading list", "I finished the reading list and wanted something harder.",
       ["reading", "advanced", "paper", "harder"])]),
    ("Tomasz, confused by the proof", ["confused", "overwhelmed"], 5, True,
     "Hi. I've stared at the induction proof for two hours and I still don't get it.",
     [("the inductive step", "I don't see why we're allowed to assume the thing we're proving.",
       ["inductive step", "hypothesis", "assume", "k+1"]),
      ("the homework", "The homework has three of these and I can't start any of them.",
       ["homework", "first one", "start", "example"])]),
    ("Aiko, stressed about a visa form", ["anxious", "worried"], 7, True, "",
     [("the enrollment letter", "I need an enrollment letter for my visa by next week.",
       ["letter", "registrar", "enrollment", "office"]),
      ("the attendance record", "I'm scared my missed classes will show up on the form.",
       ["attendance", "record", "form", "absences"])]),
    ("Jonah, grade-focused and pushy", ["demanding", "grade-focused"], 8, False, "",
     [("the participation grade", "My participation grade is a B and I speak every week.",
       ["participation", "speak", "discussion", "criteria"])]),
    ("Rosa, missed a lecture", ["friendly", "lost"], 4, False, "", []),
    ("Felix, hostile about attendance", ["hostile", "defensive"], 8, True,
     "Why am I getting emails saying I failed attendance?", []),
    ("Mina, nervous about presenting", ["nervous", "shy"], 5, False, "", []),
]  # fmt: skip
MADE_CONTEXTS = [
    "A lab practical is on Friday; students have forty minutes and the titration is weighted heavily.",
    "The course takes 20 percent off late submissions; the instructor decides exceptions.",
    "The student has missed three labs in a row; the lab policy allows two make-ups.",
    "Group projects get one grade, adjusted by peer evaluations at the end of term.",
    "The course has no extra credit, but optional advanced readings exist.",
    "Problem set 4 is all proofs by induction, due Monday.",
    "Enrollment letters come from the registrar's office within five working days.",
    "Participation is graded on contributions to discussion with a written rubric.",
    "The student missed the lecture on hash tables and the lab report on them is due soon.",
    "Attendance below 80 percent triggers an automatic warning email from the department.",
    "Each student presents their project in week 10 for five minutes.",
]

DISMISSIVE = [
    "Hi.",
    "Stop complaining, rules are rules.",
    "That's not my problem, deal with it.",
    "Whatever. You should have read the syllabus.",
    "Nothing I can do about it.",
]
OFF_TOPIC = [
    "Did you watch the game last night?",
    "I love this weather today.",
    "My cat knocked my coffee over this morning.",
    "Have you seen any good movies lately?",
]
QUESTIONS = [
    "What happened?",
    "How are you feeling about all this?",
    "What have you tried so far?",
    "What would help you most right now?",
]
GREETINGS = ["Hello!", "Hi there, nice to meet you.", "Good afternoon, come on in."]


def _respectful(scenario: m.Scenario) -> list[str]:
    """A TA who listens: greets, acknowledges each concern, asks, explains, agrees a next step."""
    concerns = [*scenario.concerns, *scenario.persona.concerns]
    lines = ["Hi, thanks for coming in. What's going on?"]
    topics = [item["topic"] for item in concerns] or [_situation_word(scenario)]
    for item in concerns or [{"topic": topics[0], "cues": []}]:
        cues = ", ".join(item.get("cues", [])[:2]) or item["topic"]
        lines.append(
            f"I hear you, it makes sense that {item['topic']} feels stressful. "
            f"What worries you most about {item['topic']}?"
        )
        lines.append(
            f"Let me explain {item['topic']}: it comes down to {cues}, because that is how "
            "the course policy works."
        )
    lines.append(
        "Let's agree on a next step: email me tonight and we'll meet at office hours tomorrow "
        "to go through it together."
    )
    return lines


def _situation_word(scenario: m.Scenario) -> str:
    return "the " + scenario.context.split()[1].lower()


@pytest.fixture
def world(db):
    from glow.accounts import demo as accounts_demo
    from glow.catalog import demo as catalog_demo

    accounts_demo.seed(stdout=io.StringIO())
    catalog_demo.seed(stdout=io.StringIO())
    demo_sim = m.Simulation.objects.get(title="Office hours: CS-180")
    organization = demo_sim.organization
    rubric = m.Rubric.objects.get(organization=organization, title="TA office-hours rubric")
    scenarios = []
    for index, (title, traits, intensity, opens, line, concerns) in enumerate(MADE):
        persona = m.Persona.objects.create(
            organization=organization,
            title=title,
            description=f"{title.split(',')[0]} is a student.",
            traits=traits,
            intensity=intensity,
            concerns=[
                {"topic": topic, "worry": worry, "cues": cues} for topic, worry, cues in concerns
            ],
        )
        scenarios.append(
            m.Scenario.objects.create(
                organization=organization,
                title=f"Made scenario {index + 1}: {title.split(',')[1].strip()}",
                persona=persona,
                context=MADE_CONTEXTS[index],
                persona_opens=opens,
                opening_line=line,
            )
        )
    made_sim = m.Simulation.objects.create(
        organization=organization, title="Made in the test", rubric=rubric, pass_threshold=60
    )
    families.write_simulation(made_sim, {"scenario_ids": [s.pk for s in scenarios]})
    learner = Profile.objects.get(user__username="learner1")
    other = m.Simulation.objects.get(title="Lab TA basics")
    return {
        "learner": learner,
        "other_learner": Profile.objects.get(user__username="other_learner"),
        "simulations": [(demo_sim, learner), (made_sim, learner), (other, None)],
        "names": list({p.title.split(",")[0] for p in m.Persona.objects.all()}),
    }


def _practice(simulation: m.Simulation) -> m.Practice:
    return m.Practice.objects.create(
        organization=simulation.organization,
        title=f"Practice {simulation.title}",
        simulation=simulation,
        department=simulation.department,
    )


def _converse(client, simulation, script_for) -> list[dict]:
    """One attempt over every scenario of `simulation`; answers each chat's record."""
    started = client.op("attempt/start", {"practice_id": str(_practice(simulation).pk)})
    assert started.status_code == 200, started.content
    attempt_id = started.json()["attempt_id"]
    chat_ids = started.json()["chat_ids"]
    records = []
    for position, chat_id in enumerate(chat_ids):
        if position:
            moved = client.op("attempt/next", {"attempt_id": attempt_id})
            assert moved.status_code == 200, moved.content
        scenario = m.Scenario.objects.select_related("persona").get(
            pk=simulation.ordered_scenarios()[position].pk
        )
        opened = client.op("attempt/get", {"attempt_id": attempt_id, "chat_id": chat_id}).json()
        turns = []
        for line in script_for(scenario):
            sent = client.op(
                "attempt/message", {"attempt_id": attempt_id, "chat_id": chat_id, "message": line}
            )
            assert sent.status_code == 200, sent.content
            body = sent.json()
            turns.append(
                {"learner": line, "reply": body["assistant_content"], "hints": body["hints"]}
            )
        ended = client.op(
            "attempt/end", {"attempt_id": attempt_id, "chat_id": chat_id, "grade": True}
        )
        assert ended.status_code == 200, ended.content
        final = client.op("attempt/get", {"attempt_id": attempt_id, "chat_id": chat_id}).json()
        grade = next(c for c in final["chats"] if str(c["chat_id"]) == str(chat_id))["grade"]
        records.append(
            {
                "scenario": scenario,
                "opening": opened["messages"],
                "turns": turns,
                "grade": grade,
                "chat_id": chat_id,
            }
        )
    return records


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def test_conversations_meet_the_quality_bars(world, make_client, capsys, settings):
    settings.GLOW_THROTTLE_RATES = {}  # hundreds of scripted turns from two keys
    scripts = {
        "respectful": _respectful,
        "dismissive": lambda scenario: DISMISSIVE,
        "off-topic": lambda scenario: OFF_TOPIC,
        "question": lambda scenario: QUESTIONS,
        "greeting": lambda scenario: [*GREETINGS, *QUESTIONS[:1]],
    }
    learners = {None: make_client(world["other_learner"])}
    learners[world["learner"].pk] = make_client(world["learner"])
    runs: dict[str, list[dict]] = {name: [] for name in scripts}
    for simulation, learner in world["simulations"]:
        client = learners[learner.pk if learner else None]
        for name, script in scripts.items():
            runs[name] += _converse(client, simulation, script)

    persona_turns = repeats = title_leaks = name_leaks = 0
    openers = openers_ok = 0
    hinted = hinted_ok = 0
    pairs = []
    for name, records in runs.items():
        for record in records:
            scenario = record["scenario"]
            own = scenario.persona.title.split(",")[0]
            others = [n for n in world["names"] if n != own]
            earlier = [_normal(m["content"]) for m in record["opening"] if m["role"] == "assistant"]
            if scenario.persona_opens:
                openers += 1
                expected = scenario.opening_line or next(
                    c["worry"] for c in [*scenario.concerns, *scenario.persona.concerns]
                )
                first = record["opening"][:1]
                openers_ok += (
                    bool(first)
                    and first[0]["role"] == "assistant"
                    and (first[0]["content"] == expected)
                )
            topics = [c["topic"] for c in [*scenario.concerns, *scenario.persona.concerns]]
            for turn in record["turns"]:
                reply = turn["reply"]
                persona_turns += 1
                repeats += _normal(reply) in earlier
                earlier.append(_normal(reply))
                title_leaks += scenario.title.lower() in reply.lower()
                name_leaks += any(re.search(rf"\b{re.escape(n)}\b", reply) for n in others)
                if name != "respectful" and topics:
                    # Nothing is resolved in these scripts: a hint must name an open concern.
                    hinted += 1
                    hinted_ok += any(
                        topic.lower() in hint["content"].lower()
                        for hint in turn["hints"]
                        for topic in topics
                    )
    for good, bad in zip(runs["respectful"], runs["dismissive"], strict=True):
        pairs.append((good["scenario"], good["grade"], bad["grade"]))
    criteria = wins = 0
    losses = []
    for scenario, good, bad in pairs:
        bad_scores = {s["standard_id"]: s["score"] for s in bad["standard_scores"]}
        for entry in good["standard_scores"]:
            criteria += 1
            if entry["score"] > bad_scores[entry["standard_id"]]:
                wins += 1
            else:
                losses.append((scenario.title, entry["standard_id"], entry["score"]))
    flag_lists = list(
        Message.objects.filter(role=Role.ASSISTANT, run__isnull=False).values_list(
            "fidelity_flags", flat=True
        )
    )
    flagged, checked = fidelity.flagged_rate(flag_lists)
    scenarios = len(runs["respectful"])
    with capsys.disabled():
        print(
            f"\nconversation quality over {scenarios} scenarios x {len(scripts)} scripted learners:"
            f"\n  persona turns: {persona_turns}; verbatim repeats: {repeats} "
            f"({100 * repeats / persona_turns:.2f}%)"
            f"\n  replies naming the scenario title: {title_leaks}; another persona's name: "
            f"{name_leaks}"
            f"\n  persona-opens chats with their opening line: {openers_ok}/{openers}"
            f"\n  hints naming an open concern: {hinted_ok}/{hinted} "
            f"({100 * hinted_ok / hinted:.1f}%)"
            f"\n  respectful beats dismissive on {wins}/{criteria} criteria "
            f"(mean score {sum(g['score'] for _, g, _ in pairs) / len(pairs):.0f}% vs "
            f"{sum(b['score'] for _, _, b in pairs) / len(pairs):.0f}%)"
            f"\n  fidelity-flagged persona replies: {flagged}/{checked}"
        )
        for flags in (flags for flags in flag_lists if flags):
            print(f"    flagged: {flags[0]['code']}: {flags[0]['detail']}")
    assert scenarios >= 14
    assert repeats / persona_turns < 0.02
    assert title_leaks == 0 and name_leaks == 0
    assert openers >= 8 and openers_ok == openers
    assert hinted_ok == hinted
    assert wins == criteria, losses
