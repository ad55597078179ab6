"""The `op` decorator: a DRF action mounted at <family>/<name>, with its request and response
shapes and the roles that may call it (enforced once, before the view runs: `OpSpec.allows`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rest_framework.decorators import action

# The roles of glow.accounts.Role, as strings: core names them without importing the app.
ALL_ROLES = ("learner", "instructor", "admin")
STAFF = ("instructor", "admin")


def writers(family) -> tuple[str, ...]:
    """The roles that may change the family's rows (draft, publish, archive, generate)."""
    return family.write_roles


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
    # Who may call the op: roles, or family -> roles (e.g. `writers`). Scope (which rows) is the
    # selectors' business; this is the role gate that answers 403 before the view runs.
    roles: tuple[str, ...] | Callable = field(default=ALL_ROLES)
    # family -> bool: the op is mounted only where it holds (e.g. the family has a generator).
    when: Callable | None = None

    def roles_for(self, family) -> tuple[str, ...]:
        return tuple(self.roles(family)) if callable(self.roles) else self.roles

    def allows(self, family, actor) -> bool:
        return actor is not None and actor.role in self.roles_for(family)


def op(
    name: str,
    *,
    request=None,
    response=None,
    methods=("post",),
    aliases=(),
    summary: str = "",
    needs_model: bool = False,
    roles=ALL_ROLES,
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
            roles=roles if callable(roles) else tuple(roles),
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
