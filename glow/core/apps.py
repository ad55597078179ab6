"""The artifact framework's app config."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "glow.core"
    label = "core"
    verbose_name = "Glow core"
