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
    },
    {
        "title": "Morgan, angry about a midterm grade",
        "description": "Lost 15 points on a midterm question they believe was graded unfairly; scholarship on the line.",
        "traits": ["angry", "defensive", "frustrated", "persistent"],
        "intensity": 8,
        "voice": "fast, loud",
    },
    {
        "title": "Jordan, flagged for similar code",
        "description": "Their project was flagged by the similarity checker; they worked with a friend and are scared.",
        "traits": ["evasive", "scared", "defensive", "honest underneath"],
        "intensity": 6,
        "voice": "quiet, guarded",
    },
]

SCENARIOS = [
    (
        "Office hours: recursion confusion",
        0,
        "Casey comes to office hours the night before PS3 is due. They do not understand base cases. "
        "Help them understand without giving away the solution.",
    ),
    (
        "Office hours: midterm regrade dispute",
        1,
        "Morgan storms in about question 4 of the midterm. The rubric allowed partial credit only for a "
        "correct invariant. Regrade requests go through the course's written process within one week.",
    ),
    (
        "Office hours: academic-integrity conversation",
        2,
        "Jordan's project 2 was flagged for high similarity with another student's. You must explain the "
        "process (report to the instructor, no accusation by TAs) while keeping the student engaged.",
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
        )
        for title, index, context in SCENARIOS
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
        m.Model,
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
        m.Model,
        demo,
        "Glow local echo",
        provider=m.Provider.LOCAL,
        provider_model="echo",
        input_price_per_million=Decimal("0.10"),
        output_price_per_million=Decimal("0.20"),
        created_by=admin,
        description="Returns its input: for benchmarking the pipeline.",
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
        created_by=admin,
        system_prompt="You are a calm, empathetic TA. Acknowledge feelings, ask open questions, "
        "explain policy accurately and end with next steps.",
    )
    if demo_written(coach):
        coach.tools.set([lookup])
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
    )
    lab_scenario = _upsert(
        m.Scenario,
        other,
        "Lab report extension",
        department=bio,
        persona=lab,
        context="Sam asks for a third extension this term.",
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
        f"  catalog: {simulation.title} with {len(scenarios)} scenarios; eval {evaluation.title}"
    )
