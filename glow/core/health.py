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


def _database() -> None:
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
