"""Celery tasks of the LTI app: send a score to the LMS, retrying with backoff."""

from celery import shared_task
from django.conf import settings

from lti import services


@shared_task(bind=True, acks_late=True, max_retries=len(services.RETRY_DELAYS))
def score_passback_send(self, passback_id: int) -> None:
    retry_in = services.passback_send(passback_id=passback_id)
    # Only a worker can wait: in-process modes leave the row due for `lti_scores_retry`.
    if retry_in is not None and settings.GLOW_TASK_MODE == "celery":
        raise self.retry(countdown=retry_in)
