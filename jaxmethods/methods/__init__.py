"""Method registry: `config.method` -> "module:function" with `run(config, workdir) -> dict`.

Entries are imported lazily, so running one method never imports another's dependencies.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

METHODS: dict[str, str] = {
    "mrm": "jaxmethods.methods.mrm.run:run",
    "igd": "jaxmethods.methods.igd.run:run",
    "cf_scaling": "jaxmethods.methods.cf_scaling.run:run",
    "baldro": "jaxmethods.methods.baldro.run:run",
    "sft": "jaxmethods.methods.sft.run:run",
    "selfselect": "jaxmethods.methods.selfselect.run:run",
    "perm": "jaxmethods.methods.perm.run:run",
    "reason4rec": "jaxmethods.methods.reason4rec.run:run",
    "dep": "jaxmethods.methods.dep.run:run",
    "fintmm": "jaxmethods.methods.fintmm.run:run",
    "drc": "jaxmethods.methods.drc.run:run",
}


def get_method(name: str) -> Callable:
    """The `run(config, workdir)` function of a registered method."""
    if name not in METHODS:
        raise KeyError(
            f"config.method = {name!r} is not a registered method; known: {sorted(METHODS)}"
        )
    module, _, fn = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), fn)
