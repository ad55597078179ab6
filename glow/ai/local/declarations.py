"""Fields and parameter sets drafted from a user's instructions, read literally.

"A required enum field 'grade level' with values K-5, 6-8, 9-12" gives the field grade_level,
an enum of exactly those values, required; "a deterministic low-temperature parameter set"
gives a low temperature and a fixed seed. What the instructions do not say stays unset.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_QUOTED = re.compile(r"[\"'“‘]([^\"'”’]{1,80})[\"'”’]")
_NAMED = re.compile(r"\b(?:named|called|key)\s+([A-Za-z][\w-]*(?:\s+[a-z][\w-]*)?)")
_FIELD_FOR = re.compile(
    r"\bfield\s+(?:for|of)\s+(?:the\s+|a\s+|an\s+)?([a-z][\w-]*(?:\s+[a-z][\w-]*)?)"
)
_VALUES = re.compile(
    r"\b(?:values?|one of|options?|choices?)\b\s*(?:are|is|of|:)?\s*(.+?)(?:[.;]|\bdefault\b|$)",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*(?:,|/|\bor\b|\band\b)\s*")
_DEFAULT = re.compile(r"\bdefaults?\s*(?:to|is|of|:|=)?\s*[\"'“]?([^\"'”,;.]+(?:\.\d+)?)", re.I)
_TYPES = (
    ("enum", ("enum", "one of", "values", "options", "choices", "choice", "dropdown")),
    ("boolean", ("boolean", "yes/no", "yes or no", "true/false", "flag", "checkbox")),
    ("integer", ("integer", "whole number", "count", "int")),
    ("number", ("number", "decimal", "float", "numeric", "amount", "score")),
    ("date", ("date", "day")),
)


def field_name(text: str) -> str:
    """The field's key: a quoted name, a `named X`, a `field for X`, else the first keywords."""
    for pattern in (_QUOTED, _NAMED, _FIELD_FOR):
        match = pattern.search(text)
        if match:
            return _key(match.group(1))
    words = [w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in _FILLER]
    return _key(" ".join(words[:2])) or "field"


_FILLER = frozenset(("a", "an", "the", "required", "optional", "mandatory", "field", "enum",
    "string", "integer", "number", "boolean", "date", "with", "values", "value", "create", "make",
    "add", "new", "text", "input", "that", "must"))  # fmt: skip


def _key(words: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", words.strip().lower()).strip("_")[:100]


def field_title(text: str) -> str:
    return field_name(text).replace("_", " ").capitalize()


def field_type(text: str) -> str:
    for kind, cues in _TYPES:
        if _says(text, *cues):
            return kind
    return "string"


def enum_values(text: str) -> list[str]:
    if field_type(text) != "enum":
        return []
    match = _VALUES.search(text)
    if not match:
        return []
    values = [part.strip(" \"'“”‘’") for part in _SPLIT.split(match.group(1))]
    return list(dict.fromkeys(value for value in values if value))[:50]


def required(text: str) -> bool:
    lowered = text.lower()
    if re.search(r"\b(?:optional|not required|may be left)\b", lowered):
        return False
    return bool(re.search(r"\b(?:required|mandatory|must)\b", lowered))


def default(text: str) -> object:
    match = _DEFAULT.search(text)
    if not match:
        return None
    raw = match.group(1).strip()
    kind = field_type(text)
    if kind == "enum":
        values = enum_values(text)
        return next((value for value in values if value.lower() == raw.lower()), None)
    if kind == "boolean":
        return raw.lower() in ("yes", "true", "on", "1")
    if kind in ("integer", "number"):
        number = re.match(r"-?\d+(?:\.\d+)?", raw)
        if not number:
            return None
        value = float(number.group(0))
        return int(value) if kind == "integer" else value
    return raw


_NUMBER = r"(-?\d+(?:\.\d+)?)"


def _stated(text: str, *names: str) -> float | None:
    for name in names:
        match = re.search(rf"\b{name}\b\s*(?:of|is|at|=|:)?\s*{_NUMBER}", text, re.IGNORECASE)
        if match:
            return float(match.group(1))
    return None


def _says(text: str, *cues: str) -> bool:
    lowered = text.lower()
    return any(re.search(rf"\b{re.escape(cue)}\b", lowered) for cue in cues)


DETERMINISTIC = ("deterministic", "reproducible", "repeatable", "stable", "consistent")
LOW = ("low-temperature", "low temperature", "precise", "focused", "conservative", "factual")
HIGH = ("creative", "high-temperature", "high temperature", "varied", "diverse", "exploratory")


def temperature(text: str) -> float | None:
    stated = _stated(text, "temperature", "temp")
    if stated is not None:
        return max(0.0, min(2.0, stated))
    if _says(text, *DETERMINISTIC, *LOW):
        return 0.0 if _says(text, "greedy", "zero temperature") else 0.2
    if _says(text, *HIGH):
        return 1.0
    return None


def top_p(text: str) -> float | None:
    stated = _stated(text, "top_p", "top-p", "top p", "nucleus")
    return None if stated is None else max(0.0, min(1.0, stated))


def max_tokens(text: str) -> int | None:
    stated = _stated(text, "max_tokens", "max tokens", "maximum tokens", "max-tokens")
    if stated is None:
        match = re.search(r"\b(\d{1,6})\s*tokens?\b", text, re.IGNORECASE)
        stated = float(match.group(1)) if match else None
    if stated is None and _says(text, "short", "brief", "terse"):
        return 256
    return None if stated is None else max(1, min(128_000, int(stated)))


def seed(text: str) -> int | None:
    stated = _stated(text, "seed")
    if stated is not None:
        return max(0, int(stated))
    return 42 if _says(text, *DETERMINISTIC) else None


def _fill(reader: Callable[[str], object]) -> Callable[[str, str, object], object]:
    return lambda text, family, rng: reader(text)


FAMILY_FIELDS: dict[str, dict[str, Callable]] = {
    "field": {
        "name": _fill(field_name),
        "type": _fill(field_type),
        "enum_values": _fill(enum_values),
        "required": _fill(required),
        "default": _fill(default),
    },
    "parameter": {
        "temperature": _fill(temperature),
        "top_p": _fill(top_p),
        "max_tokens": _fill(max_tokens),
        "seed": _fill(seed),
    },
}
FAMILY_TITLES: dict[str, Callable[[str], str]] = {"field": field_title}
