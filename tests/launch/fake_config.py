"""Config of the launcher-test method (`tests/launch/fake_method.py`)."""

import ml_collections

VARIANTS = ("ok", "nan", "save_fail", "empty", "preempt", "bug", "wait")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.method = "fake"
    c.name = "fake"
    c.behavior = arg or "ok"
    c.seed = 0
    c.epochs = 2
    c.optim = ml_collections.ConfigDict({"lr": 0.01})
    return c
