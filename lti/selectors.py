"""LTI reads: what an instructor may link, and which LMS origin may frame a launched session."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from glow.core.registry import registry
from glow.core.selectors import artifact_queryset


@dataclass(frozen=True)
class Choice:
    value: str  # "home:<uuid>" / "practice:<uuid>", the link's glow_entry custom parameter
    title: str
    kind: str
    simulation_id: str
    simulation_title: str
    graded: bool


def deep_link_choices(*, actor) -> list[Choice]:
    """The actor's live home and practice entries, as the API would list them to them."""
    choices = []
    for kind, graded in (("home", True), ("practice", False)):
        rows = (
            artifact_queryset(actor=actor, family=registry.get(kind), include_archived=False)
            .select_related("simulation")
            .order_by("simulation__title", "title")
        )
        choices += [
            Choice(
                value=f"{kind}:{row.pk}",
                title=row.title,
                kind=kind,
                simulation_id=str(row.simulation_id),
                simulation_title=row.simulation.title,
                graded=graded,
            )
            for row in rows[:500]
        ]
    return choices


def deep_link_choice(*, actor, value: str) -> Choice | None:
    return next((c for c in deep_link_choices(actor=actor) if c.value == value), None)


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""


def platform_origin(lti_launch) -> list[str]:
    """Origins that may frame this session: where the LMS page lives (its return URL), its
    issuer and its login endpoint (one of them is the LMS host on every platform we know)."""
    presentation = lti_launch.launch_presentation_claim or {}
    registration = lti_launch.registration
    candidates = [presentation.get("return_url", ""), registration.issuer, registration.auth_url]
    return sorted({origin for origin in map(_origin, candidates) if origin})


def passback_list(*, actor, limit: int = 100):
    """Score passbacks of the attempts the actor may see (their organization, their scope)."""
    from lti.models import ScorePassback

    attempts = artifact_queryset(actor=actor, family=registry.get("attempt"))
    return ScorePassback.objects.filter(launched__attempt__in=attempts.values("pk")).select_related(
        "launched__attempt__profile__user", "launched__lti_user"
    )[:limit]
