"""What attempts contribute to the system app's pages (system never imports attempts)."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce

from attempts.selectors import attempt_queryset


def staff_nav() -> list[tuple[str, str]]:
    return [
        ("Cohorts", "staff-cohorts"),
        ("Dashboard", "staff-analytics"),
        ("Leaderboard", "staff-leaderboards"),
        ("Reports", "staff-reports"),
        ("Review queue", "staff-review-queue"),
    ]


def activity_counts(*, actor, profiles, start, end) -> dict[str, int]:
    """Live attempts the profiles started in the window, and their messages, as the actor may
    see them: the rows attempt/search lists (archived ones hidden, as there by default)."""
    totals = (
        attempt_queryset(actor=actor)
        .filter(archived=False, profile_id__in=profiles, created_at__gte=start, created_at__lt=end)
        .order_by()
        .aggregate(attempts=Count("pk"), messages=Coalesce(Sum("message_count"), 0))
    )
    return {"attempts": totals["attempts"], "messages": totals["messages"]}
