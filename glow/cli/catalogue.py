"""The CLI's commands: families and their ops, read from the vendor extensions of the OpenAPI
schema (x-glow-family, x-glow-plural, x-glow-op, x-glow-alias-of), and words resolved to one op."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from glow.cli.errors import UsageError

GENERATE, WATCH = "generate", "watch"
# Positional words an op takes after its name; every other op takes its input from --body.
POSITIONALS = {GENERATE: ("modality", "title"), WATCH: ("run_id",)}
METHODS = ("get", "post", "put", "patch", "delete")


class Field(NamedTuple):
    name: str
    kind: str  # "uuid", "one of text, audio", "list", "object {a, b}", "file (--file)"
    required: bool = False
    help: str = ""


class OpInfo(NamedTuple):
    methods: tuple[str, ...] = ("post",)
    fields: tuple[Field, ...] = ()

    @property
    def upload(self) -> bool:
        return any(item.kind == FILE_KIND for item in self.fields)


FILE_KIND = "file (--file)"


class Catalogue(NamedTuple):
    """Families and their ops as the router mounts them: {singular: [ops]} plus the CLI words."""

    ops: Mapping[str, list[str]]
    plurals: Mapping[str, str]
    summaries: Mapping[str, Mapping[str, str]] = {}
    aliases: Mapping[str, Mapping[str, str]] = {}  # alias -> op
    descriptions: Mapping[str, str] = {}
    details: Mapping[str, Mapping[str, OpInfo]] = {}

    def canonical_ops(self, family: str) -> list[str]:
        """Ops without their second spellings (file_download beside file/download)."""
        aliases = self.aliases.get(family, {})
        return [op for op in self.ops[family] if op not in aliases]

    def family(self, word: str) -> str:
        for name, plural in self.plurals.items():
            if word in (name, plural):
                return name
        words = sorted({*self.plurals, *self.plurals.values()})
        raise UsageError(
            f"unknown family {word!r}.{did_you_mean(word, words)} `glow --help` lists them."
        )

    def info(self, family: str, op: str) -> OpInfo:
        op = self.aliases.get(family, {}).get(op, op)
        return self.details.get(family, {}).get(op, OpInfo())

    def to_json(self) -> dict:
        return {
            **self._asdict(),
            "details": {
                family: {
                    op: [list(info.methods), [list(item) for item in info.fields]]
                    for op, info in ops.items()
                }
                for family, ops in self.details.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict) -> Catalogue:
        details = {
            family: {
                op: OpInfo(tuple(methods), tuple(Field(*item) for item in fields))
                for op, (methods, fields) in ops.items()
            }
            for family, ops in data["details"].items()
        }
        return cls(**{**data, "details": details})


def did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(choice) for choice in close) + "?"


# -- from the OpenAPI schema ----------------------------------------------------------------


def from_schema(schema: dict) -> Catalogue:
    """Every op that carries x-glow-family; ops that carry none (media, health) are not the CLI's."""
    ops: dict[str, list[str]] = {}
    plurals: dict[str, str] = {}
    summaries: dict[str, dict[str, str]] = {}
    aliases: dict[str, dict[str, str]] = {}
    methods: dict[tuple[str, str], list[str]] = {}
    requests: dict[tuple[str, str], dict] = {}
    components = schema.get("components", {}).get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS or "x-glow-family" not in operation:
                continue
            family, name = operation["x-glow-family"], operation["x-glow-op"]
            plurals[family] = operation.get("x-glow-plural", family)
            family_ops = ops.setdefault(family, [])
            if name not in family_ops:
                family_ops.append(name)
            canonical = operation.get("x-glow-alias-of")
            if canonical:
                aliases.setdefault(family, {})[name] = canonical
                continue
            summary = operation.get("summary") or operation.get("description") or ""
            summaries.setdefault(family, {})[name] = summary.strip().split("\n", 1)[0]
            methods.setdefault((family, name), []).append(method)
            known = requests.get((family, name))
            # The POST's body where it has one, else the query parameters of the GET (watch).
            if known is None or ("requestBody" in operation and "requestBody" not in known):
                requests[(family, name)] = operation
    details: dict[str, dict[str, OpInfo]] = {}
    for (family, name), operation in requests.items():
        info = OpInfo(
            methods=tuple(methods[(family, name)]),
            fields=tuple(request_fields(operation, components)),
        )
        details.setdefault(family, {})[name] = info
    descriptions = {
        tag["name"]: tag.get("description", "")
        for tag in schema.get("tags", [])
        if tag.get("name") in plurals
    }
    return Catalogue(
        ops={family: ops[family] for family in sorted(ops)},
        plurals=plurals,
        summaries=summaries,
        aliases=aliases,
        descriptions=descriptions,
        details=details,
    )


def request_fields(operation: dict, components: Mapping[str, dict]) -> list[Field]:
    """The op's input: its JSON (or multipart) body, or for a GET its query parameters."""
    content = operation.get("requestBody", {}).get("content", {})
    media = content.get("application/json") or content.get("multipart/form-data")
    if media is None and content:
        media = next(iter(content.values()))
    if media is not None:
        properties, required = object_shape(media.get("schema", {}), components)
        fields = []
        for name, node in properties.items():
            node = deref(node, components)
            if node.get("readOnly"):
                continue
            fields.append(Field(name, kind(node, components), name in required, describe(node)))
        return fields
    return [
        Field(
            parameter["name"],
            kind(parameter.get("schema", {}), components),
            bool(parameter.get("required")),
            (parameter.get("description") or "").strip(),
        )
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "query"
    ]


def deref(node: Any, components: Mapping[str, dict], depth: int = 0) -> dict:
    if not isinstance(node, dict):
        return {}
    if "$ref" in node and depth < 20:
        return deref(components.get(node["$ref"].rsplit("/", 1)[-1], {}), components, depth + 1)
    for key in ("allOf", "oneOf", "anyOf"):
        branches = [
            deref(branch, components, depth + 1)
            for branch in node.get(key, [])
            if isinstance(branch, dict)
        ]
        # NullEnum beside an enum, or one referenced shape: the field is that shape.
        branches = [b for b in branches if b.get("enum") != [None] and b.get("type") != "null"]
        if len(branches) == 1:
            merged = {k: v for k, v in node.items() if k != key}
            return {**branches[0], **merged}
    return node


def object_shape(node: dict, components: Mapping[str, dict]) -> tuple[dict, set[str]]:
    """Properties and the names every form requires, across oneOf/anyOf/allOf forms."""
    node = deref(node, components)
    properties = dict(node.get("properties", {}))
    required = set(node.get("required", []))
    for key in ("allOf", "oneOf", "anyOf"):
        forms = [object_shape(branch, components) for branch in node.get(key, [])]
        for form_properties, _ in forms:
            for name, value in form_properties.items():
                properties.setdefault(name, value)
        if forms and key == "allOf":
            required |= set().union(*(form_required for _, form_required in forms))
        elif forms:
            required |= set.intersection(*(form_required for _, form_required in forms))
    return properties, required


def kind(node: dict, components: Mapping[str, dict]) -> str:
    node = deref(node, components)
    if node.get("enum"):
        return "one of " + ", ".join(str(choice) for choice in node["enum"] if choice is not None)
    kind_of = node.get("type")
    if isinstance(kind_of, list):
        kind_of = next((item for item in kind_of if item != "null"), None)
    if node.get("format") == "binary":
        return FILE_KIND
    if kind_of == "array":
        return "list"
    if kind_of == "object" or "properties" in node:
        keys = ", ".join(node.get("properties", {}))
        return f"object {{{keys}}}" if keys else "object"
    if kind_of == "string":
        return {"uuid": "uuid", "date-time": "datetime", "date": "date", "uri": "url"}.get(
            node.get("format", ""), "string"
        )
    return kind_of or "value"


def describe(node: dict) -> str:
    return " ".join((node.get("description") or "").split())


# -- words to one op -------------------------------------------------------------------------


class Target(NamedTuple):
    family: str  # singular, as in the URL
    op: str  # as mounted, slashes kept: "audio/start"
    args: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.family}/{self.op}"


def resolve(words: list[str], catalogue: Catalogue) -> Target:
    """`attempts start`, `attempt audio/start` or `attempts audio start` -> Target."""
    if not words:
        raise UsageError("name a family and an op, e.g. `glow attempts start`.")
    family = catalogue.family(words[0])
    ops = catalogue.ops[family]
    plural = catalogue.plurals[family]
    rest = words[1:]
    if not rest:
        raise UsageError(f"name an op of {plural}: `glow {plural} --help` lists them.")
    matches = [k for k in range(len(rest), 0, -1) if "/".join(rest[:k]) in ops]
    if not matches:
        word = "/".join(rest)
        hint = did_you_mean(word, ops) or did_you_mean(rest[0], ops)
        raise UsageError(
            f"unknown op {rest[0]!r} for {plural}.{hint} `glow {plural} --help` lists them."
        )
    longest = matches[0]
    for shorter in matches[1:]:
        shorter_op = "/".join(rest[:shorter])
        if len(rest) - shorter <= len(POSITIONALS.get(shorter_op, ())):
            raise UsageError(
                f"ambiguous: {'/'.join(rest[:longest])!r} or {shorter_op!r} with arguments; "
                "write the op with slashes."
            )
    op = "/".join(rest[:longest])
    args = tuple(rest[longest:])
    allowed = POSITIONALS.get(op, ())
    if len(args) > len(allowed):
        extra = args[len(allowed)]
        raise UsageError(
            f"unexpected argument {extra!r} after `{plural} {op}`."
            f"{did_you_mean('/'.join(rest), ops)} Pass input with --body."
        )
    return Target(family=family, op=op, args=args)
