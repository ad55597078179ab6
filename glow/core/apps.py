"""The artifact framework's app config."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "glow.core"
    label = "core"
    verbose_name = "Glow core"

    def ready(self) -> None:
        # The Celery app, so shared tasks sent from any Django process use its broker settings.
        import glow.celery  # noqa: F401
