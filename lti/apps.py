"""The LTI 1.3 tool app: launches from an LMS, grade passback, roster sync."""

from django.apps import AppConfig


class LtiConfig(AppConfig):
    name = "lti"
    verbose_name = "LTI (LMS integration)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from glow.core.registry import registry
        from lti import services, staff

        # attempts.services.attempt_complete runs this hook inside its transaction.
        registry.add_hook("attempt_completed", services.passback_on_complete)
        # Sent by whatever changes a completed attempt's score (a human review).
        registry.add_hook("attempt_score_changed", services.passback_on_score_change)
        registry.add_hook("staff_urls", staff.staff_urls)
        registry.add_hook("staff_nav", staff.staff_nav)
