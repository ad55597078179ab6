"""Many rows' fields set in one UPDATE ... FROM (VALUES ...), for workers that write in batches.

QuerySet.bulk_update builds a CASE WHEN per row and field, casting each value: for a few dozen
rows that is tens of milliseconds of query building, more than the statement itself.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Model, QuerySet


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
    selected, selected_params = (
        queryset.filter(pk__in=[obj.pk for obj in objs]).values("pk").query.sql_with_params()
    )
    sql = (
        f"UPDATE {table} SET {assignments} "
        f"FROM (SELECT {aliases} FROM (VALUES {', '.join([row] * len(objs))}) AS t) AS v "
        f"WHERE {table}.{quote(pk.column)} = v.pk "
        f"AND {table}.{quote(pk.column)} IN ({selected})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *selected_params])
        return cursor.rowcount
