"""The catalog: authored artifact families (personas, scenarios, rubrics, ..., fields, parameters)."""

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "glow.catalog"
    label = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from glow.catalog import families, generators

        families.register_all()
        generators.register_generators()
