"""Per-row aggregates: one related table's aggregate for each outer row, as a subquery."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery


def per_row(queryset, expression, *, by: str) -> Subquery:
    """`expression` (Count, Sum, ...) over the rows of `queryset` whose `by` field is the outer
    row's pk, for an UPDATE or an annotation (None for an outer row with no such rows)."""
    return Subquery(
        queryset.filter(**{by: OuterRef("pk")})
        .order_by()
        .values(by)
        .annotate(value=expression)
        .values("value")[:1]
    )
