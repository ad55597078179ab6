"""`GET /healthz`: database, broker and Redis status as JSON (503 when any configured one is down)."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a health check reports failures, it must not raise them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


PROBE_WAIT = 2.0  # seconds a probe waits for a pooled connection (the pool's own wait is longer)


def _database() -> None:
    pool = getattr(connection, "pool", None)  # the ASGI web process's psycopg pool, when on
    if pool is not None:
        # Through Django's cursor a probe of a stopped database would wait the pool's whole
        # DB_POOL_TIMEOUT, longer than a load balancer waits. open() is a no-op once open, and
        # the probe may be a fresh process's first request.
        pool.open()
        with pool.connection(timeout=PROBE_WAIT) as conn:
            conn.execute("SELECT 1").fetchone()
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis(url: str):
    def check() -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py's default backoff would hold a probe of a dead Redis for ~10 s.
        client = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
        )
        try:
            client.ping()
        finally:
            client.close()

    return check


def healthz(request) -> JsonResponse:
    checks = {"database": _timed(_database)}
    if settings.CELERY_BROKER_URL:
        checks["broker"] = _timed(_redis(settings.CELERY_BROKER_URL))
    if settings.REDIS_URL and settings.REDIS_URL != settings.CELERY_BROKER_URL:
        checks["redis"] = _timed(_redis(settings.REDIS_URL))
    ok = all(check["ok"] for check in checks.values())
    body = {
        "status": "ok" if ok else "degraded",
        "profile": settings.GLOW_PROFILE,
        "checks": checks,
    }
    return JsonResponse(body, status=200 if ok else 503)
