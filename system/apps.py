"""System: sessions, generation groups, runs, events and the timeline; staff pages."""

from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "system"
    verbose_name = "System"
