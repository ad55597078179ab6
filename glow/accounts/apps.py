"""Accounts: organizations, departments, cohorts, profiles and API keys."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "glow.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Registers the API key security scheme with drf-spectacular on import.
        from glow.accounts import schema  # noqa: F401
        from glow.accounts.auth import actor_of
        from glow.core.identity import CAPABILITY
        from glow.core.registry import registry

        # glow.core knows no app: its viewsets and media view ask glow.core.identity, which asks this.
        registry.capabilities[CAPABILITY] = actor_of
