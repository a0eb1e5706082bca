"""Range checks at config load: the name rule, explicit field ranges, sentinels, suggestions, and
every shipped `configs/*.py` variant passing its method's own conversion."""

import dataclasses
import glob
import importlib
import importlib.util
import math
import os
import re

import pytest

from jaxmethods.train.config import (
    ConfigError,
    check_choice,
    non_negative,
    numeric_rule,
    positive,
    to_dataclass,
    unchecked,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    micro_batch_size: int = 8
    grad_accum: int = 1
    length_penalty: float = 1.0
    beta: float = 0.1


@dataclasses.dataclass(frozen=True)
class Lora:
    rank: int = 0
    alpha: float = 16.0


@dataclasses.dataclass(frozen=True)
class Run:
    epochs: int = 3
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    max_train: int = -1
    pairs_per_user: tuple[int, ...] = (4, 8)
    label_noise: float = 0.1
    temperature: float = 1.0
    optim: Optim = dataclasses.field(default_factory=Optim)
    lora: Lora = dataclasses.field(default_factory=Lora)
    gamma: float = non_negative(0.5)
    groups: int = positive(1)
    shift: float = unchecked(-1.0)
    top_k: int = positive(5, allow=(-1,))


@pytest.mark.parametrize(
    "override, path",
    [
        ({"epochs": -3}, "config.epochs"),
        ({"epochs": 0}, "config.epochs"),
        ({"log_every": 0}, "config.log_every"),
        ({"optim": {"lr": 0.0}}, "config.optim.lr"),
        ({"optim": {"lr": -1e-3}}, "config.optim.lr"),
        ({"optim": {"micro_batch_size": 0}}, "config.optim.micro_batch_size"),
        ({"optim": {"grad_accum": -1}}, "config.optim.grad_accum"),
        ({"optim": {"warmup_steps": -1}}, "config.optim.warmup_steps"),
        ({"optim": {"weight_decay": -0.1}}, "config.optim.weight_decay"),
        ({"label_noise": -0.1}, "config.label_noise"),
        ({"pairs_per_user": (4, 0)}, r"config.pairs_per_user\[1\]"),
        ({"checkpoint_every": -1}, "config.checkpoint_every"),
        ({"max_train": -2}, "config.max_train"),
        ({"lora": {"rank": -1}}, "config.lora.rank"),
        ({"gamma": -0.5}, "config.gamma"),
        ({"groups": 0}, "config.groups"),
        ({"top_k": -2}, "config.top_k"),
        ({"optim": {"lr": math.inf}}, "config.optim.lr"),
        ({"temperature": math.nan}, "config.temperature"),
    ],
)
def test_out_of_range_values_name_the_field(override, path):
    with pytest.raises(ConfigError, match=rf"^{path}: "):
        to_dataclass(Run, override)


def test_zero_and_sentinel_values_that_mean_off_are_accepted():
    cfg = to_dataclass(
        Run,
        {
            "checkpoint_every": 0,  # no periodic checkpoints
            "max_train": -1,  # every example
            "lora": {"rank": 0},  # no LoRA (matched as `lora_rank`)
            "optim": {
                "warmup_steps": 0,
                "warmup_ratio": 0.0,
                "weight_decay": 0.0,
                "length_penalty": -2.0,  # signed by nature
                "beta": -1.0,  # no rule word
            },
            "label_noise": 0.0,
            "gamma": 0.0,
            "top_k": -1,
            "seed": -7,  # seeds are not ranged
            "shift": -3.0,  # declared unchecked
        },
    )
    assert cfg.checkpoint_every == 0 and cfg.max_train == -1 and cfg.lora.rank == 0
    assert cfg.optim.length_penalty == -2.0 and cfg.seed == -7 and cfg.top_k == -1


def test_name_rule_words():
    # Positive: sizes, steps, epochs, rates, frequencies.
    for name in ("epochs", "lr", "hidden_size", "num_heads", "max_new_tokens", "every_epochs"):
        rule, why = numeric_rule(name)
        assert rule is not None and rule.exclusive, name
        assert why
    # Non-negative wins over positive words (0 = off).
    for name in ("warmup_steps", "drop_ramp_epochs", "weight_decay", "val_ratio", "patience"):
        rule, _ = numeric_rule(name)
        assert rule is not None and not rule.exclusive, name
    # Not ranged: signed or free coefficients.
    for name in ("seed", "length_penalty", "dv_sign", "beta", "direction_cosine", "b1"):
        assert numeric_rule(name)[0] is None, name
    # Sentinels by field name or by section_field.
    assert numeric_rule("rank", "lora")[0].allow == (0,)
    assert numeric_rule("rank", "data")[0].allow == ()


def test_unknown_field_and_choice_suggest_the_closest_name_first():
    with pytest.raises(
        ConfigError, match=r"^config\.optim\.lrr: unknown field; did you mean 'lr'\?"
    ):
        to_dataclass(Run, {"optim": {"lrr": 1.0}})
    with pytest.raises(ConfigError, match=r"'adamw' is not one of .*did you mean 'adam'\?"):
        check_choice("adamw", ("adam", "sgd"), "config.optim.name")


def _variants():
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
        spec = importlib.util.spec_from_file_location(f"cfg_{os.path.basename(path)}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for variant in getattr(module, "VARIANTS", ()):
            yield os.path.basename(path), module, variant


def _convert(module, variant):
    config = module.get_config(variant)
    # variants whose data files are a CLI argument (`data.train_file`, `user_weights.path`, ...)
    for section in ("data", "user_weights"):
        fields = config.get(section) or {}
        for key in list(fields.keys()):
            if key == "decoded_dir":  # optional input of DRC's real-data run, never required
                continue
            if (key in ("path", "root") or key.endswith(("_file", "_dir"))) and fields[key] == "":
                fields[key] = "/not/read/at/config/load"
    method = importlib.import_module(f"jaxmethods.methods.{config.method}.config")
    return config, method.from_config_dict


def test_every_shipped_config_variant_passes_validation():
    seen = 0
    for name, module, variant in _variants():
        config, convert = _convert(module, variant)
        try:
            convert(config)
        except ValueError as e:
            pytest.fail(f"configs/{name}:{variant} rejected: {e}")
        seen += 1
    assert seen >= 4


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else k)
    else:
        yield prefix, tree


NO_TRAINING = ("fintmm",)  # retrieval + generation only: nothing has epochs


def test_negative_epochs_rejected_in_every_shipped_config():
    firsts = {}
    for name, module, variant in _variants():
        firsts.setdefault(name, (module, variant))
    for module, variant in firsts.values():
        config, convert = _convert(module, variant)
        keys = [
            k for k, _ in _flat(config.to_dict()) if k.split(".")[-1] in ("epochs", "max_epochs")
        ]
        if config.method in NO_TRAINING:
            assert not keys
            continue
        if not keys:  # step-counted methods (drc): every `*steps` field is positive too
            keys = [k for k, v in _flat(config.to_dict()) if k.endswith("steps") and v]
        key = min(keys, key=len)
        section = config
        *parents, leaf = key.split(".")
        for p in parents:
            section = section[p]
        section[leaf] = -3
        with pytest.raises(ConfigError, match=rf"^config\.{re.escape(key)}: must be > 0, got -3"):
            convert(config)
