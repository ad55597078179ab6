"""Writing a test's thousand invocations in one statement: COPY on PostgreSQL, bulk INSERT elsewhere.

Django's bulk_create quotes every value in Python (about 0.3 s for 1,000 rows of 30 columns);
COPY streams the same rows in a tenth of that, which is what keeps test/start within budget.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import JSONField, Model
from django.utils import timezone

_PER_ROW = object()


def _values(model: type[Model], rows: list[dict]) -> tuple[list[str], list[tuple]]:
    """Every concrete column, from the row or else from the field's default (auto_now: now).

    Constant defaults are resolved once; only callable ones (a UUID) are called per row.
    """
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
    values = []
    for row in rows:
        record = []
        for field, name, default in zip(fields, names, fallback, strict=True):
            if name in row:
                record.append(row[name])
            elif default is _PER_ROW:
                record.append(field.get_default())
            else:
                record.append(default)
        values.append(tuple(record))
    return names, values


def bulk_insert(model: type[Model], rows: list[dict]) -> None:
    """Insert `rows` (attname -> value; the primary key included) in one statement."""
    names, values = _values(model, rows)
    if connection.vendor != "postgresql":
        model.objects.bulk_create(
            model(**dict(zip(names, record, strict=True))) for record in values
        )
        return
    from psycopg.types.json import Jsonb

    fields = model._meta.concrete_fields
    json_columns = [index for index, field in enumerate(fields) if isinstance(field, JSONField)]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for record in values:
            record = list(record)
            for index in json_columns:
                record[index] = Jsonb(record[index])
            copy.write_row(record)
