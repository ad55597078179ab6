"""Validation of model output against the JSON Schema subset Glow uses, and conforming to it.

Supported keywords: type (a name or a list), properties, required, items, enum,
minimum, maximum, minItems, maxItems, maxLength. Other keywords are ignored.
"""

from __future__ import annotations

import math
from typing import Any

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    if isinstance(value, bool) and name != "boolean":
        return False
    return isinstance(value, _PYTHON_TYPES.get(name, object))


def _type_names(schema: dict) -> list[str]:
    declared = schema.get("type")
    if declared is None:
        return []
    return [declared] if isinstance(declared, str) else list(declared)


def schema_errors(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Every violation of `schema` by `value`, as 'path: problem' strings."""
    names = _type_names(schema)
    if names and not any(_is_type(value, name) for name in names):
        return [f"{path}: expected {' or '.join(names)}, got {_json_type(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if _is_number(value):
        errors.extend(_range_errors(value, schema, path))
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(
            f"{path}: {len(value)} characters, more than the maximum {schema['maxLength']}"
        )
    if isinstance(value, dict):
        errors.extend(_object_errors(value, schema, path))
    if isinstance(value, list):
        errors.extend(_array_errors(value, schema, path))
    return errors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_type(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "array", "object", "null"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def _range_errors(value: float, schema: dict, path: str) -> list[str]:
    errors = []
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: {value} is below the minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: {value} is above the maximum {schema['maximum']}")
    return errors


def _object_errors(value: dict, schema: dict, path: str) -> list[str]:
    errors = [
        f"{path}: missing required property {name!r}"
        for name in schema.get("required", [])
        if name not in value
    ]
    for name, subschema in schema.get("properties", {}).items():
        if name in value:
            errors.extend(schema_errors(value[name], subschema, f"{path}.{name}"))
    return errors


def _array_errors(value: list, schema: dict, path: str) -> list[str]:
    errors = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: expected at least {schema['minItems']} items, got {len(value)}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: expected at most {schema['maxItems']} items, got {len(value)}")
    if "items" in schema:
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{path}[{index}]"))
    return errors


def conform(value: Any, schema: dict, filler: str = "") -> Any:
    """`value` made valid for `schema`: valid parts are kept, the rest is filled in.

    The local simulator uses this so its answers fit whatever schema a caller asks for;
    missing strings become `filler` (or a placeholder naming the property).
    """
    return _conform(value, schema, filler, "value")


def _conform(value: Any, schema: dict, filler: str, label: str) -> Any:
    if not schema_errors(value, schema):
        return value
    names = _type_names(schema)
    if isinstance(value, dict) and (not names or "object" in names):
        return _conform_object(value, schema, filler)
    if isinstance(value, list) and "array" in names:
        kept = [_conform(item, schema.get("items", {}), filler, label) for item in value]
        return _fit_length(kept, schema, filler, label)
    if isinstance(value, str) and "maxLength" in schema:
        shortened = value[: schema["maxLength"]]
        if not schema_errors(shortened, schema):
            return shortened
    return _example(schema, filler, label)


def _conform_object(value: dict, schema: dict, filler: str) -> dict:
    properties = schema.get("properties", {})
    result = {name: item for name, item in value.items() if name not in properties}
    for name, subschema in properties.items():
        if name in value:
            result[name] = _conform(value[name], subschema, filler, name)
        elif name in schema.get("required", []):
            result[name] = _example(subschema, filler, name)
    return result


def _fit_length(items: list, schema: dict, filler: str, label: str) -> list:
    items = items[: schema.get("maxItems", len(items))]
    while len(items) < schema.get("minItems", 0):
        items.append(_example(schema.get("items", {}), filler, label))
    return items


def _example(schema: dict, filler: str, label: str) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    names = _type_names(schema) or ["string"]
    kind = names[0]
    if kind == "object":
        return _conform_object({}, schema, filler)
    if kind == "array":
        return _fit_length([], schema, filler, label)
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", 0), schema.get("maximum")
        number = low if high is None else max(low, min(0, high))
        return math.ceil(number) if kind == "integer" else number
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return filler or f"{label.replace('_', ' ')} (local simulator)"
