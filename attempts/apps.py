"""Attempts: a learner's run through a simulation."""

from django.apps import AppConfig


class AttemptsConfig(AppConfig):
    name = "attempts"
    verbose_name = "Attempts"

    def ready(self) -> None:
        from attempts import families, hooks, rubric_ops
        from glow.core.registry import registry

        families.register()
        rubric_ops.register()
        registry.add_hook("staff_urls", _staff_urls)
        registry.add_hook("staff_nav", hooks.staff_nav)
        registry.add_hook("activity_counts", hooks.activity_counts)


def _staff_urls() -> list:
    from attempts.staff_urls import urlpatterns

    return urlpatterns
