"""Writes of many rows for code that works in batches: COPY inserts and UPDATE ... FROM (VALUES).

Django's bulk_create compiles one INSERT with a parameter per value and quotes every value in
Python (about 0.3 s for 1,000 rows of 30 columns); COPY streams the same rows, adapted in C by
psycopg, in a fraction of that. QuerySet.bulk_update builds a CASE WHEN per row and field,
casting each value: for a few dozen rows that is tens of milliseconds of query building, more
than the statement itself. Off PostgreSQL both fall back to the ORM's own paths.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial

from django.db import connection, models
from django.db.models import JSONField, Model, QuerySet
from django.utils import timezone

_PER_ROW = object()


def _copy(model: type[Model], records: Iterable[list]) -> None:
    """COPY `records` (one value per concrete field, in field order) into the model's table."""
    from psycopg.types.json import Jsonb

    fields = model._meta.concrete_fields
    json_columns = [index for index, field in enumerate(fields) if isinstance(field, JSONField)]
    dumps = {
        index: partial(json.dumps, cls=fields[index].encoder) if fields[index].encoder else None
        for index in json_columns
    }
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,  # logged like a query
    ):
        for record in records:
            for index in json_columns:
                if record[index] is not None:  # None is SQL NULL, as the ORM saves it
                    record[index] = Jsonb(record[index], dumps=dumps[index])
            copy.write_row(record)


def copy_rows(model: type[Model], attnames: list[str], rows: Iterable[list]) -> None:
    """COPY `rows` into the named columns (PostgreSQL only), each value as psycopg adapts it;
    a JSON column takes its JSON text as it is (an already encoded payload is not re-encoded)."""
    meta = model._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in attnames)
    table = connection.ops.quote_name(meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,  # logged like a query
    ):
        for row in rows:
            copy.write_row(row)


def bulk_insert(model: type[Model], rows: list[dict]) -> None:
    """Insert `rows` (attname -> value; the primary key included) in one statement; a column a
    row leaves out gets its field's default (auto_now: now). Constant defaults are resolved
    once; only callable ones (a UUID) are called per row."""
    now = timezone.now()
    fields = model._meta.concrete_fields
    fallback = []
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            fallback.append(now)
        elif field.has_default() and callable(field.default):
            fallback.append(_PER_ROW)
        else:
            fallback.append(field.get_default())
    names = [field.attname for field in fields]
    records = []
    for row in rows:
        record = []
        for field, name, default in zip(fields, names, fallback, strict=True):
            if name in row:
                record.append(row[name])
            elif default is _PER_ROW:
                record.append(field.get_default())
            else:
                record.append(default)
        records.append(record)
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            model(**dict(zip(names, record, strict=True))) for record in records
        )
        return
    _copy(model, records)


def bulk_copy(objs: list[Model]) -> None:
    """bulk_create for model instances of one model, as COPY on PostgreSQL: the same pre_save
    values (auto_now stamps set on the instances), no signals, and no primary keys read back,
    so every instance must carry its own (a UUID default, or one reserved with reserve_ids)."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    fields = model._meta.concrete_fields
    prepare = [_preparer(field) for field in fields]
    for obj in objs:
        obj._state.adding = False
    _copy(
        model,
        ([prep(field, obj) for field, prep in zip(fields, prepare, strict=True)] for obj in objs),
    )


# Columns whose Python values psycopg adapts as Django would prepare them: for these the value is
# taken as it is (Django's get_db_prep_save, a chain of calls per value, was most of the cost).
_NATIVE = (
    models.IntegerField,
    models.BooleanField,
    models.UUIDField,
    models.DecimalField,
    models.DateTimeField,
)


def _preparer(field):
    """How bulk_copy reads `field` of an instance, as the value COPY writes."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda field, obj: field.pre_save(obj, True)
    if isinstance(field, JSONField):
        return lambda field, obj: getattr(obj, field.attname)
    target = field.target_field if field.is_relation else field
    if isinstance(target, _NATIVE):
        return lambda field, obj: getattr(obj, field.attname)
    if isinstance(target, models.CharField | models.TextField):
        # Choices members are str subclasses: written as their value.
        def text(field, obj):
            value = getattr(obj, field.attname)
            return value if value is None or type(value) is str else str(value)

        return text
    return lambda field, obj: field.get_db_prep_save(getattr(obj, field.attname), connection)


def reserve_ids(model: type[Model], count: int) -> list[int]:
    """`count` values of the model's auto-increment primary key, in increasing order, for rows
    written with bulk_copy (PostgreSQL only)."""
    table = model._meta.db_table
    column = model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, column, count],
        )
        return sorted(row[0] for row in cursor.fetchall())


def bulk_set(queryset: QuerySet, objs: list[Model], fields: list[str]) -> int:
    """Write `fields` of each of `objs` to its row, for the rows `queryset` selects; answers how
    many rows were written. Like bulk_update, it calls no save() and no auto_now."""
    if not objs:
        return 0
    meta = queryset.model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    # PostgreSQL types a VALUES list from its literals: every value is cast to its column's type.
    typed = connection.vendor == "postgresql"

    def slot(field) -> str:
        return f"%s::{field.db_type(connection)}" if typed else "%s"

    row = "(" + ", ".join(slot(field) for field in [pk, *columns]) + ")"
    params: list = []
    for obj in objs:
        params.append(pk.get_db_prep_value(obj.pk, connection))
        params += [
            field.get_db_prep_value(getattr(obj, field.attname), connection) for field in columns
        ]
    names = ["pk", *(f"c{index}" for index in range(len(columns)))]
    aliases = ", ".join(f"column{index + 1} AS {name}" for index, name in enumerate(names))
    table = quote(meta.db_table)
    assignments = ", ".join(
        f"{quote(field.column)} = v.c{index}" for index, field in enumerate(columns)
    )
    sql = (
        f"UPDATE {table} SET {assignments} "
        f"FROM (SELECT {aliases} FROM (VALUES {', '.join([row] * len(objs))}) AS t) AS v "
        f"WHERE {table}.{quote(pk.column)} = v.pk"
    )
    selected_params: tuple = ()
    if queryset.query.where:  # else the join on v.pk is the whole selection
        selected, selected_params = (
            queryset.filter(pk__in=[obj.pk for obj in objs]).values("pk").query.sql_with_params()
        )
        sql += f" AND {table}.{quote(pk.column)} IN ({selected})"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *selected_params])
        return cursor.rowcount
