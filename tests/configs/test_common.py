"""configs/common.py: defaults from the dataclass, `variant,key=value` overrides in a stable order."""

from dataclasses import dataclass, field

import pytest

from configs.common import OverrideError, apply_overrides, config_from, parse_arg


@dataclass(frozen=True)
class Loss:
    name: str = "npo"
    beta: float = 0.1
    beta_dv: float = 1.0


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-5
    grad_accum: int = 2


@dataclass(frozen=True)
class Method:
    seed: int = 0
    variants: tuple[str, ...] = ("plain",)
    verbose: bool = False
    loss: Loss = field(default_factory=Loss)
    optim: Optim = field(default_factory=Optim)


def set_loss(c, value):
    """A preset: resets the loss section to that loss's defaults."""
    c.loss = config_from(Loss, name=value, beta={"npo": 0.1, "simnpo": 4.5}[value]).to_dict()


SHORTCUTS = {"loss": set_loss, "lr": "optim.lr", "ga": "optim.grad_accum"}


def build(arg):
    variant, pairs = parse_arg(arg, ("tiny", "demo"), default="demo", where="configs/m.py")
    c = config_from(Method)
    if variant == "tiny":
        c.optim.lr = 1e-3
    return apply_overrides(c, pairs, shortcuts=SHORTCUTS, where="configs/m.py")


def test_defaults_come_from_the_dataclass():
    c = build(None)
    assert c.optim.lr == 1e-5 and c.loss.beta_dv == 1.0 and c.variants == ("plain",)
    assert build("tiny").optim.lr == 1e-3


@pytest.mark.parametrize(
    "arg", ["demo,loss=simnpo,loss.beta_dv=2", "demo,loss.beta_dv=2,loss=simnpo"]
)
def test_a_later_key_never_discards_an_earlier_one(arg):
    c = build(arg)
    assert c.loss.name == "simnpo" and c.loss.beta == 4.5 and c.loss.beta_dv == 2.0


def test_values_are_parsed_by_the_field_type():
    c = build("tiny,lr=3e-4,ga=4,seed=3,verbose=true,variants=plain+dv")
    assert c.optim.lr == 3e-4 and c.optim.grad_accum == 4 and c.seed == 3
    assert c.verbose is True and c.variants == ("plain", "dv")
    with pytest.raises(OverrideError, match=r"ga='x'"):
        build("demo,ga=x")


def test_unknown_keys_and_variants_name_themselves_and_the_known_ones():
    with pytest.raises(
        OverrideError, match=r"unknown key 'lrr' \(did you mean 'lr'\?\); known keys"
    ):
        build("demo,lrr=1")
    with pytest.raises(OverrideError, match=r"unknown variant 'dmeo' \(did you mean 'demo'\?\)"):
        build("dmeo")
    with pytest.raises(OverrideError, match="expected key=value"):
        build("demo,lr")
