"""One settings module: environment variables switch the embedded profile to production."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROFILE_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "GLOW_TASK_MODE",
    "SECURE_SSL_REDIRECT",
    "DJANGO_SETTINGS_MODULE",
)

PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.db import connection
db = settings.DATABASES["default"]
report = {
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "profile": settings.GLOW_PROFILE,
    "debug": settings.DEBUG,
    "task_mode": settings.GLOW_TASK_MODE,
    "broker": settings.CELERY_BROKER_URL,
    "eventstream_redis": getattr(settings, "EVENTSTREAM_REDIS", None),
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
}
if connection.vendor == "sqlite":
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        report["journal_mode"] = cursor.fetchone()[0]
print(json.dumps(report))
"""


SERVICES = {
    "DATABASE_URL": "postgres://glow:secret@db.internal:5432/glow",
    "REDIS_URL": "redis://cache.internal:6379/2",
    "CELERY_BROKER_URL": "redis://broker.internal:6379/1",
}
DEPLOY = {
    "DEBUG": "False",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "glow.example.org",
}


def start(args: list[str], var_dir: Path, **env: str) -> subprocess.Popen:
    clean = {key: value for key, value in os.environ.items() if key not in PROFILE_VARS}
    clean.update(DJANGO_SETTINGS_MODULE="glow.settings", GLOW_VAR_DIR=str(var_dir), **env)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[int, str, str, Path]]:
    """The three Django start-ups run side by side: each costs seconds of imports."""
    var_dirs = {name: tmp_path_factory.mktemp(name) for name in ("embedded", "services", "deploy")}
    processes = {
        "embedded": start(["-c", PROBE], var_dirs["embedded"]),
        "services": start(["-c", PROBE], var_dirs["services"], **SERVICES),
        # The security tag is what --deploy adds; the schema's own check is test_schema's job.
        "deploy": start(
            ["manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
            var_dirs["deploy"],
            **DEPLOY,
        ),
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=180)
        results[name] = (process.returncode, stdout, stderr, var_dirs[name])
    return results


def report_of(runs, name: str) -> tuple[dict, Path]:
    code, stdout, stderr, var_dir = runs[name]
    assert code == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1]), var_dir


def test_without_env_vars_the_embedded_profile_runs_sqlite_in_wal_mode(runs):
    report, var_dir = report_of(runs, "embedded")
    assert report["profile"] == "embedded" and report["debug"] is True
    assert report["engine"] == "django.db.backends.sqlite3"
    assert report["name"] == str(var_dir / "glow.sqlite3")
    assert report["journal_mode"] == "wal"
    assert report["task_mode"] == "thread" and not report["broker"]
    assert report["eventstream_redis"] is None


def test_service_urls_switch_to_postgresql_celery_and_redis_events(runs):
    report, _ = report_of(runs, "services")
    assert report["profile"] == "production" and report["debug"] is False
    assert report["engine"] == "django.db.backends.postgresql"
    assert report["name"] == "glow"
    assert report["task_mode"] == "celery"
    assert report["broker"] == SERVICES["CELERY_BROKER_URL"]
    assert report["eventstream_redis"]["host"] == "cache.internal"
    assert report["eventstream_redis"]["db"] == 2
    assert report["ssl_redirect"] is True


def test_check_deploy_passes_with_production_env_vars(runs):
    code, stdout, stderr, _ = runs["deploy"]
    assert code == 0, stderr
    assert "no issues" in stdout, stdout + stderr


def test_a_sqlite_database_url_works_with_the_web_process_pool_switch(tmp_path):
    """DATABASE_URL=sqlite:///file.db with GLOW_DB_POOL on (as glow/asgi.py sets it): psycopg's
    pool is PostgreSQL's only, so SQLite gets WAL and answers queries."""
    database = tmp_path / "glow.db"
    process = start(
        ["-c", PROBE],
        tmp_path,
        DATABASE_URL=f"sqlite:///{database}",
        GLOW_DB_POOL="true",
        SECURE_SSL_REDIRECT="False",
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["engine"] == "django.db.backends.sqlite3"
    assert report["journal_mode"] == "wal"
