"""System: sessions, generation groups, runs, events and the timeline; staff pages.

Hooks other apps register in `glow.core.registry` (system never imports them):
- "staff_urls": `fn() -> list[path(...)]`, mounted under /staff/. A page named
  `staff-<family>` taking `pk` (e.g. "staff-attempt") is linked from the groups of that family.
- "activity_counts": `fn(actor, profiles, start, end) -> {name: count}`; `profiles` is a
  queryset of the visible profiles' ids, [start, end) aware datetimes. "attempts" is shown.
- "session_export": `fn(actor, session) -> list[system.services.ExportFile]` added to the ZIP.
- "staff_nav": `fn() -> list[(label, url name)]`: sections in the staff pages' navigation.

System registers (lower layers call it; system writes the TimelineEvent):
- "audit": `record_audit(actor=, event_type=, entity_id=, entity_name=, extra_1=, extra_2=,
  request=, organization_id=)`: who did what to which target (archives, API keys, roles).
"""

from django.apps import AppConfig


def record_audit(
    *,
    event_type: str,
    actor=None,
    organization_id=None,
    entity_id="",
    entity_name="",
    extra_1="",
    extra_2="",
    request=None,
):
    """An audit row in the session of the request it came from (a signed-in profile's browser
    request gets one booked); without an actor (the command line), in the target's organization."""
    from system.models import TimelineEvent
    from system.services import session_for_request, timeline_record

    request = getattr(request, "_request", request)
    fields = {"event_type": event_type, "entity_id": entity_id, "entity_name": entity_name}
    if actor is not None:
        session = session_for_request(request=request, actor=actor) if request else None
        return timeline_record(
            actor=actor, session=session, extra_1=extra_1, extra_2=extra_2, **fields
        )
    return TimelineEvent.objects.create(
        organization_id=organization_id,
        event_type=event_type,
        entity_id=str(entity_id or ""),
        entity_name=str(entity_name or "")[:300],
        extra_1=str(extra_1 or "")[:300],
        extra_2=str(extra_2 or "")[:300],
    )


class SystemConfig(AppConfig):
    name = "system"
    verbose_name = "System"

    def ready(self) -> None:
        from glow.core.registry import registry
        from system.api import SYSTEM
        from system.generation import GenerationBackend
        from system.services import session_for_request

        # Every authenticated API request belongs to a session (DESIGN: System sessions record every visit).
        registry.add_hook(
            "request", lambda request, actor: session_for_request(request=request, actor=actor)
        )
        registry.add_hook("audit", record_audit)
        registry.register(SYSTEM)
        # glow.core's generate/generations/watch/group ops delegate to this.
        registry.capabilities["generation"] = GenerationBackend()
