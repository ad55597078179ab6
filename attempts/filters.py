"""Search filters for attempts: every filter of seeds 000 and 001 (search, archive, export)."""

from __future__ import annotations

import django_filters

from attempts.models import Attempt, AttemptStatus, Chat
from glow.core.filters import ArtifactFilterSet, UUIDListFilter


class AttemptFilterSet(ArtifactFilterSet):
    # The title is "<simulation> — <learner>", so one column answers both kinds of search.
    search_fields = ("title", "description")

    simulation_ids = UUIDListFilter(field_name="simulation_id")
    department_ids = UUIDListFilter(field_name="department_id")
    cohort_ids = UUIDListFilter(field_name="cohort_id")
    profile_ids = UUIDListFilter(field_name="profile_id")
    profile_ids_filter = UUIDListFilter(field_name="profile_id")
    target_profile_id = django_filters.UUIDFilter(field_name="profile_id")
    home_ids = UUIDListFilter(field_name="home_id")
    practice_ids = UUIDListFilter(field_name="practice_entry_id")
    scenario_ids = UUIDListFilter(field_name="id", method="filter_scenarios")
    practice = django_filters.BooleanFilter()
    infinite_mode = django_filters.BooleanFilter()
    passed = django_filters.BooleanFilter()
    status = django_filters.ChoiceFilter(choices=AttemptStatus.choices)
    # Facet-search text narrows a facet's options, not the rows.
    simulation_search = django_filters.CharFilter(method="noop")
    department_search = django_filters.CharFilter(method="noop")
    cohort_search = django_filters.CharFilter(method="noop")
    learner_search = django_filters.CharFilter(method="noop")

    class Meta:
        model = Attempt
        fields = []

    def noop(self, queryset, name, value):
        return queryset

    def filter_scenarios(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(
            id__in=Chat.objects.filter(scenario_id__in=value).values("attempt_id")
        )
