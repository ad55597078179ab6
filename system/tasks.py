"""Celery tasks of the books: they only call services (see system/generation.py)."""

from __future__ import annotations

from celery import shared_task

from glow.core.errors import DATABASE_ERRORS
from system.generation import generation_execute


# acks_late + reject_on_worker_lost: a killed worker's task runs again, which
# generation_execute tolerates (a finished run is left alone; saved resources are reused).
# A lost database (a restart, a failover) is retried with backoff for about ten minutes: the
# run stays open meanwhile and continues where it stopped.
@shared_task(
    name="system.generate_artifact",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=DATABASE_ERRORS,
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=False,
    max_retries=15,
)
def generate_artifact(run_id: str) -> None:
    generation_execute(run_id=run_id)
