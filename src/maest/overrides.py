"""``--set section.key=value`` overrides of nested config dataclasses, type-checked against the
field's annotation with a suggestion for misplaced keys; the JSON round trip of configs (``from_dict``,
``save_json``); and the two value checks every config section uses in its own ``validate()``.

Nothing here knows which sections exist: a section that needs more than a plain assignment (a model
name that stands for a whole geometry) offers an ``adopt(value, path)`` method.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any


def check_positive(value: int, name: str, hint: str = "") -> None:
    if value < 1:
        raise ValueError(f"{name}={value} must be a positive integer" + (f" ({hint})" if hint else ""))


def check_choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {choices}")


def coerce(text: str, hint: Any, key: str) -> Any:
    """Parse ``text`` as the annotated type (int, float, bool, str, Optional of those, or a comma-separated
    tuple / list of them)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (tuple, list):
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        values = [coerce(p, args[0], key) for p in parts]
        return tuple(values) if typing.get_origin(hint) is tuple else values
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null"):
            if type(None) in args:
                return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={text!r}: expected true or false")
    try:
        return hint(text)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={text!r}: expected a value of type {hint.__name__}") from None


def apply_overrides(cfg: Any, overrides: list[str]) -> Any:
    """Apply ``section.key=value`` strings in place; unknown keys and bad values raise ValueError."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.epochs=10")
        path, text = item.split("=", 1)
        *parents, leaf = path.strip().split(".")
        target = cfg
        for name in parents:
            if not dataclasses.is_dataclass(target) or not hasattr(target, name):
                raise ValueError(f"unknown config section {name!r} in {path!r}; known: {_fields(target)}")
            target = getattr(target, name)
        if not dataclasses.is_dataclass(target) or leaf not in {f.name for f in dataclasses.fields(target)}:
            nested = [f"{path.rsplit('.', 1)[0]}.{sub}.{leaf}" for sub in _fields(target)
                      if leaf in _fields(getattr(target, sub))]
            hint = f"; did you mean {nested[0]}?" if nested else f"; known keys here: {_fields(target)}"
            raise ValueError(f"unknown config key {path!r}{hint}")
        hint = typing.get_type_hints(type(target))[leaf]
        if dataclasses.is_dataclass(hint):
            raise ValueError(f"{path!r} is a section; set one of its keys, e.g. {path}.{_fields(hint)[0]}=...")
        value = coerce(text.strip(), hint, path)
        if leaf == "name" and hasattr(target, "adopt"):
            target.adopt(value, path)  # a model name stands for its whole registered geometry
        setattr(target, leaf, value)
    return cfg


def _fields(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)] if dataclasses.is_dataclass(obj) else []


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Rebuild a (nested) config dataclass from ``asdict`` output (e.g. JSON read from a file). Unknown
    keys raise, and so does a value of the wrong type, naming its dotted key (``prefix`` + the key):
    ``train.batch_size="2": expected an integer``. A JSON integer is taken where a float belongs, a list
    where a tuple does."""
    if not isinstance(data, dict):
        raise _wrong_type(prefix.rstrip(".") or cls.__name__, data, f"an object of {cls.__name__} keys")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown keys for {cls.__name__}: {sorted(unknown)}")
    kw = {k: from_dict(hints[k], v, f"{prefix}{k}.") if dataclasses.is_dataclass(hints[k])
          else checked_value(v, hints[k], f"{prefix}{k}") for k, v in data.items()}
    return cls(**kw)


def checked_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` (from JSON) if it has the annotated type (int, float, bool, str, Optional of those, a
    tuple / list of them); else a ValueError naming ``key``, the value and the type expected."""
    args, origin, optional = typing.get_args(hint), typing.get_origin(hint), False
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        if value is None and optional:
            return None
        hint = next(a for a in args if a is not type(None))
        args, origin = typing.get_args(hint), typing.get_origin(hint)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(key, value, f"a list ({_type_name(args[0])} each)")
        items = [checked_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:
        ok = True  # an annotation this check does not know: the section's validate() decides
    if not ok:
        raise _wrong_type(key, value, _type_name(hint) + (" or null" if optional else ""))
    return value


def _type_name(hint: Any) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _wrong_type(key: str, value: Any, expected: str) -> ValueError:
    kind = _json_type(value)
    shown = json.dumps(value)[:80] if isinstance(value, (str, int, float, bool, type(None))) else f"an {kind}"
    return ValueError(f"{key}={shown} (a JSON {kind}): expected {expected}")


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
