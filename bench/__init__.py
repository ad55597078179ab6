"""Performance benchmarks (`make bench`, `python -m bench`): each module here checks DESIGN.md section 7.

A benchmark is a module `bench/<name>.py` with `main(argv=None) -> int` (0: within budget),
runnable alone as `python -m bench.<name>`. It reports each figure with `figure(...)`; the
runner (`python -m bench [name ...]`) runs every module in its own process and prints all
figures as one table. The helpers below give a module its own database and the production
profile's processes (uvicorn web processes, Celery workers) to send real HTTP requests to.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
FIGURE_PREFIX = "FIGURE\t"
START_TIMEOUT_SECONDS = 60.0


def figure(
    name: str,
    budget: str,
    measured: str,
    ok: bool | None,
    *,
    p95: str = "-",
    ratio: str = "-",
) -> None:
    """One row of the results table: measured is the p50 (or the single value), ok None is
    informational (no budget)."""
    verdict = "-" if ok is None else ("pass" if ok else "FAIL")
    print(f"{FIGURE_PREFIX}{name}\t{budget}\t{measured}\t{p95}\t{ratio}\t{verdict}", flush=True)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (0 < pct <= 100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
    import django

    django.setup()


def django_on_services(name: str) -> bool:
    """Set Django up; True on PostgreSQL with Redis (what the Celery benches need), else say the
    bench `name` is skipped."""
    setup_django()
    from django.db import connection

    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        print(f"{name}: needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); skipped.")
        return False
    return True


def scaled_arguments(
    argv: list[str] | None, *, doc: str, scale: str, requests: int, requests_help: str
) -> argparse.Namespace:
    """The options of a benchmark over a seeded database of its own: --scale, --requests, --drop."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help=scale)
    parser.add_argument("--requests", type=int, default=requests, help=requests_help)
    parser.add_argument("--drop", action="store_true", help="drop the bench database after")
    return parser.parse_args(argv)


def unthrottled() -> None:
    """In-process calls measure the op, not the abuse limits or the HTTPS redirect."""
    from django.conf import settings

    settings.GLOW_THROTTLE_RATES = {}
    settings.SECURE_SSL_REDIRECT = False


def bench_profiles(organization, *, username: str, display_name: str, roles: list[str]) -> list:
    """One user `<username>-<n>` (no usable password) and profile per role given, in two INSERTs."""
    from django.contrib.auth import get_user_model

    from glow.accounts.models import Profile

    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"{username}-{n}", password="!") for n in range(len(roles))
    )
    return Profile.objects.bulk_create(
        Profile(user=user, organization=organization, role=role, display_name=f"{display_name} {n}")
        for n, (user, role) in enumerate(zip(users, roles, strict=True))
    )


def database_url(db: dict) -> str:
    credentials = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{db['NAME']}"


@contextmanager
def bench_database(name: str, *, keep: bool) -> Iterator[str]:
    """This benchmark's own database, test_<DATABASE_URL's name>_<name>, migrated. With `keep`
    an existing one is reused and kept afterwards (its rows serve the next run); without, it is
    created empty (replacing any left over) and dropped afterwards. Answers its URL."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"test_{old_name}_{name}"
    # serialize=False: nothing here reloads the rows a TestCase would; serializing a million
    # rows is minutes of work for nothing.
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=keep, serialize=False)
    try:
        yield database_url(connection.settings_dict)
    finally:
        connection.close()
        if not keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def raise_file_limit() -> None:
    """Each SSE watcher is a socket on both sides: lift the soft limit to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def production_env(database: str, **extra: str) -> dict[str, str]:
    """The production profile's environment (make serve's PROD_ENV) on the bench database, with
    a Celery queue of this run's own so another checkout's workers never take its tasks. The
    API throttles are whatever the caller's environment says (make bench raises them)."""
    redis_url = os.environ["REDIS_URL"]
    var = tempfile.mkdtemp(prefix="glow-bench-")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "glow.settings",
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": f"glow-bench-{uuid.uuid4().hex[:12]}",
        "GLOW_TASK_MODE": "celery",
        "GLOW_VAR_DIR": var,
        "MEDIA_ROOT": f"{var}/media",
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def serve(env: dict[str, str], *, processes: int = 1) -> Iterator[list[str]]:
    """`processes` uvicorn web processes (the Procfile's web command) on free ports; answers
    their base URLs once each answers /healthz."""
    import httpx

    urls, running = [], []
    with tempfile.TemporaryDirectory(prefix="glow-bench-web-") as logs:
        try:
            for number in range(processes):
                port = _free_port()
                command = [sys.executable, "-m", "uvicorn", "glow.asgi:application"]
                command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
                command += ["--log-level", "warning", "--backlog", "4096"]
                log = open(f"{logs}/web{number}.log", "wb")  # noqa: SIM115 (closed with the process)
                running.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=raise_file_limit,
                    )
                )
                urls.append(f"http://127.0.0.1:{port}")
            for number, (url, process) in enumerate(zip(urls, running, strict=True)):
                deadline = time.monotonic() + START_TIMEOUT_SECONDS
                while True:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log_text = Path(f"{logs}/web{number}.log").read_text(errors="replace")
                        raise SystemExit(f"uvicorn did not start:\n{log_text[-3000:]}")
                    try:
                        if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
            yield urls
        finally:
            _stop(running)


@contextmanager
def celery_workers(env: dict[str, str], *, processes: int) -> Iterator[None]:
    """`processes` Celery worker processes (solo pool: one process, one task at a time) on the
    env's queue, answered once every one of them has said it is ready."""
    running = []
    with tempfile.TemporaryDirectory(prefix="glow-bench-workers-") as logs:
        paths = [Path(f"{logs}/worker{number}.log") for number in range(processes)]
        try:
            for number, path in enumerate(paths):
                command = [sys.executable, "-m", "celery", "-A", "glow", "worker"]
                command += ["-P", "solo", "-Q", env["CELERY_TASK_DEFAULT_QUEUE"], "-l", "INFO"]
                command += ["-n", f"bench{number}-{uuid.uuid4().hex[:6]}@%h"]
                command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
                log = path.open("wb")
                running.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log))
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            for path, process in zip(paths, running, strict=True):
                while " ready." not in path.read_text(errors="replace"):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(
                            f"a Celery worker did not start:\n{path.read_text()[-3000:]}"
                        )
                    time.sleep(0.1)
            yield
        finally:
            _stop(running)


def bench_organization(*, name: str, admin_username: str):
    """A bench organization's admin, and `row(model, title, **fields)`: the organization's row of
    that title, made with `fields` the first time (so a bench catalog is idempotent)."""
    from django.contrib.auth import get_user_model

    from glow.accounts.models import Organization, Profile

    organization, _ = Organization.objects.get_or_create(name=name)
    user, _ = get_user_model().objects.get_or_create(username=admin_username)
    admin, _ = Profile.objects.get_or_create(
        user=user, defaults={"organization": organization, "role": "admin"}
    )

    def row(model, title, **fields):
        return model.objects.get_or_create(organization=organization, title=title, defaults=fields)[
            0
        ]

    return admin, row


def bench_rubric(row, title: str, groups: list[dict]):
    """The bench organization's rubric of that title, written with `groups` the first time."""
    from glow.catalog import families
    from glow.catalog import models as m

    rubric = row(m.Rubric, title)
    if not rubric.groups.exists():
        families.write_rubric(rubric, {"groups": groups})
    return rubric


def start_body(evaluation, *, models, agents, scenarios, **extra) -> dict:
    """A test/start body: the eval, every model x agent x scenario, and `extra` (concurrency,
    title)."""
    return {
        "eval_id": str(evaluation.pk),
        "model_ids": [str(row.pk) for row in models],
        "agent_ids": [str(row.pk) for row in agents],
        "scenario_ids": [str(row.pk) for row in scenarios],
        **extra,
    }


def manage(env: dict[str, str], *args: str) -> str:
    """`manage.py <args>` in `env`; answers its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def embedded_env(var: str, **extra: str) -> dict[str, str]:
    """The embedded profile (`make run`: SQLite and in-process events under `var`), whatever
    services the caller's environment names, migrated and with the demo data."""
    services = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CACHE_URL")
    env = {k: v for k, v in os.environ.items() if k not in services}
    env |= {"DJANGO_SETTINGS_MODULE": "glow.settings", "GLOW_VAR_DIR": var, "LOG_LEVEL": "WARNING"}
    env |= extra
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "glow_demo")
    return env
