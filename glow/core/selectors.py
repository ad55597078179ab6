"""Reads shared by every family: the access choke point, scoped querysets, search with facets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet

from glow.core.errors import ApplicationError, NotFound
from glow.core.registry import Family

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 200


def artifact_queryset(*, actor, family: Family, include_archived: bool = True) -> QuerySet:
    """Rows of `family` this actor may see: their organization, then the family's role scope."""
    queryset = family.model.objects.all()
    queryset = queryset.filter(**{family.organization_field: actor.organization_id})
    queryset = family.scope(queryset, actor)
    if not include_archived:
        queryset = queryset.filter(archived=False)
    return queryset


def artifact_access(*, actor, family: Family, pk: Any, for_update: bool = False, queryset=None):
    """One row, or NotFound: missing and forbidden answer the same 404."""
    queryset = queryset if queryset is not None else artifact_queryset(actor=actor, family=family)
    if for_update:
        # Scoping may join; lock only the family's own row.
        queryset = queryset.select_for_update(of=("self",))
    try:
        return queryset.get(pk=pk)
    except (family.model.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No {family.label} with that id.")
    except family.model.MultipleObjectsReturned:
        return queryset.filter(pk=pk).first()


def archived_state(params: dict, queryset: QuerySet) -> QuerySet:
    """Omitted: live rows; is_archived true/false: that state only; show_archived true: both."""
    if params.get("show_archived") is True:
        return queryset
    is_archived = params.get("is_archived")
    if is_archived is True:
        return queryset.filter(archived=True)
    return queryset.filter(archived=False)


@dataclass(frozen=True)
class Page:
    offset: int
    size: int


def page_of(params: dict) -> Page:
    size = params.get("page_size")
    size = DEFAULT_PAGE_SIZE if size in (None, "") else size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ApplicationError(
            "page_size must be a positive integer.", fields={"page_size": ["Invalid."]}
        )
    size = min(size, MAX_PAGE_SIZE)
    offset = params.get("page_offset")
    if offset in (None, "") and params.get("page") not in (None, ""):
        page = params["page"]
        if not isinstance(page, int) or isinstance(page, bool) or page < 0:
            raise ApplicationError("page must be a 0-based integer.", fields={"page": ["Invalid."]})
        offset = page * size
    offset = offset or 0
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ApplicationError("page_offset must be >= 0.", fields={"page_offset": ["Invalid."]})
    return Page(offset=offset, size=size)


def filter_params(body: dict) -> dict:
    """Flat filters of bulk writes may be prefixed (`filter_cohort_ids`): both spellings work."""
    params = {}
    for key, value in body.items():
        if key.startswith("filter_"):
            params.setdefault(key[len("filter_") :], value)
        else:
            params[key] = value
    return params


def filtered(
    *, family: Family, queryset: QuerySet, params: dict, without: str | None = None
) -> QuerySet:
    """Apply the family's FilterSet (minus one param, for facet counts); 400 on invalid values."""
    if family.filterset is None:
        return queryset
    data = {key: value for key, value in params.items() if key != without and value is not None}
    filterset = family.filterset(data=data, queryset=queryset)
    if not filterset.is_valid():
        errors = {
            name: [str(message) for message in messages]
            for name, messages in filterset.errors.items()
        }
        raise ApplicationError(f"Invalid filter: {', '.join(errors)}.", fields=errors)
    return filterset.qs


def facet_section(*, facet, queryset: QuerySet, params: dict) -> dict:
    """Options with counts over the filtered rows minus this facet's own filter."""
    rows = (
        queryset.order_by()
        .values(facet.field, facet.label)
        .annotate(count=Count("pk", distinct=True))
        .order_by(facet.label)
    )
    needle = (params.get(facet.search_param) or "").strip().lower() if facet.search_param else ""
    options = [
        {"id": str(row[facet.field]), "label": row[facet.label] or "", "count": row["count"]}
        for row in rows
        if row[facet.field] is not None
        and (not needle or needle in (row[facet.label] or "").lower())
    ]
    selected = [str(value) for value in (params.get(facet.param) or [])]
    return {"options": options, "selected": selected}


@dataclass
class SearchResult:
    rows: list
    total_count: int
    facets: dict[str, dict]
    page: Page


def artifact_search(
    *,
    actor,
    family: Family,
    params: dict,
    queryset: QuerySet | None = None,
    ordering: tuple[str, ...] = ("-created_at", "-id"),
) -> SearchResult:
    """Filtered, paginated rows plus facets: a fixed number of queries, whatever the page size."""
    base = queryset if queryset is not None else artifact_queryset(actor=actor, family=family)
    base = archived_state(params, base)
    page = page_of(params)
    matching = filtered(family=family, queryset=base, params=params)
    total = matching.count()
    rows = list(matching.for_api().order_by(*ordering)[page.offset : page.offset + page.size])
    facets = {}
    for facet in family.facets:
        facet_rows = filtered(family=family, queryset=base, params=params, without=facet.param)
        facets[facet.name] = facet_section(facet=facet, queryset=facet_rows, params=params)
    return SearchResult(rows=rows, total_count=total, facets=facets, page=page)


def bulk_selection(
    *, actor, family: Family, body: dict, queryset: QuerySet | None = None
) -> QuerySet:
    """The rows a bulk write targets: explicit ids, or `all: true` + flat filters - excluded_ids."""
    base = queryset if queryset is not None else artifact_queryset(actor=actor, family=family)
    ids = body.get(family.ids_field) or body.get("ids")
    if ids:
        selection = base.filter(pk__in=ids)
        # An id the actor cannot see answers 404, like every single-row op, not a silent 0.
        if selection.values("pk").distinct().count() != len(set(ids)):
            raise NotFound(f"No {family.label} with one of those ids.")
        return selection
    if body.get("all") is True:
        params = filter_params(body)
        params.pop("is_archived", None)
        params.pop("show_archived", None)
        selection = filtered(family=family, queryset=base, params=params)
        excluded = body.get("excluded_ids") or []
        if excluded:
            selection = selection.exclude(pk__in=excluded)
        return selection
    raise ApplicationError(
        f"Name the rows: {family.ids_field}, or all: true with filters.",
        fields={family.ids_field: ["This field is required unless all is true."]},
    )


def drafts_of(*, actor, family: Family) -> QuerySet:
    from glow.core.models import Draft

    return Draft.objects.filter(
        author=actor, family=family.name, organization_id=actor.organization_id
    )
