"""The core FilterSet every family's search subclasses: JSON-list filters, text search, dates."""

from __future__ import annotations

import uuid

import django_filters
from django import forms
from django.db.models import Q


class ListField(forms.Field):
    """A JSON list (or a comma-separated string) of values of one kind."""

    def __init__(self, *args, item_field: forms.Field | None = None, **kwargs) -> None:
        self.item_field = item_field or forms.UUIDField()
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        if value in (None, "", []):
            return []
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise forms.ValidationError("Expected a list.", code="invalid_list")
        return [self.item_field.clean(item) for item in value]


class UUIDListFilter(django_filters.Filter):
    """`<field>__in` from a JSON list of UUIDs; an empty list means no filter."""

    field_class = ListField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        # A path through a many-to-many (e.g. cohort members) would repeat rows without distinct.
        qs = qs.filter(**{f"{self.field_name}__in": value})
        return qs.distinct() if self.distinct else qs


class ArtifactFilterSet(django_filters.FilterSet):
    """Shared filters: `search` over title/description, dates, archived state."""

    search = django_filters.CharFilter(method="filter_search")
    start_date = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    end_date = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")
    ids = UUIDListFilter(field_name="id")

    search_fields: tuple[str, ...] = ("title", "description")

    def filter_search(self, queryset, name, value):
        value = (value or "").strip()
        if not value:
            return queryset
        query = Q()
        for field_name in self.search_fields:
            query |= Q(**{f"{field_name}__icontains": value})
        return queryset.filter(query)


def is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError):
        return False
    return True
