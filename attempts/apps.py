"""Attempts: a learner's run through a simulation."""

from django.apps import AppConfig


class AttemptsConfig(AppConfig):
    name = "attempts"
    verbose_name = "Attempts"
