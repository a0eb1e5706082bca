"""ConfigDict (CLI edge) -> frozen dataclasses (library), with errors that name the field."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def _as_dict(cfg: Any) -> dict:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    if isinstance(cfg, dict):
        return dict(cfg)
    raise ConfigError(f"expected a mapping, got {type(cfg).__name__}")


def to_dataclass(cls: type[T], cfg: Any, where: str = "config") -> T:
    """Builds `cls` from a mapping; nested dataclass fields recurse.

    Unknown keys, missing required fields and values of the wrong basic type raise `ConfigError`
    naming the dotted path, e.g. `config.optim.lr`.
    """
    data = _as_dict(cfg)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (known fields of {where}: {sorted(fields)})"
        )
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: missing required field")
            continue
        kwargs[name] = _convert(hints[name], data[name], path)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return to_dataclass(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a sequence, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return origin(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def check_choice(value: str, choices: typing.Iterable[str], path: str) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {choices}")
    return value
