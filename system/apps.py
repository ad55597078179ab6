"""System: sessions, generation groups, runs, events and the timeline; staff pages."""

from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "system"
    verbose_name = "System"

    def ready(self) -> None:
        from glow.core.registry import registry
        from system.services import session_for_request

        # Every authenticated API request belongs to a session (DESIGN: System sessions record every visit).
        registry.add_hook(
            "request", lambda request, actor: session_for_request(request=request, actor=actor)
        )
