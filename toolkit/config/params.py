"""Component parameters declared by annotations, validated against config values.

A plugin's factory declares its config keys as keyword parameters::

    def __init__(self, units: PositiveInt = 256, dropout: Fraction = 0.0,
                 mode: Literal["a", "b"] = "a", words: list[str] = ()): ...

:func:`validate` checks a config table against such a signature: unknown keys,
missing required keys and values of the wrong type or range are
:class:`~toolkit.errors.ConfigError` naming the key path and the value received.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal

from toolkit.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Check:
    """A range check attached to a type with ``Annotated``."""

    holds: Callable[[Any], bool]
    description: str


PositiveInt = Annotated[int, Check(lambda v: v > 0, "a positive integer")]
NonNegativeInt = Annotated[int, Check(lambda v: v >= 0, "a non-negative integer")]
PositiveFloat = Annotated[float, Check(lambda v: v > 0, "a positive number")]
NonNegativeFloat = Annotated[float, Check(lambda v: v >= 0, "a non-negative number")]
Fraction = Annotated[float, Check(lambda v: 0 <= v < 1, "a number in [0, 1)")]
Probability = Annotated[float, Check(lambda v: 0 < v <= 1, "a number in (0, 1]")]


@dataclass(frozen=True)
class Table:
    """A nested table of keys, declared by a settings function::

        SplitTable = Annotated[dict, Table(split_settings)]
        def __init__(self, split: SplitTable = None): ...

    Its keys are validated like a component's, with key paths such as
    ``sequences.split.by``; the factory receives the table with defaults filled in.
    """

    settings: Callable


def show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings in double quotes)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


def nested_table(annotation: Any) -> Table | None:
    """The :class:`Table` an annotation declares, if any."""
    if typing.get_origin(annotation) is Annotated:
        return next((e for e in typing.get_args(annotation)[1:] if isinstance(e, Table)), None)
    return None


def describe(annotation: Any) -> str:
    table = nested_table(annotation)
    if table is not None:
        return "a table with keys " + ", ".join(parameters(table.settings))
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        checks = [e for e in extras if isinstance(e, Check)]
        return checks[0].description if checks else describe(base)
    if origin is Literal:
        return "one of " + ", ".join(show(c) for c in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return f"a list of {describe(item).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        annotation, str(annotation))


def coerce(annotation: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits ``annotation``, and the value converted (int -> float)."""
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True, value
    if origin is Annotated:
        base, *extras = typing.get_args(annotation)
        ok, value = coerce(base, value)
        return ok and all(e.holds(value) for e in extras if isinstance(e, Check)), value
    if origin is Literal:
        return value in typing.get_args(annotation), value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            if option is type(None):
                continue
            ok, converted = coerce(option, value)
            if ok:
                return True, converted
        return False, value
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        if not isinstance(value, list):
            return False, value
        converted = []
        for element in value:
            ok, element = coerce(item, element)
            if not ok:
                return False, value
            converted.append(element)
        return True, converted
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if annotation is str:
        return isinstance(value, str), value
    return isinstance(value, annotation), value


def parameters(factory: Callable) -> dict[str, inspect.Parameter]:
    """The config keys a factory accepts: its keyword parameters, with resolved annotations."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:
        hints = {}
    result = {}
    for name, param in inspect.signature(factory).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        result[name] = param.replace(annotation=hints.get(name, param.annotation))
    return result


def validate(factory: Callable, table: dict[str, Any], path: str,
             config_file: str | None = None) -> dict[str, Any]:
    """Check ``table`` against ``factory``'s parameters; return it with defaults filled in."""
    params = parameters(factory)
    for key in table:
        if key not in params:
            known = ", ".join(params) or "(no keys)"
            raise ConfigError(f"{path}.{key}" if path else key,
                              f"unknown key.{did_you_mean(key, params)} Known keys here: "
                              f"{known}", config_file)
    result = {}
    for name, param in params.items():
        key_path = f"{path}.{name}" if path else name
        nested = nested_table(param.annotation)
        if nested is not None:
            value = table.get(name, {})
            if not isinstance(value, dict):
                raise ConfigError(key_path, f"expected {describe(param.annotation)}, "
                                            f"received {show(value)}", config_file)
            result[name] = validate(nested.settings, value, key_path, config_file)
            continue
        if name not in table:
            if param.default is inspect.Parameter.empty:
                raise ConfigError(key_path, f"missing; expected {describe(param.annotation)}",
                                  config_file)
            if param.default is not None:
                result[name] = list(param.default) if isinstance(param.default, tuple) \
                    else param.default
            continue
        ok, value = coerce(param.annotation, table[name])
        if not ok:
            raise ConfigError(key_path, f"expected {describe(param.annotation)}, "
                                        f"received {show(table[name])}", config_file)
        result[name] = value
    return result
