"""Denormalised attempt data: the live score, the materialised counts, the drift repair."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, F, FloatField, OuterRef, Subquery, Sum
from django.db.models.functions import Cast, Coalesce, Greatest, Round

from attempts import selectors as s
from attempts.models import (
    Attempt,
    AttemptCount,
    AttemptStatus,
    Chat,
    ChatStatus,
    Completion,
)
from glow.accounts.models import Profile
from glow.core.aggregates import per_row


def _rollup_save(attempt: Attempt) -> None:
    """Keep the in-progress score current; a completed attempt's rollup is frozen."""
    if attempt.status == AttemptStatus.COMPLETED:
        return
    rollup = s.rollup_of(
        chats=s.chats_of(attempt), structure=[], pass_threshold=attempt.simulation.pass_threshold
    )
    attempt.score, attempt.passed, attempt.time_taken = (
        rollup.score,
        rollup.passed if rollup.score is not None else None,
        rollup.time_taken,
    )
    attempt.save(update_fields=["score", "passed", "time_taken", "updated_at"])


COUNT_KEYS = ("profile_id", "simulation_id", "department_id", "cohort_id", "practice", "archived")


@transaction.atomic
def attempt_counts_sync(*, organization_id, profile_ids=None) -> int:
    """Recount these learners' attempts (every learner of the organization when None) into
    AttemptCount; answers how many count rows now stand for them.

    The learners' profile rows are locked first, so two recounts of one learner (two starts at
    once) run one after the other instead of both inserting.
    """
    profiles = Profile.objects.filter(organization_id=organization_id)
    if profile_ids is not None:
        profiles = profiles.filter(pk__in=profile_ids)
    locked = list(profiles.select_for_update().order_by("pk").values_list("pk", flat=True))
    mine = {"organization_id": organization_id}
    if profile_ids is not None:
        mine["profile_id__in"] = locked
    AttemptCount.objects.filter(**mine).delete()
    rows = (
        Attempt.objects.filter(**mine).order_by().values(*COUNT_KEYS).annotate(number=Count("pk"))
    )
    made = AttemptCount.objects.bulk_create(
        (
            AttemptCount(organization_id=organization_id, count=row.pop("number"), **row)
            for row in rows.iterator(chunk_size=5000)
        ),
        batch_size=5000,
    )
    return len(made)


@transaction.atomic
def attempt_rollups_refresh(*, actor) -> list[str]:
    """Re-derive the denormalised data of the actor's attempts from their sources (repairs drift):
    counters, live scores and frozen scores in three UPDATEs, then the materialised counts.
    """
    scope = s.attempt_queryset(actor=actor)
    chats = Chat.objects.all()
    scope.update(
        chat_count=Coalesce(per_row(chats, Count("pk"), by="attempt"), 0),
        ended_chat_count=Coalesce(
            per_row(chats.filter(status=ChatStatus.ENDED), Count("pk"), by="attempt"), 0
        ),
        message_count=Coalesce(per_row(chats, Sum("message_count"), by="attempt"), 0),
    )
    # The same weighting as selectors.weighted_score: percents weighted by rubric points.
    weight = Greatest(F("grade__total_points"), 1)
    scope.filter(status=AttemptStatus.IN_PROGRESS).update(
        score=per_row(
            chats.filter(grade__isnull=False),
            Round(
                Cast(Sum(F("grade__score") * weight), FloatField())
                / Cast(Sum(weight), FloatField())
            ),
            by="attempt",
        )
    )
    completions = Completion.objects.filter(attempt=OuterRef("pk"))
    scope.filter(status=AttemptStatus.COMPLETED).update(
        score=Subquery(completions.values("score")[:1]),
        passed=Subquery(completions.values("passed")[:1]),
        time_taken=Subquery(completions.values("time_taken")[:1]),
    )
    if actor.is_admin:
        attempt_counts_sync(organization_id=actor.organization_id)
    else:
        attempt_counts_sync(
            organization_id=actor.organization_id,
            profile_ids=scope.order_by().values("profile_id").distinct(),
        )
    return ["attempt_counters", "attempt_scores", "attempt_counts"]
