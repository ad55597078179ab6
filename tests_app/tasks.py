"""Celery tasks of tests: worker slots that drain a test's queue, and the recovery of lost cells."""

from celery import shared_task
from celery.signals import worker_ready

from tests_app import lifecycle
from tests_app.engine import workers


@shared_task(name="tests_app.invocations_drain", acks_late=True, reject_on_worker_lost=True)
def invocations_drain(test_id: str, worker_token: str) -> int:
    """Safe to run twice: a redelivered task resumes its own claimed cells from their start."""
    return workers.worker_run(test_id=test_id, worker_token=worker_token)


@shared_task(name="tests_app.test_recover", acks_late=True)
def test_recover_task(test_id: str) -> dict:
    """Requeue the cells of workers that stopped renewing their leases; safe to run twice."""
    return lifecycle.test_recover(test_id=test_id)


@worker_ready.connect
def _recover_on_start(**_kwargs) -> None:
    """A worker process starting (after a crash, a deploy) looks for cells left behind, and
    loads the OpenAI SDK now rather than inside its first test's first call."""
    import openai.resources  # noqa: F401

    lifecycle.tests_recover()
