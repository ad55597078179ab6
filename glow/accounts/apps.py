"""Accounts: organizations, departments, cohorts, profiles and API keys."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "glow.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Registers the API key security scheme with drf-spectacular on import.
        from glow.accounts import schema  # noqa: F401
