"""The LTI 1.3 tool app: launches from an LMS, grade passback, roster sync."""

from django.apps import AppConfig


def _on_complete(**kwargs):
    from lti.services import passback_on_complete

    return passback_on_complete(**kwargs)


def _on_score_change(**kwargs):
    from lti.services import passback_on_score_change

    return passback_on_score_change(**kwargs)


def _staff_urls():
    from lti.staff import staff_urls

    return staff_urls()


class LtiConfig(AppConfig):
    name = "lti"
    verbose_name = "LTI (LMS integration)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from glow.core.registry import registry

        # Imported when first called: `glow --help` boots Django and should not pay for them.
        # attempts.lifecycle.attempt_complete runs this inside its transaction.
        registry.add_hook("attempt_completed", _on_complete)
        # Sent by whatever changes a completed attempt's score (a human review).
        registry.add_hook("attempt_score_changed", _on_score_change)
        registry.add_hook("staff_urls", _staff_urls)
        registry.add_hook("staff_nav", lambda: [("LMS scores", "staff-lms-scores")])
