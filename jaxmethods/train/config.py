"""ConfigDict (CLI edge) -> frozen dataclasses (library), with errors that name the field.

Numeric fields are range-checked while they are converted, so `--config.epochs=-3` stops at
config load naming `config.epochs`. A field declares its range explicitly with `positive()`,
`non_negative()` or `unchecked()` (`dataclasses.field` metadata); fields without one follow the
name rule of `numeric_rule`: sizes, counts, steps, epochs, batch sizes, chunk sizes, frequencies
and learning rates must be > 0; warmups, ratios, fractions, weights, decays, dropouts, noise,
norms, tolerances and patience must be >= 0; the documented sentinels in `SENTINELS` (e.g.
`checkpoint_every=0` for "never", `max_train=-1` for "all", `lora_rank=0` for "no LoRA") are
allowed besides. Only values present in the mapping are checked, not dataclass defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that is unknown, of the wrong type or out of range; names the field."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words (of a field name split at "_") that make an int/float field a size, count, step count,
# frequency or rate: the value must be > 0.
POSITIVE_WORDS = _words(
    "epoch epochs step steps lr rate batch size every len length num n count chunk beams tokens "
    "dim layers heads accum rank budget replicas rounds per keep"
)
# Words that make a field a weight/ratio-like quantity where 0 means "off": the value must be
# >= 0. They win over POSITIVE_WORDS (`warmup_steps=0`, `drop_ramp_epochs=0` are fine).
NON_NEGATIVE_WORDS = _words("warmup ratio frac decay dropout drop noise weight norm tol patience")
# Words that exempt a field from the name rule (signed by nature: `length_penalty=-1`).
UNCHECKED_WORDS = _words("penalty sign seed offset cosine delta")
# Documented sentinel values allowed besides the rule's range, by field name or by
# `<section>_<field>` (so `lora.rank` matches `lora_rank`). A listed field without a rule word is
# positive apart from its sentinels.
SENTINELS: dict[str, tuple[float, ...]] = {
    "checkpoint_every": (0,),  # 0: no periodic checkpoints
    "eval_every": (0,),  # 0: no periodic evaluation
    "save_every": (0,),
    "export_every": (0,),  # 0: only the final export
    "grpo_micro_batch_size": (0,),  # 0: the whole batch (or batch / grad_accum)
    "max_train": (-1,),  # -1: every example
    "max_valid": (-1,),
    "max_test": (-1,),
    "max_steps": (-1,),  # -1: derived from epochs (HF TrainingArguments)
    "lora_rank": (0,),  # 0: no LoRA, train the full model
    "logits_chunk_size": (0,),  # 0: logits in one piece
    "logprob_chunk": (0,),
}


@dataclasses.dataclass(frozen=True)
class NumericRule:
    """`value > 0` (minimum 0, exclusive) or `value >= 0`, plus allowed sentinel values."""

    minimum: float
    exclusive: bool
    allow: tuple[float, ...] = ()

    def check(self, value: float, path: str, why: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}: must be a finite number, got {value!r}")
        if value in self.allow:
            return
        ok = value > self.minimum if self.exclusive else value >= self.minimum
        if not ok:
            op = ">" if self.exclusive else ">="
            extra = f" or one of {self.allow}" if self.allow else ""
            raise ConfigError(
                f"{path}: must be {op} {self.minimum:g}{extra}, got {value!r} ({why})"
            )


def _range_field(rule: NumericRule | None, default: Any, **kwargs: Any) -> Any:
    metadata = dict(kwargs.pop("metadata", None) or {}, range=rule)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def positive(default: Any = dataclasses.MISSING, *, allow: Iterable[float] = (), **kwargs) -> Any:
    """A dataclass field whose value (or every item of a tuple) must be > 0, or in `allow`."""
    return _range_field(NumericRule(0, True, tuple(allow)), default, **kwargs)


def non_negative(
    default: Any = dataclasses.MISSING, *, allow: Iterable[float] = (), **kwargs
) -> Any:
    """A dataclass field whose value (or every item of a tuple) must be >= 0, or in `allow`."""
    return _range_field(NumericRule(0, False, tuple(allow)), default, **kwargs)


def unchecked(default: Any = dataclasses.MISSING, **kwargs) -> Any:
    """A numeric dataclass field exempt from the name rule (e.g. a signed coefficient)."""
    return _range_field(None, default, **kwargs)


_WORD = re.compile(r"[a-z0-9]+")


def numeric_rule(name: str, section: str = "") -> tuple[NumericRule | None, str]:
    """The range a numeric field called `name` (inside `section`) gets from the name rule.

    Returns `(rule or None, why)`; `why` names the word of `name` that decided it.
    """
    words = set(_WORD.findall(name.lower()))
    allow = SENTINELS.get(name, SENTINELS.get(f"{section}_{name}", ()))
    if words & UNCHECKED_WORDS:
        return None, ""
    hit = sorted(words & NON_NEGATIVE_WORDS)
    if hit:
        return NumericRule(0, False, allow), f"{hit[0]!r} fields are non-negative"
    hit = sorted(words & POSITIVE_WORDS)
    if hit:
        return NumericRule(0, True, allow), f"{hit[0]!r} fields are positive"
    if allow:  # a sentinel-bearing count such as `max_train`
        return NumericRule(0, True, allow), f"positive, or {allow} as documented"
    return None, ""


def _field_rule(f: dataclasses.Field, section: str) -> tuple[NumericRule | None, str]:
    if "range" in f.metadata:
        rule = f.metadata["range"]
        return rule, "declared in the config dataclass"
    return numeric_rule(f.name, section)


def _check_range(value: Any, rule: NumericRule, path: str, why: str) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        rule.check(value, path, why)
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            _check_range(v, rule, f"{path}[{i}]", why)


def suggest(name: str, choices: Iterable[str]) -> str:
    """`"did you mean 'lr'?"` for the closest of `choices` to `name`, or `""`."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _as_dict(cfg: Any) -> dict:
    if hasattr(cfg, "to_dict"):
        return cfg.to_dict()
    if isinstance(cfg, dict):
        return dict(cfg)
    raise ConfigError(f"expected a mapping, got {type(cfg).__name__}")


def to_dataclass(cls: type[T], cfg: Any, where: str = "config") -> T:
    """Builds `cls` from a mapping; nested dataclass fields recurse.

    Unknown keys (with the closest known name first), missing required fields, values of the
    wrong basic type and numbers out of their field's range (see the module docstring) raise
    `ConfigError` naming the dotted path, e.g. `config.optim.lr`.
    """
    data = _as_dict(cfg)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        hint = suggest(unknown[0], fields)
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field{'; ' + hint if hint else ''} "
            f"(known fields of {where}: {sorted(fields)})"
        )
    section = where.rsplit(".", 1)[-1]
    kwargs = {}
    for name, f in fields.items():
        path = f"{where}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: missing required field")
            continue
        value = _convert(hints[name], data[name], path)
        rule, why = _field_rule(f, section)
        if rule is not None:
            _check_range(value, rule, path, why)
        kwargs[name] = value
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
        if math.isnan(value):
            raise ConfigError(f"{path}: expected a number, got nan")
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
        hint = suggest(value, choices)
        raise ConfigError(f"{path}: {value!r} is not one of {choices}{'; ' + hint if hint else ''}")
    return value
