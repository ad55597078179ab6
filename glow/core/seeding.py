"""Demo rows that are created once and then left alone: each has an id derived from a stable key.

`glow_demo` used to match rows by title and overwrite them, so renaming a demo persona made the
next run create a second copy under the old name (and point the demo scenario back at it). A row
the demo loader makes now carries `demo_id(model, key)` as its primary key: a rerun finds it by
that id whatever it has been renamed to, and changes nothing unless `glow_demo --reset` asks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db.models import Model

DEMO_NAMESPACE = uuid.UUID("5f0c2a57-6d1e-4a39-9b8e-2f4c1d7e9a10")
# Set by `glow_demo --reset`: existing demo rows get the demo's values written back.
_reset: ContextVar[bool] = ContextVar("demo_reset", default=False)
# Rows this run created (or reset), so their relations are written; others keep theirs.
_written: ContextVar[set | None] = ContextVar("demo_written", default=None)


@contextmanager
def demo_run(*, reset: bool = False) -> Iterator[None]:
    reset_token, written_token = _reset.set(reset), _written.set(set())
    try:
        yield
    finally:
        _reset.reset(reset_token)
        _written.reset(written_token)


def resetting() -> bool:
    return _reset.get()


def demo_id(model: type[Model], key: str) -> uuid.UUID:
    """The same id for the same model and key on every machine and every run (a renamed class
    names its former label in `demo_label`, so its rows keep their ids)."""
    label = getattr(model, "demo_label", model._meta.label_lower)
    return uuid.uuid5(DEMO_NAMESPACE, f"{label}:{key}")


def demo_find(model: type[Model], key: str, **legacy) -> Model | None:
    """The demo row of `key`: by its derived id, else (a database loaded before ids were derived)
    the oldest row matching `legacy` (e.g. organization and title)."""
    row = model._default_manager.filter(pk=demo_id(model, key)).first()
    if row is None and legacy:
        row = model._default_manager.filter(**legacy).order_by("pk").first()
    return row


def demo_ensure(model: type[Model], key: str, *, legacy: dict, fields: dict) -> Model:
    """Create the row if missing; an existing one is left as people edited it, unless the run
    resets (then its fields get the demo's values back, as the old loader did every run)."""
    row = demo_find(model, key, **legacy)
    if row is None:
        row = model(pk=demo_id(model, key), **legacy, **fields)
        row.save(force_insert=True)
    elif resetting():
        for name, value in {**legacy, **fields}.items():
            setattr(row, name, value)
        row.save()
    else:
        return row
    written = _written.get()
    if written is not None:
        written.add((model._meta.label_lower, row.pk))
    return row


def demo_written(row: Model) -> bool:
    """Whether this run created (or reset) the row: only then are its relations written."""
    written = _written.get()
    if written is None:  # called outside glow_demo (a test seeding directly): behave as created
        return True
    return (row._meta.label_lower, row.pk) in written
