"""Benchmark: attempt/search with facets over 1,000,000 attempts, and the export of a 10,000-message attempt.

DESIGN.md section 7: search with facets, page 25, p50 <= 60 ms and <= 2x the raw SQL of the
same page + count + facets, query count constant in page size; the export of an attempt with
10,000 messages <= 2 s with memory flat (a streamed ZIP).

Seeds one organization in PostgreSQL with set-based INSERT ... SELECT and rebuilds the
materialised counts (attempts_attemptcount), timed separately; then calls attempt/search over
HTTP (a uvicorn process of the production profile: API-key auth, session books, serializers)
as an admin (the whole organization), an instructor (one department) and a learner (their
own), each beside hand-written SQL for the same page, count and facets run from this process.
The query counts are taken in this process, where the query log is kept.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/glow_bench .venv/bin/python -m bench.attempts_search
    ... --scale 0.01      # 10,000 attempts, for a quick run
    ... --drop            # drop the bench database afterwards (by default it is kept, and the
                          # next run at the same scale finds the attempts and skips seeding)

It works in its own database (test_<name>_attempts of DATABASE_URL), never in the one named.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from bench import (
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

ATTEMPTS = 1_000_000
DEPARTMENTS = 10
COHORTS_PER_DEPARTMENT = 5
SIMULATIONS_PER_DEPARTMENT = 10
LEARNERS = 2_000
DAYS = 365
SEARCH_BUDGET_MS = 60.0
RAW_RATIO_BUDGET = 2.0
EXPORT_MESSAGES = 10_000
EXPORT_BUDGET_S = 2.0
ORG_NAME = "Bench University (attempts)"


# -- seeding --------------------------------------------------------------------------------------


def _catalog(organization):
    """Departments, cohorts, personas, scenarios, a rubric, simulations: the attempts' references."""
    from glow.accounts.models import Cohort, Department
    from glow.catalog import models as m

    departments = Department.objects.bulk_create(
        Department(organization=organization, name=f"Department {n}") for n in range(DEPARTMENTS)
    )
    cohorts = Cohort.objects.bulk_create(
        Cohort(organization=organization, department=department, name=f"Cohort {d}-{n}")
        for d, department in enumerate(departments)
        for n in range(COHORTS_PER_DEPARTMENT)
    )
    personas = m.Persona.objects.bulk_create(
        m.Persona(organization=organization, title=f"Persona {n}", traits=["anxious"])
        for n in range(10)
    )
    scenarios = m.Scenario.objects.bulk_create(
        m.Scenario(organization=organization, title=f"Scenario {n}", persona=personas[n % 10])
        for n in range(20)
    )
    rubric = m.Rubric.objects.create(organization=organization, title="Bench rubric")
    simulations = m.Simulation.objects.bulk_create(
        m.Simulation(
            organization=organization,
            department=departments[n // SIMULATIONS_PER_DEPARTMENT],
            title=f"Simulation {n}: office hours",
            rubric=rubric,
        )
        for n in range(DEPARTMENTS * SIMULATIONS_PER_DEPARTMENT)
    )
    m.SimulationScenario.objects.bulk_create(
        m.SimulationScenario(simulation=simulation, scenario=scenarios[(n + k) % 20], position=k)
        for n, simulation in enumerate(simulations)
        for k in range(2)
    )
    return departments, cohorts, simulations


def _people(organization, departments, cohorts):
    from glow.accounts.models import Profile

    profiles = bench_profiles(
        organization,
        username="bench-attempts",
        display_name="Bench learner",
        roles=["learner"] * LEARNERS + ["admin", "instructor"],
    )
    learners = profiles[:LEARNERS]
    Through = Profile.departments.through
    Through.objects.bulk_create(
        Through(profile_id=profile.pk, department_id=departments[n % DEPARTMENTS].pk)
        for n, profile in enumerate(learners)
    )
    Through.objects.create(profile_id=profiles[-1].pk, department_id=departments[0].pk)
    Members = cohorts[0].members.through
    Members.objects.bulk_create(
        Members(cohort_id=_cohort_of(n, cohorts).pk, profile_id=profile.pk)
        for n, profile in enumerate(learners)
    )
    return learners, profiles[LEARNERS], profiles[LEARNERS + 1]


def _cohort_of(n: int, cohorts):
    department = n % DEPARTMENTS
    return cohorts[
        department * COHORTS_PER_DEPARTMENT + (n // DEPARTMENTS) % COHORTS_PER_DEPARTMENT
    ]


def seed_attempts(
    *, cursor, organization_id, learners, cohorts, simulations, attempts: int
) -> None:
    """One INSERT ... SELECT: learner n % L, a simulation of the learner's department, 80%
    completed with a score, 20% practice, 5% archived, spread over DAYS."""
    cursor.execute(
        "CREATE TEMP TABLE bench_learners (slot int PRIMARY KEY, id uuid, department_id uuid, "
        "cohort_id uuid, name text)"
    )
    cursor.executemany(
        "INSERT INTO bench_learners VALUES (%s, %s, %s, %s, %s)",
        [
            (
                n,
                learner.pk,
                _cohort_of(n, cohorts).department_id,
                _cohort_of(n, cohorts).pk,
                learner.display_name,
            )
            for n, learner in enumerate(learners)
        ],
    )
    cursor.execute("CREATE TEMP TABLE bench_sims (slot int PRIMARY KEY, id uuid, title text)")
    cursor.executemany(
        "INSERT INTO bench_sims VALUES (%s, %s, %s)",
        [(n, simulation.pk, simulation.title) for n, simulation in enumerate(simulations)],
    )
    cursor.execute(
        """
        INSERT INTO attempts_attempt (id, organization_id, title, description, created_by_id,
            created_at, updated_at, archived, archived_at, version, profile_id, simulation_id,
            home_id, practice_entry_id, practice, infinite_mode, status, started_at, completed_at,
            group_id, current_chat_index, chat_count, ended_chat_count, message_count, score,
            passed, time_taken, department_id, cohort_id, idempotency_key)
        SELECT md5('a' || n)::uuid, %(org)s, s.title || ' — ' || l.name, '', l.id,
            t.at, t.at, n %% 23 = 0, CASE WHEN n %% 23 = 0 THEN t.at END, 1, l.id, s.id,
            NULL, NULL, n %% 5 = 0, n %% 50 = 0,
            CASE WHEN n %% 10 < 8 THEN 'completed' ELSE 'in_progress' END, t.at,
            CASE WHEN n %% 10 < 8 THEN t.at + interval '25 minutes' END,
            NULL, 1, 2, CASE WHEN n %% 10 < 8 THEN 2 ELSE 1 END, 12,
            CASE WHEN n %% 10 < 8 THEN (n * 37) %% 101 END,
            CASE WHEN n %% 10 < 8 THEN (n * 37) %% 101 >= 70 END,
            CASE WHEN n %% 10 < 8 THEN 900 + n %% 900 END,
            l.department_id, l.cohort_id, ''
        FROM generate_series(0, %(attempts)s - 1) AS n
        JOIN bench_learners l ON l.slot = n %% %(learners)s
        JOIN bench_sims s ON s.slot = (n %% %(learners)s %% %(departments)s) * %(per_dept)s
            + (n / %(learners)s) %% %(per_dept)s
        CROSS JOIN LATERAL (
            SELECT now() - (n::float / %(attempts)s * %(days)s) * interval '1 day' AS at
        ) t
        """,
        {
            "org": organization_id,
            "attempts": attempts,
            "learners": len(learners),
            "departments": DEPARTMENTS,
            "per_dept": SIMULATIONS_PER_DEPARTMENT,
            "days": DAYS,
        },
    )


def prepare(*, attempts: int):
    """(admin, instructor, learner, seconds spent seeding, reused)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.db.models import Sum

    from attempts.models import Attempt, AttemptCount
    from attempts.rollups import attempt_counts_sync
    from glow.accounts.models import Organization, Profile

    organization = Organization.objects.filter(name=ORG_NAME).first()
    if organization and Attempt.objects.filter(organization=organization).count() == attempts:
        counted = AttemptCount.objects.filter(organization=organization).aggregate(n=Sum("count"))
        if counted["n"] != attempts:
            attempt_counts_sync(organization_id=organization.pk)
        people = Profile.objects.filter(organization=organization)
        return (
            people.get(role="admin"),
            people.get(role="instructor"),
            people.filter(role="learner").order_by("display_name").first(),
            0.0,
            True,
        )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Only this benchmark makes attempts: emptying them beats deleting a million rows.
        cursor.execute(
            "TRUNCATE attempts_message, attempts_grade, attempts_chat, attempts_completion, "
            "attempts_questionresponse, attempts_attempt CASCADE"
        )
    if organization:
        from glow.catalog import models as m

        # Catalog rows are PROTECTed from a cascading delete: remove them in dependency order.
        for model in (m.Home, m.Practice, m.Simulation, m.Scenario, m.Persona, m.Rubric):
            model.objects.filter(organization=organization).delete()
        organization.delete()
    get_user_model().objects.filter(username__startswith="bench-attempts-").delete()
    organization = Organization.objects.create(name=ORG_NAME)
    departments, cohorts, simulations = _catalog(organization)
    learners, admin, instructor = _people(organization, departments, cohorts)
    with transaction.atomic(), connection.cursor() as cursor:
        # A bulk load: the secondary indexes are built once afterwards, and the foreign keys are
        # not re-checked row by row (every id comes from the rows made just above).
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'attempts_attempt' "
            "AND indexname NOT LIKE '%%pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET LOCAL session_replication_role = replica")
        seed_attempts(
            cursor=cursor,
            organization_id=organization.pk,
            learners=learners,
            cohorts=cohorts,
            simulations=simulations,
            attempts=attempts,
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
        for _, definition in indexes:
            cursor.execute(definition)
    attempt_counts_sync(organization_id=organization.pk)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE attempts_attempt, attempts_attemptcount")
    return admin, instructor, learners[0], time.perf_counter() - started, False


# -- search: the API beside the raw SQL ------------------------------------------------------------

FACETS = [
    ("simulation", "simulation_id", "catalog_simulation", "title"),
    ("department", "department_id", "accounts_department", "name"),
    ("cohort", "cohort_id", "accounts_cohort", "name"),
    ("learner", "profile_id", "accounts_profile", "display_name"),
]


def scope_sql(actor, alias: str) -> tuple[str, list]:
    """The same scoping as attempts.selectors.attempt_scope, by hand."""
    where = f"{alias}.organization_id = %s AND NOT {alias}.archived"
    params = [actor.organization_id]
    if actor.is_admin:
        return where, params
    if actor.is_instructor:
        return (
            where + f" AND ({alias}.profile_id = %s OR {alias}.department_id = ANY(%s)"
            f" OR {alias}.cohort_id = ANY(%s))",
            [*params, actor.pk, actor.department_ids(), actor.cohort_ids()],
        )
    return where + f" AND {alias}.profile_id = %s", [*params, actor.pk]


def raw_search(cursor, actor, offset: int) -> int:
    """The same page + count + facets by hand, from the same sources as the API: the page and
    its personas from the attempts, the total and the facets from the materialised counts
    (attempts_attemptcount), every facet's labels in one UNION. The count and each facet are a
    statement of their own, as one writes them by hand; the API sends the four facet queries as
    one statement and takes the count from the simulation facet's groups."""
    where, params = scope_sql(actor, "a")
    cursor.execute(
        f"""
        SELECT a.id, a.title, a.status, a.score, a.passed, a.time_taken, a.started_at,
               s.id, s.title, p.display_name, u.username, d.name, c.name
        FROM attempts_attempt a
        JOIN catalog_simulation s ON s.id = a.simulation_id
        JOIN accounts_profile p ON p.id = a.profile_id
        JOIN auth_user u ON u.id = p.user_id
        LEFT JOIN accounts_department d ON d.id = a.department_id
        LEFT JOIN accounts_cohort c ON c.id = a.cohort_id
        WHERE {where}
        ORDER BY a.created_at DESC, a.id DESC LIMIT 25 OFFSET %s
        """,
        [*params, offset],
    )
    rows = cursor.fetchall()
    cursor.execute(
        """
        SELECT ss.simulation_id, pe.title FROM catalog_simulationscenario ss
        JOIN catalog_scenario sc ON sc.id = ss.scenario_id
        JOIN catalog_persona pe ON pe.id = sc.persona_id
        WHERE ss.simulation_id = ANY(%s) ORDER BY ss.position
        """,
        [list({row[7] for row in rows})],
    )
    cursor.fetchall()
    where, params = scope_sql(actor, "n")
    cursor.execute(f"SELECT sum(n.count) FROM attempts_attemptcount n WHERE {where}", params)
    total = cursor.fetchone()[0] or 0
    labels, label_params = [], []
    for name, field, table, label in FACETS:
        cursor.execute(
            f"SELECT n.{field}, sum(n.count) FROM attempts_attemptcount n WHERE {where} "
            f"AND n.{field} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100",
            params,
        )
        labels.append(f"SELECT '{name}', id, {label}::text FROM {table} WHERE id = ANY(%s)")
        label_params.append([row[0] for row in cursor.fetchall()])
    cursor.execute(" UNION ALL ".join(labels), label_params)
    cursor.fetchall()
    return total


def measure_search(
    http, local, actor, offsets: list[int]
) -> tuple[list[float], list[float], int, int]:
    """Timings over HTTP (`http`: an httpx client of the uvicorn process) beside the raw SQL's;
    the query counts at page sizes 25 and 5 in this process (`local`: a DRF test client), where
    the query log is kept."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    path = "/api/v5/artifacts/attempt/search"
    for offset in offsets[:5]:
        http.post(path, json={"page_offset": offset})
        local.post(path, {"page_offset": offset}, format="json")
    api, raw, total = [], [], 0
    for offset in offsets:
        started = time.perf_counter()
        response = http.post(path, json={"page_size": 25, "page_offset": offset})
        api.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"search answered {response.status_code}: {response.text[:300]}")
        total = response.json()["total_count"]
        with connection.cursor() as cursor:
            started = time.perf_counter()
            raw_total = raw_search(cursor, actor, offset)
            raw.append((time.perf_counter() - started) * 1000)
        if raw_total != total:
            raise SystemExit(f"raw SQL counted {raw_total}, the API {total}")
    queries = set()
    for size, offset in ((25, 0), (25, 50), (5, 0)):
        with CaptureQueriesContext(connection) as captured:
            response = local.post(path, {"page_size": size, "page_offset": offset}, format="json")
        if response.json()["attempts"]:  # an empty page skips the personas query
            queries.add(len(captured))
    return api, raw, len(queries), total


# -- export --------------------------------------------------------------------------------------


def export_attempt(admin, messages: int):
    """An attempt of the bench admin with `messages` messages over 3 chats, each chat graded."""
    from django.utils import timezone

    from attempts.models import Attempt, Chat, Grade, Message
    from glow.catalog.models import Simulation

    simulation = Simulation.objects.filter(organization_id=admin.organization_id).first()
    scenarios = simulation.ordered_scenarios()
    now = timezone.now()
    attempt = Attempt.objects.create(
        organization_id=admin.organization_id,
        title=f"Export bench ({messages} messages)",
        profile=admin,
        simulation=simulation,
        started_at=now,
        chat_count=3,
        message_count=messages,
    )
    per_chat = messages // 3
    for position in range(3):
        chat = Chat.objects.create(
            attempt=attempt,
            scenario=scenarios[position % len(scenarios)],
            position=position,
            status="ended",
            started_at=now,
            ended_at=now,
        )
        count = per_chat + (messages - 3 * per_chat if position == 2 else 0)
        Message.objects.bulk_create(
            (
                Message(
                    chat=chat,
                    seq=seq + 1,
                    role="user" if seq % 2 == 0 else "assistant",
                    content=f"Turn {seq}: I hear you; what worries you most about the deadline? "
                    * 3,
                    hints=[{"type": "suggestion", "content": "Ask an open question."}],
                )
                for seq in range(count)
            ),
            batch_size=2000,
        )
        grade = Grade.objects.create(
            chat=chat,
            attempt=attempt,
            score=70,
            points=14,
            total_points=20,
            passed=True,
            source="agent",
            standard_scores=[
                {"standard_id": str(n), "group_id": "g", "score": 2, "points": 4} for n in range(5)
            ],
        )
        Chat.objects.filter(pk=chat.pk).update(grade=grade, message_count=count)
    return Attempt.objects.filter(pk=attempt.pk)


def measure_export(admin) -> tuple[float, float, float]:
    """(seconds for 10,000 messages, peak MB at 10,000, peak MB at 30,000 messages)."""
    from attempts.exports import attempt_export
    from glow.core.models import Upload, UploadKind

    sizes = (EXPORT_MESSAGES, 3 * EXPORT_MESSAGES)
    selections = [export_attempt(admin, size) for size in sizes]
    attempt_export(actor=admin, attempts=selections[0], view="attempt", single=True)  # warm
    started = time.perf_counter()
    result = attempt_export(actor=admin, attempts=selections[0], view="attempt", single=True)
    seconds = time.perf_counter() - started
    if result.message_count != EXPORT_MESSAGES:
        raise SystemExit(f"the export holds {result.message_count} messages")
    peaks = []
    for selection in selections:
        tracemalloc.start()
        attempt_export(actor=admin, attempts=selection, view="attempt", single=True)
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    for selection in selections:  # a kept database must still hold exactly the seeded attempts
        selection.delete()
    for upload in Upload.objects.filter(owner=admin, kind=UploadKind.EXPORT):
        upload.file.delete(save=False)
        upload.delete()
    return seconds, peaks[0], peaks[1]


def main(argv: list[str] | None = None) -> int:
    args = scaled_arguments(
        argv,
        doc=__doc__,
        scale="1.0 = 1,000,000 attempts",
        requests=100,
        requests_help="timed searches per actor",
    )
    if not django_on_services("attempts_search"):
        return 0
    import httpx
    from django.conf import settings
    from rest_framework.test import APIClient

    from glow.accounts.services import api_key_create

    unthrottled()
    settings.MEDIA_ROOT = Path(settings.VAR_DIR) / "bench-media"
    # Its own database, kept: the next run at the same scale reuses the seeded attempts.
    with bench_database("attempts", keep=not args.drop) as database:
        attempts = max(int(ATTEMPTS * args.scale), 100)
        admin, instructor, learner, seeded_in, reused = prepare(attempts=attempts)
        print(f"attempt search benchmark: {attempts:,} attempts (PostgreSQL)")
        figure(
            "attempts seeding (INSERT ... SELECT)",
            "-",
            "reused (kept from an earlier run)" if reused else f"{seeded_in:.1f} s",
            None,
        )
        rng = random.Random(7)
        ok = True
        with serve(production_env(database)) as (url,):
            for label, actor in (
                ("admin", admin),
                ("instructor", instructor),
                ("learner", learner),
            ):
                key = api_key_create(profile=actor).plaintext
                local = APIClient()
                local.credentials(HTTP_X_API_KEY=key)
                offsets = [rng.choice([0, 0, 0, 25, 50, 100]) for _ in range(args.requests)]
                with httpx.Client(base_url=url, headers={"X-Api-Key": key}, timeout=30) as http:
                    api, raw, distinct_counts, total = measure_search(http, local, actor, offsets)
                p50, p95 = statistics.median(api), percentile(api, 95)
                raw50 = statistics.median(raw)
                ratio = p50 / raw50 if raw50 else float("inf")
                # DESIGN's ratio budget is for the search over all 1,000,000 attempts (the
                # admin's); on a learner's few hundred rows the raw SQL takes a few ms, below
                # any web stack's floor, so there the ratio is shown, not judged.
                whole = label == "admin"
                good = p50 <= SEARCH_BUDGET_MS and (ratio <= RAW_RATIO_BUDGET or not whole)
                ok &= good
                figure(
                    f"attempt/search {label} over HTTP ({total:,} rows)",
                    f"p50 <= {SEARCH_BUDGET_MS:.0f} ms"
                    + (f", <= {RAW_RATIO_BUDGET:.0f}x raw" if whole else ""),
                    f"{p50:.1f} ms",
                    good,
                    p95=f"{p95:.1f} ms",
                    ratio=f"{ratio:.2f}x of raw SQL ({raw50:.1f} ms)",
                )
                figure(
                    f"attempt/search {label} query count",
                    "same at page 5 and 25",
                    "constant" if distinct_counts == 1 else f"{distinct_counts} different counts",
                    distinct_counts == 1,
                )
                ok &= distinct_counts == 1
        seconds, first_mb, triple_mb = measure_export(admin)
        good = seconds <= EXPORT_BUDGET_S
        figure(
            f"attempt/export, {EXPORT_MESSAGES:,} messages",
            f"<= {EXPORT_BUDGET_S:.0f} s",
            f"{seconds:.2f} s",
            good,
        )
        # Buffers (a fetch of rows, the Markdown spool) are bounded; nothing grows with messages.
        flat = triple_mb <= 1.25 * first_mb + 0.5
        figure(
            "attempt/export peak memory (tracemalloc)",
            "flat: 3x messages, same peak",
            f"{first_mb:.1f} MB at 10,000; {triple_mb:.1f} MB at 30,000",
            flat,
        )
        return 0 if ok and good and flat else 1


if __name__ == "__main__":
    sys.exit(main())
