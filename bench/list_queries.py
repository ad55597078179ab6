"""Benchmark: every family's search makes the same number of queries at page size 1 and 50.

DESIGN.md section 7: any list endpoint's query count is independent of page size. Each
registered family with a model gets 60 rows made by its test factory (the generic tests' rows)
in one fresh organization; its search is then called as that organization's admin at page
size 1 and 50 with the query log on, and the two counts compared. (system/sessions, the one
list without a model, is counted by bench.system_sessions over its 100,000 sessions.)

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_bench .venv/bin/python -m bench.list_queries

It works in its own database (test_<name>_lists of DATABASE_URL), kept and emptied on each run.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from bench import bench_database, figure, setup_django, unthrottled

ROWS = 60
SIZES = (1, 50)


def seed(factory, organization) -> None:
    """ROWS rows: two from the factory, the rest copies of the first in one INSERT (fast;
    a family whose rows cannot be copied so gets all of them from the factory)."""
    from django.db import IntegrityError, transaction

    first = factory(organization=organization)
    factory(organization=organization)
    copies = []
    for _ in range(ROWS - 2):
        copy = type(first).objects.get(pk=first.pk)
        copy.pk = uuid.uuid4()
        copies.append(copy)
    try:
        with transaction.atomic():
            type(first).objects.bulk_create(copies)
    except IntegrityError:
        for _ in range(ROWS - 2):
            factory(organization=organization)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)

    setup_django()
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from glow.accounts.services import api_key_create
    from glow.accounts.tests.factories import ProfileFactory
    from glow.core.registry import op_table, registry
    from tests.support.families import install_family_factories

    if connection.vendor != "postgresql":
        print("list_queries: needs PostgreSQL (DATABASE_URL); skipped.")
        return 0
    unthrottled()
    install_family_factories()
    failed = False
    with bench_database("lists", keep=True):
        # Emptied first (quicker than migrating a new one): the factories' usernames start
        # over in every process.
        call_command("flush", interactive=False, verbosity=0)
        admin = ProfileFactory(role="admin")
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=api_key_create(profile=admin).plaintext)
        ops = op_table()
        for family in registry.families():
            factory = family.extra.get("factory") if family.model is not None else None
            if factory is None or "search" not in ops[family.name]:
                continue
            seed(factory, admin.organization)
            path = f"/api/v5/artifacts/{family.name}/search"
            client.post(path, {}, format="json")  # the session's first request books it
            counts, rows = [], []
            for size in SIZES:
                reset_queries()
                with CaptureQueriesContext(connection) as captured:
                    response = client.post(path, {"page_size": size}, format="json")
                    counts.append(len(captured))
                if response.status_code != 200:
                    raise SystemExit(
                        f"{path} answered {response.status_code}: {response.content!r}"
                    )
                rows.append(len(response.json()[family.plural]))
            constant = len(set(counts)) == 1
            failed |= not constant
            figure(
                f"{family.name}/search queries at page size {SIZES[0]} / {SIZES[1]}",
                "equal",
                f"{counts[0]} / {counts[1]} (rows {rows[0]} / {rows[1]})",
                constant,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
