"""Structured answers: pull JSON out of a model's text and check it against a small JSON Schema.

Models wrap JSON in code fences or add a sentence around it; :func:`extract_json` takes the first
JSON value in the text. :func:`check` validates the subset of JSON Schema penchant's prompts use
(``type``, ``properties``, ``required``, ``enum``, ``minimum``/``maximum``, ``items``,
``minItems``/``maxItems``, ``maxLength``) and names the first place that does not match.
"""

from __future__ import annotations

import json
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
                                       "integer": (int,), "number": (int, float), "null": (type(None),)}


class AnswerFormatError(ValueError):
    """The text holds no JSON value, or the value does not match the schema; ``where`` is a JSON path."""

    def __init__(self, message: str, where: str = "$") -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text`` (code fences and surrounding words ignored)."""
    decoder = json.JSONDecoder()
    for start, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(text, start)
                return value
            except json.JSONDecodeError:
                continue
    raise AnswerFormatError("no JSON object or array in the answer")


def check(value: Any, schema: dict[str, Any], where: str = "$") -> Any:
    """``value`` if it matches ``schema``; else :class:`AnswerFormatError` naming the first mismatch."""
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        ok = any(isinstance(value, _TYPES[k]) and not (k in ("integer", "number") and isinstance(value, bool))
                 for k in kinds)
        if not ok and "integer" in kinds and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            raise AnswerFormatError(f"expected {' or '.join(kinds)}, got {json.dumps(value)[:80]}", where)
    if "enum" in schema and value not in schema["enum"]:
        raise AnswerFormatError(f"expected one of {schema['enum']}, got {json.dumps(value)[:80]}", where)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise AnswerFormatError(f"expected at least {schema['minimum']}, got {value}", where)
        if "maximum" in schema and value > schema["maximum"]:
            raise AnswerFormatError(f"expected at most {schema['maximum']}, got {value}", where)
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        raise AnswerFormatError(f"expected at most {schema['maxLength']} characters, got {len(value)}", where)
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise AnswerFormatError(f"missing field '{name}'", where)
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                check(value[name], sub, f"{where}.{name}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise AnswerFormatError(f"expected at least {schema['minItems']} items, got {len(value)}", where)
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise AnswerFormatError(f"expected at most {schema['maxItems']} items, got {len(value)}", where)
        if "items" in schema:
            for i, item in enumerate(value):
                check(item, schema["items"], f"{where}[{i}]")
    return value
