"""Celery tasks of tests: one worker slot of a test drains its queued invocations."""

from celery import shared_task

from tests_app import runner


@shared_task(name="tests_app.invocations_drain", acks_late=True, reject_on_worker_lost=True)
def invocations_drain(test_id: str, worker_token: str) -> int:
    """Safe to run twice: a redelivered task resumes its own claimed invocation from the start."""
    return runner.worker_run(test_id=test_id, worker_token=worker_token)
