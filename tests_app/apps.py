"""Tests: model x scenario x agent fan-outs, invocations and the benchmark."""

from django.apps import AppConfig


class TestsAppConfig(AppConfig):
    name = "tests_app"
    verbose_name = "Tests and benchmarks"

    def ready(self) -> None:
        from glow.core.registry import registry
        from tests_app import families, hooks

        families.register_all()
        registry.add_hook("staff_urls", _staff_urls)
        registry.add_hook("staff_nav", hooks.staff_nav)
        registry.add_hook("activity_counts", hooks.activity_counts)
        registry.add_hook("session_export", hooks.session_export)


def _staff_urls() -> list:
    from tests_app.staff_urls import urlpatterns

    return urlpatterns
