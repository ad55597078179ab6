"""Benchmark: system/sessions and system/session p50 over 100,000 sessions and 1,000,000 runs.

Seeds one organization in PostgreSQL with set-based INSERT ... SELECT (timed separately), then
calls both ops over HTTP (a uvicorn process: API-key auth, session books, serializers) and
prints p50/p95 against DESIGN.md section 7 (p50 <= 50 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_bench .venv/bin/python -m bench.system_sessions
    ... --scale 0.01      # 1,000 sessions / 10,000 runs, for a quick run
    make bench            # with every other benchmark (python -m bench)
    ... --drop            # drop the bench database afterwards (by default the next run at the
                          # same scale finds the rows and skips seeding)

The timed calls go over HTTP from this process to a uvicorn process of the production profile;
the query counts are taken in this process. It works in its own database (test_<name>_system
for DATABASE_URL's <name>), never in the one named.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import (  # noqa: E402
    bench_database,
    bench_profiles,
    django_on_services,
    figure,
    percentile,
    production_env,
    scaled_arguments,
    serve,
    unthrottled,
)

BUDGET_MS = 50.0
SESSIONS = 100_000
GROUPS_PER_SESSION = 2
RUNS_PER_GROUP = 5
PROFILES = 500
DAYS = 180
ORG_NAME = "Bench University (system)"


def seed(*, sessions: int, cursor, organization_id, profile_ids: list) -> dict[str, float]:
    """Runs first (foreign keys are checked at commit), then groups and sessions aggregated from
    them, so every counter equals what the services would have kept. Ids are sequential UUIDs:
    appending to the indexes is what keeps a million-row INSERT fast."""
    cursor.execute("CREATE TEMP TABLE bench_profiles (slot int PRIMARY KEY, id uuid NOT NULL)")
    cursor.executemany(
        "INSERT INTO bench_profiles (slot, id) VALUES (%s, %s)", list(enumerate(profile_ids))
    )
    params = {
        "org": organization_id,
        "profiles": len(profile_ids),
        "sessions": sessions,
        "runs": sessions * GROUPS_PER_SESSION * RUNS_PER_GROUP,
        "per_session": GROUPS_PER_SESSION * RUNS_PER_GROUP,
        "rpg": RUNS_PER_GROUP,
        "gps": GROUPS_PER_SESSION,
        "days": DAYS,
    }
    steps: dict[str, float] = {}

    def step(name: str, sql: str) -> None:
        started = time.perf_counter()
        cursor.execute(sql, params)
        steps[name] = time.perf_counter() - started

    step(
        "runs",
        """
        INSERT INTO system_run (id, organization_id, group_id, session_id, profile_id, kind, family,
            model_id, provider, provider_model, status, input_tokens, output_tokens, total_tokens,
            cost, created_at, started_at, finished_at, latency_ms, error, cancel_requested,
            client_run_id, mcp, artifact_id, messages, output, params, event_seq)
        SELECT lpad(to_hex(n), 32, '0')::uuid, %(org)s,
            lpad(to_hex(n / %(rpg)s), 32, '0')::uuid,
            lpad(to_hex(n / %(per_session)s), 32, '0')::uuid, p.id,
            'generate', 'persona', NULL, 'local', 'glow-local', 'succeeded',
            100 + n %% 50, 50 + n %% 30, 150 + n %% 50 + n %% 30,
            round(((100 + n %% 50) * 0.5 + (50 + n %% 30) * 1.5) / 1000000.0, 6),
            at, at, at + interval '900 milliseconds', 900, '', false, '', false, NULL,
            '[{"role": "user", "content": "Draft a persona."}]'::jsonb,
            'A drafted persona.', '{}'::jsonb, 0
        FROM generate_series(0, %(runs)s - 1) AS n
        JOIN bench_profiles p ON p.slot = (n / %(per_session)s) %% %(profiles)s
        CROSS JOIN LATERAL (
            SELECT now()
                - ((n / %(per_session)s)::float / %(sessions)s * %(days)s) * interval '1 day'
                + ((n / %(rpg)s) %% %(gps)s) * interval '5 minutes'
                + (n %% %(rpg)s) * interval '20 seconds' AS at
        ) t
        """,
    )
    step(
        "groups",
        """
        INSERT INTO system_group (id, organization_id, session_id, profile_id, name, family,
            artifact_id, created_at, first_run_at, last_run_at, run_count, total_tokens, total_cost)
        SELECT group_id, %(org)s, session_id, profile_id, 'Persona draft', 'persona', NULL,
            min(created_at) - interval '1 second', min(started_at), max(finished_at),
            count(*), sum(total_tokens), sum(cost)
        FROM system_run WHERE organization_id = %(org)s
        GROUP BY group_id, session_id, profile_id
        """,
    )
    step(
        "sessions",
        """
        INSERT INTO system_session (id, organization_id, profile_id, client_kind, auth, user_agent,
            created_at, last_seen_at, active, group_count, run_count, total_tokens, total_cost)
        SELECT session_id, %(org)s, profile_id,
            (ARRAY['api', 'cli', 'browser', 'mcp'])[1 + abs(hashtext(session_id::text)) %% 4],
            'api_key', 'bench', min(created_at) - interval '1 second', max(last_run_at),
            max(last_run_at) > now() - interval '30 minutes',
            count(*), sum(run_count), sum(total_tokens), sum(total_cost)
        FROM system_group WHERE organization_id = %(org)s
        GROUP BY session_id, profile_id
        """,
    )
    step(
        "timeline",
        """
        INSERT INTO system_timelineevent (organization_id, session_id, actor_id, event_type,
            entity_id, entity_name, extra_1, extra_2, created_at)
        SELECT %(org)s, session_id, profile_id, 'group.created', id::text, name, 'persona', '',
            created_at
        FROM system_group WHERE organization_id = %(org)s ORDER BY created_at
        """,
    )
    return steps


def prepare(*, sessions: int) -> tuple[object, float, dict[str, float] | None]:
    """The bench organization's admin, the seeding time and its steps (None: reused)."""
    from django.contrib.auth import get_user_model
    from django.db import DatabaseError, connection, transaction

    from glow.accounts.models import Organization, Profile
    from system.models import Run, Session

    organization, _ = Organization.objects.get_or_create(name=ORG_NAME)
    expected_runs = sessions * GROUPS_PER_SESSION * RUNS_PER_GROUP
    have_sessions = Session.objects.filter(organization=organization, user_agent="bench").count()
    if have_sessions == sessions and (
        Run.objects.filter(organization=organization).count() == expected_runs
    ):
        return Profile.objects.get(organization=organization, role="admin"), 0.0, None

    started = time.perf_counter()
    User = get_user_model()
    with connection.cursor() as cursor:
        # The bench database is its own: emptying the books is faster than a cascading delete.
        cursor.execute(
            "TRUNCATE system_event, system_run, system_group, system_timelineevent, "
            "system_session CASCADE"
        )
    Organization.objects.filter(pk=organization.pk).delete()
    User.objects.filter(username__startswith="bench-system-").delete()
    organization = Organization.objects.create(name=ORG_NAME)
    profiles = bench_profiles(
        organization,
        username="bench-system",
        display_name="Bench person",
        roles=["learner"] * PROFILES + ["admin"],
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # The rows are consistent by construction: skipping the per-row foreign-key triggers
        # (superuser only; otherwise they run at commit) divides the seeding time.
        with transaction.atomic(), contextlib.suppress(DatabaseError):
            cursor.execute("SET LOCAL session_replication_role = replica")
        steps = seed(
            sessions=sessions,
            cursor=cursor,
            organization_id=organization.pk,
            profile_ids=[profile.pk for profile in profiles[:PROFILES]],
        )
        commit_started = time.perf_counter()
    steps["commit"] = time.perf_counter() - commit_started
    with connection.cursor() as cursor:
        vacuum_started = time.perf_counter()
        cursor.execute(
            "VACUUM ANALYZE system_session, system_group, system_run, system_timelineevent"
        )
        steps["vacuum analyze"] = time.perf_counter() - vacuum_started
    return profiles[PROFILES], time.perf_counter() - started, steps


def measure(client, path: str, bodies: list[dict], *, warmup: int) -> list[float]:
    """Milliseconds per call over HTTP, from this process to the uvicorn process."""
    for body in bodies[:warmup]:
        client.post(path, json=body)
    timings = []
    for body in bodies:
        started = time.perf_counter()
        response = client.post(path, json=body)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text[:300]}")
    return timings


def queries(client, path: str, body: dict) -> int:
    """Queries of one call made in this process (the query log is only kept here)."""
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        response = client.post(path, body, format="json")
        made = len(captured)
    if response.status_code != 200:
        raise SystemExit(f"{path} answered {response.status_code}: {response.content[:300]!r}")
    return made


def report(name: str, timings: list[float], counts: str, constant: bool) -> bool:
    p50, p95 = percentile(timings, 50), percentile(timings, 95)
    ok = p50 <= BUDGET_MS
    print(
        f"  {name:<22} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   queries {counts}   "
        f"budget p50 <= {BUDGET_MS:.0f} ms: {'OK' if ok else 'OVER'}"
    )
    figure(
        f"{name} over HTTP", f"p50 <= {BUDGET_MS:.0f} ms", f"{p50:.1f} ms", ok, p95=f"{p95:.1f} ms"
    )
    figure(f"{name} queries", "same at every page size", counts, constant)
    return ok and constant


def main(argv: list[str] | None = None) -> int:
    args = scaled_arguments(
        argv,
        doc=__doc__,
        scale="1.0 = 100,000 sessions",
        requests=200,
        requests_help="timed calls per op",
    )
    if not django_on_services("system_sessions"):
        return 0
    import httpx
    from rest_framework.test import APIClient

    from glow.accounts.services import api_key_create
    from system.models import Session

    unthrottled()
    # Its own database, kept: the next run at the same scale reuses the seeded rows.
    with bench_database("system", keep=not args.drop) as database:
        sessions = max(int(SESSIONS * args.scale), 10)
        runs = sessions * GROUPS_PER_SESSION * RUNS_PER_GROUP
        admin, seeded_in, steps = prepare(sessions=sessions)
        print(f"system sessions benchmark: {sessions:,} sessions, {runs:,} runs (PostgreSQL)")
        if steps is None:
            print("  seeding                reused (kept from an earlier run)")
            figure(f"seed {sessions:,} sessions / {runs:,} runs", "-", "reused", None)
        else:
            detail = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items())
            print(f"  seeding                {seeded_in:7.1f} s ({detail})")
            figure(f"seed {sessions:,} sessions / {runs:,} runs", "-", f"{seeded_in:.1f} s", None)
        key = api_key_create(profile=admin).plaintext
        local = APIClient()
        local.credentials(HTTP_X_API_KEY=key)
        rng = random.Random(7)
        ids = list(
            Session.objects.filter(organization_id=admin.organization_id, user_agent="bench")
            .order_by("?")
            .values_list("pk", flat=True)[: args.requests]
        )
        base = "/api/v5/artifacts/system/"
        pages = [
            {"page_size": 25, "page_offset": rng.choice([0, 0, 0, 25, 50, 100])}
            for _ in range(args.requests)
        ]
        details = [{"session_id": str(rng.choice(ids))} for _ in range(args.requests)]
        queries(local, base + "sessions", {})  # the client's first request books its session
        by_size = [queries(local, base + "sessions", {"page_size": size}) for size in (1, 25, 50)]
        detail_counts = [queries(local, base + "session", body) for body in details[:3]]
        with (
            serve(production_env(database)) as (url,),
            httpx.Client(base_url=url, headers={"X-Api-Key": key}, timeout=30) as client,
        ):
            results = [
                report(
                    "system/sessions",
                    measure(client, base + "sessions", pages, warmup=20),
                    "/".join(map(str, by_size)) + " at page size 1/25/50",
                    len(set(by_size)) == 1,
                ),
                report(
                    "system/session",
                    measure(client, base + "session", details, warmup=20),
                    "/".join(map(str, detail_counts)) + " for 3 sessions",
                    len(set(detail_counts)) == 1,
                ),
            ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
