"""factory-boy factories for attempts, and the family factory hook the generic framework tests use."""

from __future__ import annotations

import factory
from django.utils import timezone

from attempts import rollups
from attempts.models import Attempt, Chat, ChatStatus
from glow.accounts.tests.factories import OrganizationFactory, ProfileFactory
from glow.catalog.tests.factories import SimulationFactory

SAME_ORG = factory.SelfAttribute("..organization")


class AttemptFactory(factory.django.DjangoModelFactory):
    """An in-progress attempt with one chat per scenario, the first active (no group yet)."""

    class Meta:
        model = Attempt
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    profile = factory.SubFactory(ProfileFactory, organization=SAME_ORG, role="learner")
    simulation = factory.SubFactory(SimulationFactory, organization=SAME_ORG)
    title = factory.LazyAttribute(lambda o: f"{o.simulation.title} — {o.profile.name}")
    created_by = factory.SelfAttribute("profile")
    started_at = factory.LazyFunction(timezone.now)
    department = factory.SelfAttribute("simulation.department")

    @factory.post_generation
    def chats(self, create, extracted, **kwargs):
        if not create:
            return
        scenarios = self.simulation.ordered_scenarios()
        Chat.objects.bulk_create(
            Chat(
                attempt=self,
                scenario=scenario,
                position=position,
                status=ChatStatus.ACTIVE if position == 0 else ChatStatus.PENDING,
                started_at=self.started_at if position == 0 else None,
            )
            for position, scenario in enumerate(scenarios)
        )
        Attempt.objects.filter(pk=self.pk).update(chat_count=len(scenarios))
        self.chat_count = len(scenarios)
        # Search counts come from AttemptCount, which the services keep: do as they do.
        rollups.attempt_counts_sync(
            organization_id=self.organization_id, profile_ids=[self.profile_id]
        )


def register_family_factories(registry) -> None:
    family = registry.find("attempt")
    if family is not None:
        family.extra.setdefault("factory", AttemptFactory)
