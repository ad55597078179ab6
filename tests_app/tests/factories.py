"""factory-boy factories for tests, invocations, tool calls and grades; the generic tests' hook."""

from __future__ import annotations

from decimal import Decimal

import factory

from glow.accounts.tests.factories import OrganizationFactory
from glow.catalog.tests.factories import (
    SAME_ORG,
    AgentFactory,
    AIModelFactory,
    EvalFactory,
    ScenarioFactory,
)
from tests_app.models import Invocation, Test, TestGrade, ToolCall


class TestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Test

    organization = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Test {n}")
    description = factory.Sequence(lambda n: f"A benchmark run ({n}).")
    eval = factory.SubFactory(EvalFactory, organization=SAME_ORG)
    department = factory.SelfAttribute("eval.department")
    concurrency = 2


class InvocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invocation

    organization = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Invocation {n}")
    test = factory.SubFactory(TestFactory, organization=SAME_ORG)
    model = factory.SubFactory(AIModelFactory, organization=SAME_ORG)
    scenario = factory.SubFactory(ScenarioFactory, organization=SAME_ORG)
    agent = factory.SubFactory(AgentFactory, organization=SAME_ORG)
    position = factory.Sequence(int)


class ToolCallFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ToolCall

    invocation = factory.SubFactory(InvocationFactory)
    position = factory.Sequence(int)
    name = "lookup_policy"
    arguments = factory.LazyFunction(lambda: {"topic": "regrades"})


class TestGradeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TestGrade

    invocation = factory.SubFactory(InvocationFactory)
    organization = factory.SelfAttribute("invocation.organization")
    score = Decimal("2")
    total_points = 4


def register_family_factories(registry) -> None:
    for name, factory_class in (("test", TestFactory), ("invocation", InvocationFactory)):
        family = registry.find(name)
        if family is not None:
            family.extra.setdefault("factory", factory_class)
