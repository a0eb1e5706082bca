"""What every `configs/<method>.py` shares: defaults from the method's config dataclass (one
source of truth) and the `variant,key=value,...` argument.

    def get_config(arg=None):
        variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
        c = config_from(MethodConfig)
        VARIANT_SETTINGS[variant](c)
        return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)

Shortcuts map a short key either to a dotted field (`"lr": "optim.lr"`) or to a preset
function `(config, value) -> None` that may set several fields (`loss=npo` resets the loss's
defaults). Presets apply first, in order, then every field assignment, in order, so a later key
never discards an earlier one: `loss=npo,beta_dv=2` and `beta_dv=2,loss=npo` agree.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections

Preset = Callable[[ml_collections.ConfigDict, str], None]


class OverrideError(ValueError):
    pass


def config_from(cls: type, **updates: Any) -> ml_collections.ConfigDict:
    """`ConfigDict` of the dataclass defaults of `cls` (nested dataclasses become sections)."""
    c = ml_collections.ConfigDict(dataclasses.asdict(cls()))
    for key, value in updates.items():
        set_path(c, key, value)
    return c


def parse_arg(
    arg: str | None, variants: Sequence[str], *, default: str, where: str
) -> tuple[str, list[tuple[str, str]]]:
    """`"variant,key=value,..."` -> `(variant, [(key, value), ...])`."""
    parts = [p for p in (arg or default).split(",") if p]
    variant, pairs = (parts[0] if parts else default), []
    name = os.path.basename(where)
    if variant not in variants:
        raise OverrideError(
            f"configs/{name}: unknown variant {variant!r}{_suggest(variant, variants)}; "
            f"choose from {tuple(variants)}"
        )
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise OverrideError(
                f"configs/{name}: expected key=value after the variant, got {part!r}"
            )
        pairs.append((key.strip(), value.strip()))
    return variant, pairs


def apply_overrides(
    c: ml_collections.ConfigDict,
    pairs: Sequence[tuple[str, str]],
    *,
    shortcuts: Mapping[str, str | Preset] | None = None,
    where: str = "config",
) -> ml_collections.ConfigDict:
    """Applies `key=value` pairs: presets first (in order), then field assignments (in order).

    A key is a shortcut name or a dotted field path (`optim.lr`). Values are parsed by the
    type of the field's current value; tuples are written with "+" (`variants=plain+dv`).
    """
    shortcuts = dict(shortcuts or {})
    name = os.path.basename(where)
    presets, fields = [], []
    for key, value in pairs:
        target = shortcuts.get(key, key)
        if callable(target):
            presets.append((key, target, value))
        elif has_path(c, target):
            fields.append((key, target, value))
        else:
            known = sorted(shortcuts) + sorted(leaf_paths(c))
            raise OverrideError(
                f"configs/{name}: unknown key {key!r}{_suggest(key, known)}; known keys: "
                f"{', '.join(sorted(shortcuts))} or any field path ({', '.join(sorted(leaf_paths(c))[:12])}, ...)"
            )
    for key, preset, value in presets:
        try:
            preset(c, value)
        except (KeyError, ValueError) as e:
            raise OverrideError(f"configs/{name}: {key}={value}: {e}") from e
    for key, path, value in fields:
        set_path(c, path, parse_value(get_path(c, path), value, f"configs/{name}: {key}"))
    return c


def parse_value(current: Any, text: str, where: str) -> Any:
    """`text` parsed as the type of `current` (bool, int, float, str, tuple with "+")."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return text.lower() in ("true", "1")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, (tuple, list)):
            kind = type(current[0]) if current else str
            return tuple(parse_value(kind(), t, where) for t in text.split("+") if t)
    except ValueError as e:
        raise OverrideError(f"{where}={text!r}: {e}") from e
    return text


def has_path(c: Any, path: str) -> bool:
    node = c
    for part in path.split("."):
        if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
            return False
        node = node[part]
    return True


def get_path(c: Any, path: str) -> Any:
    node = c
    for part in path.split("."):
        node = node[part]
    return node


def set_path(c: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = c
    for part in parents:
        node = node[part]
    if last not in node:
        raise OverrideError(f"{path}: unknown field")
    node[last] = value


def leaf_paths(c: Any, prefix: str = "") -> list[str]:
    out = []
    for k, v in c.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, (ml_collections.ConfigDict, dict)) and v:
            out += leaf_paths(v, path)
        else:
            out.append(path)
    return out


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
