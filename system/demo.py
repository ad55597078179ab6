"""Demo books: a week of generation sessions for Demo University, so the staff pages have history."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from glow.accounts.models import Profile
from glow.ai import CompletionRequest
from glow.catalog.models import AIModel
from system import gateway, ledger
from system.models import Group, Run, Session, TimelineEvent

DEMO_AGENT = "glow-demo"
# (username, days ago, generations, runs each): what each person generated that day.
HISTORY = [
    ("instructor", 6, 2, 2),
    ("learner1", 5, 1, 3),
    ("learner2", 4, 1, 2),
    ("instructor", 3, 1, 3),
    ("learner3", 2, 2, 1),
    ("learner1", 1, 1, 2),
    ("admin", 0, 1, 1),
]
PROMPTS = [
    "Draft a persona: a first-year student anxious about their first proof.",
    "Make the persona more hesitant and add a worry about the midterm.",
    "Write a scenario: the student arrives five minutes before office hours end.",
]


def _backdate(session: Session, days: int) -> None:
    """Move a freshly written session, and everything in it, `days` into the past."""
    shift = timedelta(days=days)
    Session.objects.filter(pk=session.pk).update(
        created_at=F("created_at") - shift, last_seen_at=F("last_seen_at") - shift
    )
    Group.objects.filter(session=session).update(
        created_at=F("created_at") - shift,
        first_run_at=F("first_run_at") - shift,
        last_run_at=F("last_run_at") - shift,
    )
    Run.objects.filter(session=session).update(
        created_at=F("created_at") - shift,
        started_at=F("started_at") - shift,
        finished_at=F("finished_at") - shift,
    )
    TimelineEvent.objects.filter(session=session).update(created_at=F("created_at") - shift)


def seed(*, stdout) -> None:
    profiles = {
        profile.user.username: profile
        for profile in Profile.objects.select_related("user").filter(
            organization__name="Demo University"
        )
    }
    if (
        not profiles
        or Session.objects.filter(
            organization_id=next(iter(profiles.values())).organization_id, user_agent=DEMO_AGENT
        ).exists()
    ):
        return
    model = AIModel.objects.filter(
        organization_id=next(iter(profiles.values())).organization_id, provider_model="glow-local"
    ).first()
    for username, days_ago, generations, runs in HISTORY:
        actor = profiles.get(username)
        if actor is None:
            continue
        session = Session.objects.create(
            organization_id=actor.organization_id,
            profile=actor,
            client_kind="browser",
            auth="session",
            user_agent=DEMO_AGENT,
            last_seen_at=timezone.now(),
            active=days_ago == 0,
        )
        for number in range(generations):
            group = ledger.group_create(
                actor=actor, session=session, family="persona", name=f"Persona draft {number + 1}"
            )
            for step in range(runs):
                run = ledger.run_create(group=group, kind="generate", model=model)
                gateway.model_call(
                    run=run,
                    request=CompletionRequest(
                        messages=[{"role": "user", "content": PROMPTS[step % len(PROMPTS)]}],
                        model="",
                        task="generate_artifact",
                        context={
                            "family": "persona",
                            "instructions": [PROMPTS[step % len(PROMPTS)]],
                        },
                    ),
                )
        session.refresh_from_db()
        _backdate(session, days_ago)
    stdout.write(f"  system: {len(HISTORY)} demo sessions over the last week")
