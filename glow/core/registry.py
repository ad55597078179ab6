"""The registry of artifact families: declared once, read by the router, CLI, admin and schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model, QuerySet


@dataclass(frozen=True)
class Facet:
    """A search facet: filter param, the field it filters, and where its option labels come from."""

    name: str  # response key is f"{name}_filter"
    param: str  # request key, e.g. "simulation_ids"
    field: str  # ORM path of the id, e.g. "simulation_id"
    label: str  # ORM path of the label, e.g. "simulation__title"
    search_param: str | None = None  # e.g. "simulation_search": narrows the options by label


def _everything(queryset: QuerySet, actor) -> QuerySet:
    return queryset


@dataclass(eq=False)  # identity-hashed: families key caches of viewsets and serializers
class Family:
    name: str  # singular, as in the URL: "persona"
    plural: str  # the CLI's word and the search response's items key: "personas"
    model: type[Model] | None = None  # None for read-only namespaces like "system"
    viewset: type | None = None  # subclass of ArtifactViewSet; None means the generic one
    output_serializer: type | None = None
    write_serializer: type | None = None  # validates draft/publish `data`
    # publish without an id creates a row; False: rows come from the family's own op
    # (attempt/start, test/start), so publish only edits one (the schema says so too).
    creatable: bool = True
    filterset: type | None = None
    facets: list[Facet] = field(default_factory=list)
    # Role scoping inside the actor's organization (organization is applied by the framework).
    scope: Callable[[QuerySet, Any], QuerySet] = _everything
    # Who may write (draft, publish, archive, generate, a new title): staff unless a family says
    # otherwise. The write ops declare `roles=writers`, so the op gate reads this too.
    write_roles: tuple[str, ...] = ("instructor", "admin")
    # Applies validated `data` to a (possibly new) instance; returns it saved. None: plain fields.
    writer: Callable | None = None
    context: Callable[[Any], str] | None = None  # text used as LLM context for `context`
    problems: Callable[[Any], list[dict]] | None = None  # validation issues for `problem`
    generator: Callable | None = None  # set by the generation mechanism
    description: str = ""
    organization_field: str = "organization_id"
    # Optional ids that every family's upload ops accept, declared by the family they belong to;
    # its own `<name>_id` among them stores the upload against that row (attempt: a recording
    # uploaded through persona/audio_upload belongs to the attempt).
    upload_fields: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def can_write(self, actor) -> bool:
        return actor is not None and actor.role in self.write_roles

    @property
    def id_field(self) -> str:
        return f"{self.name}_id"

    @property
    def ids_field(self) -> str:
        return f"{self.name}_ids"

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


class Registry:
    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self.hooks: dict[str, list[Callable]] = {}
        # One implementation per name, provided by a higher app (e.g. system's "generation").
        self.capabilities: dict[str, Any] = {}

    def register(self, family: Family) -> Family:
        if family.name in self._families:
            raise ValueError(f"Family {family.name!r} is registered twice.")
        self._families[family.name] = family
        return family

    def get(self, name: str) -> Family:
        return self._families[name]

    def find(self, word: str) -> Family | None:
        """By singular or plural name (the CLI accepts both)."""
        for family in self._families.values():
            if word in (family.name, family.plural):
                return family
        return None

    def families(self) -> list[Family]:
        return list(self._families.values())

    def for_model(self, model: type[Model]) -> Family | None:
        for family in self._families.values():
            if family.model is model:
                return family
        return None

    def add_hook(self, name: str, hook: Callable) -> None:
        """Apps lower in the dependency order contribute here (e.g. system's activity counts)."""
        self.hooks.setdefault(name, []).append(hook)

    def run_hooks(self, name: str, **kwargs) -> list:
        return [hook(**kwargs) for hook in self.hooks.get(name, [])]


registry = Registry()


def op_table() -> dict[str, list[str]]:
    """Every family's ops as mounted by the router: the CLI and the schema test read this."""
    from glow.core.routers import family_ops

    return {family.name: family_ops(family) for family in registry.families()}
