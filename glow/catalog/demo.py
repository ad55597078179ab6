"""Demo catalog: 'Office hours: CS-180' for Demo University, a small biology one for Other College."""

from __future__ import annotations

from decimal import Decimal

from glow.accounts.models import Cohort, Department, Organization, Profile
from glow.catalog import families
from glow.catalog import models as m
from glow.core.seeding import demo_ensure, demo_find, demo_written

PERSONAS = [
    {
        "title": "Casey, confused about recursion",
        "description": "A second-year student who has watched every lecture twice and still cannot see how recursion ends.",
        "traits": ["confused", "polite", "anxious", "apologetic"],
        "intensity": 3,
        "voice": "soft, hesitant",
        "goal": "I just want to understand recursion well enough to finish PS3 on my own.",
        "phrases": [
            "Sorry, this is probably a really basic question.",
            "I've rewatched the lecture twice, honestly.",
        ],
        "concerns": [
            {
                "topic": "how recursion stops",
                "worry": "I don't get how a recursive function ever stops calling itself. It feels like it should go on forever.",
                "ask": "So how does it actually know when to stop?",
                "more": "When I trace factorial by hand I just keep writing calls and never reach an end.",
                "pushback": "I did read the notes, twice. I still can't see where it stops, and now I feel kind of stupid for asking.",
                "relief": "Oh, so the base case is the part that stops it. That actually makes sense.",
                "cues": ["base case", "stop", "smallest", "trace", "n == 0", "ends"],
            },
            {
                "topic": "the PS3 deadline",
                "worry": "PS3 is due tomorrow night and I haven't got a single recursive function working.",
                "ask": "Do you think I can still finish it in time?",
                "more": "I've spent the whole weekend on the first problem and it still crashes with a recursion error.",
                "pushback": "Okay, but it's due tomorrow. I can't just start over from the lecture notes now.",
                "relief": "Okay, breaking it into small pieces tonight feels doable.",
                "cues": [
                    "deadline",
                    "tomorrow",
                    "tonight",
                    "time",
                    "due",
                    "one problem",
                    "first problem",
                ],
            },
        ],
    },
    {
        "title": "Morgan, angry about a midterm grade",
        "description": "Lost 15 points on a midterm question they believe was graded unfairly; scholarship on the line.",
        "traits": ["angry", "defensive", "frustrated", "persistent"],
        "intensity": 8,
        "voice": "fast, loud",
        "goal": "I want the 15 points on question 4 back, or at least a real second look.",
        "phrases": [
            "This is my scholarship we're talking about.",
            "I'm not trying to be difficult here.",
        ],
        "concerns": [
            {
                "topic": "the 15 points lost on question 4",
                "worry": "I lost 15 points on question 4 and my answer was basically right. That's not fair.",
                "ask": "Can you tell me why my answer got almost nothing?",
                "more": "I wrote the loop correctly, I just didn't spell out the invariant the way the key wanted.",
                "pushback": "Don't brush me off. Fifteen points on one question is not a small thing.",
                "relief": "Okay. At least you're actually looking at what I wrote.",
                "cues": [
                    "question 4",
                    "15 points",
                    "points",
                    "invariant",
                    "partial credit",
                    "your answer",
                ],
            },
            {
                "topic": "the scholarship",
                "worry": "If my average drops below a B I lose my scholarship. This one question could do it.",
                "ask": "Do you even get what's riding on this for me?",
                "more": "My scholarship needs a 3.0, and this midterm is a third of the grade.",
                "pushback": "Easy for you to say. It's not your scholarship on the line.",
                "relief": "Thanks. It helps that you get why I'm this stressed about it.",
                "cues": ["scholarship", "stress", "average", "riding on", "a lot at stake"],
            },
            {
                "topic": "how the regrade works",
                "worry": "Nobody has told me how I'm supposed to even get this looked at again.",
                "ask": "So what do I actually do to get it regraded?",
                "more": "The syllabus just says regrades happen, it doesn't say who decides.",
                "pushback": "Telling me the grade is final is not an answer. There has to be a process.",
                "relief": "Okay, a written request this week. I can do that.",
                "cues": ["regrade", "written", "request", "one week", "process", "submit"],
            },
        ],
    },
    {
        "title": "Jordan, flagged for similar code",
        "description": "Their project was flagged by the similarity checker; they worked with a friend and are scared.",
        "traits": ["evasive", "scared", "defensive", "honest underneath"],
        "intensity": 6,
        "voice": "quiet, guarded",
        "goal": "I need to know whether I'm in real trouble and what happens next.",
        "phrases": ["I don't really want to get anyone in trouble.", "Is this going on my record?"],
        "concerns": [
            {
                "topic": "being accused of cheating",
                "worry": "The email said my project was flagged. Are you saying I cheated?",
                "ask": "Am I being accused of something?",
                "more": "I've never been in trouble before. I didn't even know a checker ran on our code.",
                "pushback": "So you've already decided I cheated. Great.",
                "relief": "Okay. It helps to hear nobody's accusing me yet.",
                "cues": [
                    "not accusing",
                    "accus",
                    "no one has decided",
                    "haven't decided",
                    "honest",
                ],
            },
            {
                "topic": "working with a friend",
                "worry": "I worked through some of it with a friend. We didn't copy, we just talked about the approach.",
                "ask": "Is talking about the approach with a friend against the rules?",
                "more": "We sat together in the library and sketched the algorithm on paper, then wrote our own code.",
                "pushback": "I'm trying to be honest with you and you're making it sound worse.",
                "relief": "Okay, so I should just explain what we actually did.",
                "cues": ["collaborat", "friend", "discuss", "approach", "what you did", "own code"],
            },
            {
                "topic": "what happens next",
                "worry": "I don't know what happens now. Does this go on my record?",
                "ask": "What happens after you report it?",
                "more": "I'm on a student visa, so anything on my record really scares me.",
                "pushback": "You can't just tell me to wait and see. I need to know what's coming.",
                "relief": "Okay, so the instructor reviews it and I get to explain. That's less scary.",
                "cues": [
                    "instructor",
                    "report",
                    "process",
                    "review",
                    "next step",
                    "explain your side",
                ],
            },
        ],
    },
]

SCENARIOS = [
    (
        "Office hours: recursion confusion",
        0,
        "Casey comes to office hours the night before PS3 is due. They do not understand base cases. "
        "Help them understand without giving away the solution.",
        {
            "persona_opens": False,
            "learner_goal": "Casey can explain what a base case does and has a plan for PS3 tonight.",
        },
    ),
    (
        "Office hours: midterm regrade dispute",
        1,
        "Morgan storms in about question 4 of the midterm. The rubric allowed partial credit only for a "
        "correct invariant. Regrade requests go through the course's written process within one week.",
        {
            "persona_opens": True,
            "opening_line": "Hey. I need to talk to you about my midterm, right now. Question 4 was graded completely unfairly.",
            "learner_goal": "Morgan feels heard, understands the rubric for question 4 and knows how to file a written regrade request within the week.",
        },
    ),
    (
        "Office hours: academic-integrity conversation",
        2,
        "Jordan's project 2 was flagged for high similarity with another student's. You must explain the "
        "process (report to the instructor, no accusation by TAs) while keeping the student engaged.",
        {
            "persona_opens": True,
            "opening_line": "Um, hi. I got an email about my project 2. Is that why you wanted to see me?",
            "learner_goal": "Jordan understands the integrity process without feeling accused, and shares what happened.",
        },
    ),
]

RUBRIC = [
    (
        "Empathy and rapport",
        [
            (
                "Acknowledge feelings",
                "Names or validates the student's emotion (frustrated, worried, stressed).",
                4,
            ),
            (
                "Respectful tone",
                "Stays calm and respectful; no dismissive or sarcastic language.",
                3,
            ),
        ],
    ),
    (
        "Guidance and teaching",
        [
            (
                "Ask open questions",
                "Asks questions that get the student to explain their thinking.",
                4,
            ),
            (
                "Explain clearly",
                "Explains the concept or policy clearly with an example or next step.",
                4,
            ),
        ],
    ),
    (
        "Policy and professionalism",
        [
            (
                "Follow course policy",
                "Refers to the regrade, deadline or academic integrity policy correctly.",
                3,
            ),
            (
                "Concrete next steps",
                "Ends with a concrete plan: what the student should do next and when.",
                2,
            ),
        ],
    ),
]


# Inputs the demo tool, eval and first scenario declare: (key, title, attributes).
FIELDS = [
    (
        "topic",
        "Policy topic",
        {
            "type": m.FieldType.STRING,
            "required": True,
            "description": "What the course-policy question is about, e.g. 'regrades'.",
        },
    ),
    (
        "assignment",
        "Assignment",
        {
            "type": m.FieldType.ENUM,
            "enum_values": ["PS1", "PS2", "PS3", "Midterm", "Final"],
            "required": True,
            "description": "Which CS-180 assignment the student is asking about.",
        },
    ),
    (
        "regrade_requested",
        "Regrade requested",
        {
            "type": m.FieldType.BOOLEAN,
            "default": False,
            "description": "Whether the student asks for a regrade.",
        },
    ),
]
# The first is the demo test grid's, the second the coach agent's own.
PARAMETERS = [
    (
        "Deterministic (seed 7)",
        {
            "temperature": 0.0,
            "seed": 7,
            "max_tokens": 400,
            "description": "Greedy sampling with a fixed seed: the same run twice reads the same.",
        },
    ),
    (
        "Balanced",
        {
            "temperature": 0.7,
            "top_p": 0.95,
            "max_tokens": 600,
            "description": "Everyday sampling for a conversational agent.",
        },
    ),
]


def demo_key(organization, title: str) -> str:
    """A demo row's stable key: its organization and the title the demo first gave it."""
    return f"{organization.name}/{title}"


def _upsert(model, organization, title: str, **fields):
    """Create the demo row if missing; an existing one (even renamed) is left alone."""
    return demo_ensure(
        model,
        demo_key(organization, title),
        legacy={"organization": organization, "title": title},
        fields=fields,
    )


def find(model, organization, title: str):
    """The demo row first made with this title, whatever it is called now."""
    return demo_find(model, demo_key(organization, title), organization=organization, title=title)


def _rubric(organization, department, title: str, groups) -> m.Rubric:
    rubric = _upsert(
        m.Rubric,
        organization,
        title,
        department=department,
        description="Three standard groups graded per chat.",
    )
    if not rubric.groups.exists():
        families.write_rubric(
            rubric,
            {
                "groups": [
                    {
                        "name": name,
                        "standards": [
                            {"name": std, "description": desc, "points": points}
                            for std, desc, points in standards
                        ],
                    }
                    for name, standards in groups
                ]
            },
        )
    return rubric


def _simulation(organization, department, title, rubric, scenarios, **fields) -> m.Simulation:
    simulation = _upsert(
        m.Simulation, organization, title, department=department, rubric=rubric, **fields
    )
    if demo_written(simulation):
        families.write_simulation(
            simulation, {"scenario_ids": [scenario.id for scenario in scenarios]}
        )
    return simulation


def seed(*, stdout) -> None:
    demo = Organization.objects.get(name="Demo University")
    cs = Department.objects.get(organization=demo, name="Computer Science")
    admin = Profile.objects.get(user__username="admin")
    personas = [
        _upsert(
            m.Persona,
            demo,
            p["title"],
            department=cs,
            created_by=admin,
            **{k: v for k, v in p.items() if k != "title"},
        )
        for p in PERSONAS
    ]
    scenarios = [
        _upsert(
            m.Scenario,
            demo,
            title,
            department=cs,
            persona=personas[index],
            context=context,
            description=context.split(". ")[0] + ".",
            created_by=admin,
            **extra,
        )
        for title, index, context, extra in SCENARIOS
    ]
    rubric = _rubric(demo, cs, "TA office-hours rubric", RUBRIC)
    simulation = _simulation(
        demo,
        cs,
        "Office hours: CS-180",
        rubric,
        scenarios,
        time_limit_minutes=45,
        pass_threshold=60,
        description="Three office-hours conversations every CS-180 TA meets in the first month.",
        created_by=admin,
    )
    cohort = Cohort.objects.get(organization=demo, name="CS-180 TAs Fall")
    _upsert(
        m.Home,
        demo,
        "CS-180 TA training: office hours",
        simulation=simulation,
        cohort=cohort,
        department=cs,
        description="Complete before your first office hours.",
        created_by=admin,
    )
    _upsert(
        m.Practice,
        demo,
        "Practice: office hours",
        simulation=simulation,
        cohort=None,
        department=cs,
        description="Practise as often as you like; nothing is reported.",
        created_by=admin,
    )

    local = _upsert(
        m.AIModel,
        demo,
        "Glow local simulator",
        provider=m.Provider.LOCAL,
        provider_model="glow-local",
        input_price_per_million=Decimal("0.50"),
        output_price_per_million=Decimal("1.50"),
        created_by=admin,
        description="Offline, deterministic simulator: for demos and tests.",
    )
    _upsert(
        m.AIModel,
        demo,
        "Glow local echo",
        provider=m.Provider.LOCAL,
        provider_model="echo",
        input_price_per_million=Decimal("0.10"),
        output_price_per_million=Decimal("0.20"),
        created_by=admin,
        description="Returns its input: for benchmarking the pipeline.",
    )
    fields = {
        name: _upsert(m.InputField, demo, title, name=name, created_by=admin, **spec)
        for name, title, spec in FIELDS
    }
    deterministic, balanced = (
        _upsert(m.ParameterSet, demo, title, created_by=admin, **spec) for title, spec in PARAMETERS
    )
    lookup = _upsert(
        m.Tool,
        demo,
        "Look up course policy",
        name="lookup_policy",
        created_by=admin,
        json_schema={
            "type": "object",
            "properties": {"topic": {"type": "string"}},
            "required": ["topic"],
        },
    )
    coach = _upsert(
        m.Agent,
        demo,
        "Office-hours coach",
        department=cs,
        default_model=local,
        parameter_set=balanced,
        created_by=admin,
        system_prompt="You are a calm, empathetic TA. Acknowledge feelings, ask open questions, "
        "explain policy accurately and end with next steps.",
    )
    if demo_written(coach):
        coach.tools.set([lookup])
    if demo_written(lookup):
        lookup.input_fields.set([fields["topic"]])
    _upsert(
        m.Agent,
        demo,
        "Terse TA",
        department=cs,
        default_model=local,
        created_by=admin,
        system_prompt="Answer in one short sentence. Do not ask questions.",
    )
    evaluation = _upsert(
        m.Eval,
        demo,
        "Office-hours eval",
        department=cs,
        rubric=rubric,
        turns=2,
        created_by=admin,
        description="Two turns per scenario, graded with the TA rubric.",
    )
    if demo_written(evaluation):
        evaluation.scenarios.set(scenarios)
        evaluation.input_fields.set([fields["assignment"], fields["regrade_requested"]])
    if demo_written(scenarios[0]):
        scenarios[0].input_fields.set([fields["assignment"]])

    other = Organization.objects.get(name="Other College")
    bio = Department.objects.get(organization=other, name="Biology")
    lab = _upsert(
        m.Persona,
        other,
        "Sam, late lab report",
        department=bio,
        traits=["stressed", "pleading"],
        intensity=5,
        description="Asks for an extension on a lab report.",
        goal="I need a few more days for the enzyme lab report.",
        concerns=[
            {
                "topic": "the enzyme lab report",
                "worry": "I'm nowhere near done with the enzyme lab report and it's due Friday.",
                "ask": "Could I please have until Monday?",
                "pushback": "I know it's my third time asking, but I'm really not making excuses.",
                "relief": "Thank you. Knowing what I can hand in by Friday helps.",
                "cues": ["extension", "friday", "monday", "partial", "report"],
            }
        ],
    )
    lab_scenario = _upsert(
        m.Scenario,
        other,
        "Lab report extension",
        department=bio,
        persona=lab,
        context="Sam asks for a third extension this term.",
        persona_opens=True,
        opening_line="Hi, sorry to bother you again. Could we talk about the lab report?",
    )
    bio_rubric = _rubric(other, bio, "Lab TA rubric", RUBRIC[:1])
    bio_sim = _simulation(other, bio, "Lab TA basics", bio_rubric, [lab_scenario])
    _upsert(
        m.Home,
        other,
        "Bio TA training",
        simulation=bio_sim,
        cohort=Cohort.objects.get(organization=other, name="Bio TAs"),
        department=bio,
    )
    stdout.write(
        f"  catalog: {simulation.title} with {len(scenarios)} scenarios; eval {evaluation.title}; "
        f"{len(fields)} fields; parameter sets {deterministic.title}, {balanced.title}"
    )
