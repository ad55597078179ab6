"""factory-boy factories for every catalog model, and the family factory hook the generic tests use.

Every factory takes `organization=` and creates the rows it references (department, persona,
rubric, simulation, cohort, ...) inside that same organization, new ones per call unless passed in.
"""

from __future__ import annotations

from decimal import Decimal

import factory

from glow.accounts.tests.factories import CohortFactory, DepartmentFactory, OrganizationFactory
from glow.catalog import models as m

SAME_ORG = factory.SelfAttribute("..organization")


class ArtifactFactory(factory.django.DjangoModelFactory):
    organization = factory.SubFactory(OrganizationFactory)
    title = factory.Sequence(lambda n: f"Artifact {n}")
    description = factory.Sequence(lambda n: f"Described plainly ({n}).")


class DepartmentOwnedFactory(ArtifactFactory):
    department = factory.SubFactory(DepartmentFactory, organization=SAME_ORG)


class PersonaFactory(DepartmentOwnedFactory):
    class Meta:
        model = m.Persona

    title = factory.Sequence(lambda n: f"Persona {n}")
    traits = factory.LazyFunction(lambda: ["anxious", "polite"])
    intensity = 5
    voice = "soft"


class DocumentFactory(DepartmentOwnedFactory):
    class Meta:
        model = m.Document

    title = factory.Sequence(lambda n: f"Document {n}")
    text = "The regrade policy: requests in writing within one week."


class ScenarioFactory(DepartmentOwnedFactory):
    class Meta:
        model = m.Scenario
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Scenario {n}")
    persona = factory.SubFactory(
        PersonaFactory, organization=SAME_ORG, department=factory.SelfAttribute("..department")
    )
    context = "A student arrives at office hours."
    modality = m.Modality.TEXT

    @factory.post_generation
    def documents(self, create, extracted, **kwargs):
        if create and extracted:
            self.documents.set(extracted)


class StandardGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.StandardGroup

    rubric = factory.SubFactory("glow.catalog.tests.factories.RubricFactory", groups=0)
    name = factory.Sequence(lambda n: f"Group {n}")
    position = factory.Sequence(int)


class StandardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Standard

    group = factory.SubFactory(StandardGroupFactory)
    name = factory.Sequence(lambda n: f"Standard {n}")
    description = "Does the thing well."
    points = 2
    position = factory.Sequence(int)


class RubricFactory(DepartmentOwnedFactory):
    """`groups=N` (default 1) groups of two standards worth 2 points each."""

    class Meta:
        model = m.Rubric
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Rubric {n}")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if not create:
            return
        for position in range(1 if extracted is None else extracted):
            group = StandardGroupFactory(rubric=self, position=position)
            StandardFactory.create_batch(2, group=group)


class SimulationFactory(DepartmentOwnedFactory):
    """`scenarios=[...]` links those in order; by default two new scenarios."""

    class Meta:
        model = m.Simulation
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Simulation {n}")
    rubric = factory.SubFactory(
        RubricFactory, organization=SAME_ORG, department=factory.SelfAttribute("..department")
    )
    time_limit_minutes = 30
    pass_threshold = 70

    @factory.post_generation
    def scenarios(self, create, extracted, **kwargs):
        if not create:
            return
        if extracted is None:
            extracted = ScenarioFactory.create_batch(
                2, organization=self.organization, department=self.department
            )
        m.SimulationScenario.objects.bulk_create(
            m.SimulationScenario(simulation=self, scenario=scenario, position=position)
            for position, scenario in enumerate(extracted)
        )


class SimulationScenarioFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.SimulationScenario

    simulation = factory.SubFactory(SimulationFactory, scenarios=[])
    scenario = factory.SubFactory(
        ScenarioFactory, organization=factory.SelfAttribute("..simulation.organization")
    )
    position = factory.Sequence(int)


class HomeFactory(DepartmentOwnedFactory):
    class Meta:
        model = m.Home

    title = factory.Sequence(lambda n: f"Home {n}")
    simulation = factory.SubFactory(
        SimulationFactory, organization=SAME_ORG, department=factory.SelfAttribute("..department")
    )
    cohort = factory.SubFactory(
        CohortFactory, organization=SAME_ORG, department=factory.SelfAttribute("..department")
    )


class PracticeFactory(DepartmentOwnedFactory):
    """Department-wide (no cohort) unless `cohort=` is given."""

    class Meta:
        model = m.Practice

    title = factory.Sequence(lambda n: f"Practice {n}")
    simulation = factory.SubFactory(
        SimulationFactory, organization=SAME_ORG, department=factory.SelfAttribute("..department")
    )
    cohort = None


class AIModelFactory(ArtifactFactory):
    class Meta:
        model = m.AIModel

    title = factory.Sequence(lambda n: f"Model {n}")
    provider = m.Provider.LOCAL
    provider_model = "glow-local"
    input_price_per_million = Decimal("0.50")
    output_price_per_million = Decimal("1.50")


class ToolFactory(ArtifactFactory):
    class Meta:
        model = m.Tool

    title = factory.Sequence(lambda n: f"Tool {n}")
    name = factory.Sequence(lambda n: f"tool_{n}")
    json_schema = factory.LazyFunction(
        lambda: {"type": "object", "properties": {"topic": {"type": "string"}}}
    )


class InputFieldFactory(ArtifactFactory):
    class Meta:
        model = m.InputField

    title = factory.Sequence(lambda n: f"Field {n}")
    name = factory.Sequence(lambda n: f"field_{n}")
    type = m.FieldType.ENUM
    enum_values = factory.LazyFunction(lambda: ["K-5", "6-8", "9-12"])
    required = True


class ParameterSetFactory(ArtifactFactory):
    class Meta:
        model = m.ParameterSet

    title = factory.Sequence(lambda n: f"Parameters {n}")
    temperature = 0.2
    top_p = 0.9
    max_tokens = 400
    seed = factory.Sequence(int)


class AgentFactory(DepartmentOwnedFactory):
    """`tools=[...]` attaches those; by default one new tool."""

    class Meta:
        model = m.Agent
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Agent {n}")
    system_prompt = "You are a calm teaching assistant."
    default_model = factory.SubFactory(AIModelFactory, organization=SAME_ORG)
    parameter_set = None  # the model server's defaults; pass a ParameterSetFactory() to set some

    @factory.post_generation
    def tools(self, create, extracted, **kwargs):
        if create:
            self.tools.set(
                [ToolFactory(organization=self.organization)] if extracted is None else extracted
            )


class EvalFactory(DepartmentOwnedFactory):
    """`scenarios=[...]` sets those; by default one new scenario."""

    class Meta:
        model = m.Eval
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Eval {n}")
    rubric = factory.SubFactory(
        RubricFactory, organization=SAME_ORG, department=factory.SelfAttribute("..department")
    )
    turns = 2

    @factory.post_generation
    def scenarios(self, create, extracted, **kwargs):
        if create:
            self.scenarios.set(
                [ScenarioFactory(organization=self.organization, department=self.department)]
                if extracted is None
                else extracted
            )


FAMILY_FACTORIES = {
    "persona": PersonaFactory,
    "scenario": ScenarioFactory,
    "rubric": RubricFactory,
    "simulation": SimulationFactory,
    "home": HomeFactory,
    "practice": PracticeFactory,
    "agent": AgentFactory,
    "model": AIModelFactory,
    "eval": EvalFactory,
    "tool": ToolFactory,
    "document": DocumentFactory,
    "field": InputFieldFactory,
    "parameter": ParameterSetFactory,
}


def register_family_factories(registry) -> None:
    """The generic tests' hook: `family.extra["factory"](organization=..., **overrides)` makes a row.

    Called by tests/support/families.py for every installed app's tests.factories module, so
    production code never imports test code.
    """
    for name, factory_class in FAMILY_FACTORIES.items():
        family = registry.find(name)
        if family is not None:
            family.extra.setdefault("factory", factory_class)
