"""Live processes for integration tests: uvicorn (ASGI, so SSE streams) and Celery workers, all on
the pytest-django test database, with Redis as broker and django-eventstream channel.

Use them from a test marked as needing services, with committed rows (other processes cannot
see a test's open transaction):

    pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

    def test_something(live_server_url, celery_worker_process):
        httpx.post(f"{live_server_url}/api/v5/artifacts/persona/generate", ...)

Fixtures:
- `services_env` (session): skips the test unless DATABASE_URL and REDIS_URL are set (as
  `make test-services` does); answers the environment child processes run with: the test
  database, Redis, a Celery queue of this session's own, a shared media directory.
- `live_server_url` (session): base URL of one uvicorn process serving glow.asgi.
- `celery_worker_factory`: `start()` launches a `celery -A glow worker` and waits until it is
  ready; every worker started is stopped after the test.
- `celery_worker_process`: one worker, already running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("Live processes need PostgreSQL (DATABASE_URL).")
    credentials = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def services_env(django_db_setup, tmp_path_factory) -> dict[str, str]:
    """Environment for child processes; django_db_setup has renamed NAME to the test database."""
    redis_url = os.environ.get("REDIS_URL") or os.environ.get("GLOW_TEST_REDIS_URL")
    if not os.environ.get("DATABASE_URL") or not redis_url:
        pytest.skip("Needs DATABASE_URL and REDIS_URL (make test-services).")
    var = tmp_path_factory.mktemp("live-var")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "glow.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_TASK_DEFAULT_QUEUE": f"glow-test-{uuid.uuid4().hex[:12]}",
        "GLOW_TASK_MODE": "celery",
        # Connections are not kept between requests, so the test database can be flushed and dropped.
        "DB_CONN_MAX_AGE": "0",
        "GLOW_VAR_DIR": str(var),
        "MEDIA_ROOT": str(var / "media"),
        "STATIC_ROOT": str(var / "static"),
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveProcess:
    """A child process whose output goes to a log file (a full pipe would stall it)."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


@contextmanager
def uvicorn_server(env: dict, log_dir: Path) -> Iterator[str]:
    """uvicorn serving glow.asgi with `env` on a free port; answers its URL once /healthz does."""
    port = free_port()
    server = LiveProcess(
        "uvicorn",
        [
            *(sys.executable, "-m", "uvicorn", "glow.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env,
        log_dir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            server.check_alive()
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not answer in {START_TIMEOUT} s:\n{server.log()}")
                time.sleep(0.1)
        yield url
    finally:
        server.stop()


@contextmanager
def static_uvicorn_server(env: dict, log_dir: Path) -> Iterator[str]:
    """uvicorn_server after collectstatic: with DEBUG off, as in production, WhiteNoise serves the
    collected stylesheets and scripts."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        env=env,
        cwd=settings.BASE_DIR,
        check=True,
    )
    with uvicorn_server(env, log_dir) as url:
        yield url


@pytest.fixture(scope="session")
def live_server_url(services_env, tmp_path_factory):
    with uvicorn_server(services_env, tmp_path_factory.mktemp("uvicorn-log")) as url:
        yield url


@pytest.fixture
def celery_worker_factory(services_env, tmp_path):
    workers: list[LiveProcess] = []

    def start() -> LiveProcess:
        name = f"worker{len(workers)}"
        worker = LiveProcess(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "glow",
                "worker",
                "--pool=solo",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                services_env["CELERY_TASK_DEFAULT_QUEUE"],
                "-n",
                f"{name}-{uuid.uuid4().hex[:6]}@%h",
                "-l",
                "info",
            ],
            services_env,
            tmp_path,
        )
        workers.append(worker)
        deadline = time.monotonic() + START_TIMEOUT
        while " ready." not in worker.log():
            worker.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"The Celery worker was not ready in {START_TIMEOUT} s:\n{worker.log()}"
                )
            time.sleep(0.1)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker_process(celery_worker_factory) -> LiveProcess:
    return celery_worker_factory()
