"""Search runs on indexes: every family's live listing and every id-list filter, read from the database."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connection

from glow.core.filters import UUIDListFilter
from glow.core.models import Artifact
from tests.support.families import model_families

pytestmark = pytest.mark.django_db

FAMILIES = model_families()


def leading_columns(table: str) -> set[tuple[str, ...]]:
    """Column lists of every index, unique constraint and primary key of a table."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {
        tuple(c["columns"])
        for c in constraints.values()
        if c["columns"] and (c["index"] or c["unique"] or c["primary_key"])
    }


def indexed(table: str, column: str) -> bool:
    return any(columns[0] == column for columns in leading_columns(table))


def filter_columns(model, field_name: str) -> tuple[str, str] | None:
    """The (table, column) an id-list filter compares: a local column, or a link table's column."""
    name = field_name.removesuffix("__id")
    field = model._meta.get_field(name.removesuffix("_id"))
    if field.many_to_many and "__" not in name:
        through = field.remote_field.through._meta
        target = next(f for f in through.fields if f.related_model is field.related_model)
        return through.db_table, target.column
    if field.concrete and "__" not in name:
        return model._meta.db_table, field.column
    return None


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_the_live_listing_of_every_artifact_family_has_its_index(family):
    if not issubclass(family.model, Artifact):
        pytest.skip(f"{family.model.__name__} is not an Artifact")
    table = family.model._meta.db_table
    assert ("organization_id", "archived", "created_at") in leading_columns(table), table


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_every_id_list_filter_has_an_index(family):
    if family.filterset is None:
        pytest.skip(f"{family.name} has no filters")
    checked = 0
    for name, flt in family.filterset.base_filters.items():
        if not isinstance(flt, UUIDListFilter):
            continue
        target = filter_columns(family.model, flt.field_name)
        if target is None:
            continue
        table, column = target
        assert indexed(table, column), f"{family.name}.{name}: no index leads with {table}.{column}"
        checked += 1
    assert checked, f"{family.name}: no id-list filter was checked"


def test_time_ordered_ids_sort_in_creation_order_and_stay_unique():
    """Runs, events' runs, invocations and messages are written by the thousand: their ids must
    append to the primary-key index (RFC 9562 version 7), not land on random pages."""
    from glow.core.ids import uuid7

    ids = [uuid7() for _ in range(20_000)]

    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {value.version for value in ids} == {7}
    assert all(value.variant == uuid.RFC_4122 for value in ids)
    now_ms = time.time_ns() // 1_000_000
    assert abs((ids[-1].int >> 80) - now_ms) < 5_000  # the leading 48 bits are Unix milliseconds
