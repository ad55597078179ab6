"""Tests: model x scenario x agent fan-outs, invocations and the benchmark."""

from django.apps import AppConfig


class TestsAppConfig(AppConfig):
    name = "tests_app"
    verbose_name = "Tests and benchmarks"
