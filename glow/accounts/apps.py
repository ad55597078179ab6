"""Accounts: organizations, departments, cohorts, profiles and API keys."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "glow.accounts"
    label = "accounts"
    verbose_name = "Accounts"
