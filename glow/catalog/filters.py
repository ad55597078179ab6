"""Search filters for the catalog families."""

import django_filters

from glow.catalog import models as m
from glow.core.filters import ArtifactFilterSet, UUIDListFilter


class DepartmentFilterSet(ArtifactFilterSet):
    department_ids = UUIDListFilter(field_name="department_id")
    department_search = django_filters.CharFilter(method="noop")

    def noop(self, queryset, name, value):
        """Facet-search text narrows the facet's options, not the rows."""
        return queryset


class PersonaFilterSet(DepartmentFilterSet):
    search_fields = ("title", "description", "voice")

    class Meta:
        model = m.Persona
        fields = []


class DocumentFilterSet(DepartmentFilterSet):
    class Meta:
        model = m.Document
        fields = []


class ScenarioFilterSet(DepartmentFilterSet):
    persona_ids = UUIDListFilter(field_name="persona_id")
    field_ids = UUIDListFilter(field_name="input_fields__id", distinct=True)
    modality = django_filters.ChoiceFilter(choices=m.Modality.choices)

    class Meta:
        model = m.Scenario
        fields = []


class RubricFilterSet(DepartmentFilterSet):
    class Meta:
        model = m.Rubric
        fields = []


class SimulationFilterSet(DepartmentFilterSet):
    rubric_ids = UUIDListFilter(field_name="rubric_id")
    scenario_ids = UUIDListFilter(field_name="scenarios__id", distinct=True)

    class Meta:
        model = m.Simulation
        fields = []


class EntryFilterSet(DepartmentFilterSet):
    simulation_ids = UUIDListFilter(field_name="simulation_id")
    cohort_ids = UUIDListFilter(field_name="cohort_id")
    simulation_search = django_filters.CharFilter(method="noop")


class HomeFilterSet(EntryFilterSet):
    class Meta:
        model = m.Home
        fields = []


class PracticeFilterSet(EntryFilterSet):
    class Meta:
        model = m.Practice
        fields = []


class ModelFilterSet(ArtifactFilterSet):
    provider = django_filters.ChoiceFilter(choices=m.Provider.choices)
    search_fields = ("title", "description", "provider_model")

    class Meta:
        model = m.AIModel
        fields = []


class ToolFilterSet(ArtifactFilterSet):
    search_fields = ("title", "description", "name")
    field_ids = UUIDListFilter(field_name="input_fields__id", distinct=True)

    class Meta:
        model = m.Tool
        fields = []


class AgentFilterSet(DepartmentFilterSet):
    parameter_ids = UUIDListFilter(field_name="parameter_set_id")

    class Meta:
        model = m.Agent
        fields = []


class EvalFilterSet(DepartmentFilterSet):
    rubric_ids = UUIDListFilter(field_name="rubric_id")
    field_ids = UUIDListFilter(field_name="input_fields__id", distinct=True)

    class Meta:
        model = m.Eval
        fields = []


class InputFieldFilterSet(ArtifactFilterSet):
    type = django_filters.ChoiceFilter(choices=m.FieldType.choices)
    required = django_filters.BooleanFilter()
    search_fields = ("title", "description", "name")

    class Meta:
        model = m.InputField
        fields = []


class ParameterSetFilterSet(ArtifactFilterSet):
    class Meta:
        model = m.ParameterSet
        fields = []
