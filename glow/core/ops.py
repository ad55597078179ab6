"""The `op` decorator: a DRF action mounted at <family>/<name>, with its request and response shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rest_framework.decorators import action


@dataclass(frozen=True)
class OpSpec:
    name: str  # as in the URL: "start", "audio/start", "file/download"
    attr: str  # the viewset method
    methods: tuple[str, ...]
    request: type | Callable | None  # a serializer class, or family -> class
    response: type | Callable | None
    aliases: tuple[str, ...] = ()
    summary: str = ""
    needs_model: bool = True  # universal ops on rows; off for model-less namespaces
    roles: tuple[str, ...] = field(default=("learner", "instructor", "admin"))
    # family -> bool: the op is mounted only where it holds (e.g. the family has a generator).
    when: Callable | None = None


def op(
    name: str,
    *,
    request=None,
    response=None,
    methods=("post",),
    aliases=(),
    summary: str = "",
    needs_model: bool = False,
    roles=("learner", "instructor", "admin"),
    when=None,
    parser_classes=None,
):
    def decorator(func):
        doc = (func.__doc__ or "").strip().splitlines()
        spec = OpSpec(
            name=name,
            attr=func.__name__,
            methods=tuple(methods),
            request=request,
            response=response,
            aliases=tuple(aliases),
            summary=summary or (doc[0] if doc else name),
            needs_model=needs_model,
            roles=tuple(roles),
            when=when,
        )
        # DRF passes an action's extra kwargs to as_view(): e.g. multipart parsing for uploads only.
        extra = {"parser_classes": parser_classes} if parser_classes else {}
        wrapped = action(
            detail=False,
            methods=list(methods),
            url_path=name,
            url_name=name.replace("/", "-"),
            **extra,
        )(func)
        wrapped.glow_op = spec
        return wrapped

    return decorator


def resolve(shape, family):
    """A shape is a serializer class or a factory taking the family."""
    if shape is None:
        return None
    if isinstance(shape, type):
        return shape
    return shape(family)
