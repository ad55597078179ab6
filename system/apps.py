"""System: sessions, generation groups, runs, events and the timeline; staff pages.

Hooks other apps register in `glow.core.registry` (system never imports them):
- "staff_urls": `fn() -> list[path(...)]`, mounted under /staff/. A page named
  `staff-<family>` taking `pk` (e.g. "staff-attempt") is linked from the groups of that family.
- "activity_counts": `fn(actor, profiles, start, end) -> {name: count}`; `profiles` is a
  queryset of the visible profiles' ids, [start, end) aware datetimes. "attempts" is shown.
- "session_export": `fn(actor, session) -> list[system.exports.ExportFile]` added to the ZIP.
- "staff_nav": `fn() -> list[(label, url name)]`: sections in the staff pages' navigation.

System registers (lower layers call it; system writes the TimelineEvent):
- "audit": `system.ledger.audit_record(actor=, event_type=, entity_id=, entity_name=,
  extra_1=, extra_2=, request=, organization_id=)`: who did what to which target (archives, API
  keys, roles).
"""

from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "system"
    verbose_name = "System"

    def ready(self) -> None:
        from glow.core.registry import registry
        from system.families import SYSTEM
        from system.generation import GenerationBackend
        from system.ledger import audit_record, session_for_request

        # Every authenticated API request belongs to a session (DESIGN: System sessions record every visit).
        registry.add_hook(
            "request", lambda request, actor: session_for_request(request=request, actor=actor)
        )
        registry.add_hook("audit", audit_record)
        registry.register(SYSTEM)
        # glow.core's generate/generations/watch/group ops delegate to this.
        registry.capabilities["generation"] = GenerationBackend()
