"""Search filters for tests and invocations (facets: eval and department; model, scenario, agent)."""

import django_filters

from glow.core.filters import ArtifactFilterSet, UUIDListFilter
from tests_app.models import Invocation, InvocationStatus, Test, TestStatus


class FacetSearch(ArtifactFilterSet):
    def noop(self, queryset, name, value):
        """Facet-search text narrows the facet's options, not the rows."""
        return queryset


class TestFilterSet(FacetSearch):
    eval_ids = UUIDListFilter(field_name="eval_id")
    department_ids = UUIDListFilter(field_name="department_id")
    status = django_filters.ChoiceFilter(choices=TestStatus.choices)
    eval_search = django_filters.CharFilter(method="noop")
    department_search = django_filters.CharFilter(method="noop")

    class Meta:
        model = Test
        fields = []


class InvocationFilterSet(FacetSearch):
    test_ids = UUIDListFilter(field_name="test_id")
    model_ids = UUIDListFilter(field_name="model_id")
    scenario_ids = UUIDListFilter(field_name="scenario_id")
    agent_ids = UUIDListFilter(field_name="agent_id")
    status = django_filters.ChoiceFilter(choices=InvocationStatus.choices)
    model_search = django_filters.CharFilter(method="noop")
    scenario_search = django_filters.CharFilter(method="noop")
    agent_search = django_filters.CharFilter(method="noop")

    class Meta:
        model = Invocation
        fields = []
