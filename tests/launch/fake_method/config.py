"""The test method's typed config, converted like every method's (`to_dataclass`)."""

from dataclasses import dataclass, field

from jaxmethods.train.config import check_choice, to_dataclass

BEHAVIORS = ("ok", "nan", "save_fail", "empty", "preempt", "bug", "wait")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 0.01


@dataclass(frozen=True)
class FakeConfig:
    method: str = "fake"
    name: str = "fake"
    behavior: str = "ok"
    seed: int = 0
    epochs: int = 2
    optim: OptimConfig = field(default_factory=OptimConfig)


def from_config_dict(config) -> FakeConfig:
    cfg = to_dataclass(FakeConfig, config)
    check_choice(cfg.behavior, BEHAVIORS, "config.behavior")
    return cfg
