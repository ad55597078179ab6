"""factory-boy factories for the books, and `books()`: a session filled through the real services."""

from __future__ import annotations

import factory
from django.utils import timezone

from glow.accounts.tests.factories import ProfileFactory
from glow.ai import CompletionRequest
from system import gateway, ledger
from system.models import ClientKind, Group, Session


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session

    profile = factory.SubFactory(ProfileFactory)
    organization = factory.SelfAttribute("profile.organization")
    client_kind = ClientKind.API
    last_seen_at = factory.LazyFunction(timezone.now)


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    session = factory.SubFactory(SessionFactory)
    organization = factory.SelfAttribute("session.organization")
    profile = factory.SelfAttribute("session.profile")
    name = factory.Sequence(lambda n: f"Group {n}")
    family = "persona"


def sign_in(client, profile) -> None:
    """Log a test client in as `profile` (the user is re-read: UserFactory's password is not saved,
    so the in-memory user's session hash would not match the stored one)."""
    client.force_login(type(profile.user).objects.get(pk=profile.user_id))


def books(*, profile, model=None, groups: int = 1, runs: int = 2, session=None) -> Session:
    """A session of `profile` with groups of finished runs, each a real model_call (local
    provider, the echo model unless `model` says otherwise), counters kept by the services."""
    session = session or ledger.session_touch(actor=profile, client_kind="api", auth="api_key")
    for group_number in range(groups):
        group = ledger.group_create(
            actor=profile, session=session, family="persona", name=f"Persona draft {group_number}"
        )
        for run_number in range(runs):
            run = ledger.run_create(group=group, kind="generate", model=model)
            gateway.model_call(
                run=run,
                request=CompletionRequest(
                    messages=[{"role": "user", "content": f"Say hello number {run_number}."}],
                    model=model.provider_model if model else "echo",
                ),
            )
    session.refresh_from_db()
    return session
