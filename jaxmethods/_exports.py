"""Lazy public exports of a package (PEP 562): `from jaxmethods.data import load_tofu` imports
only `jaxmethods.data.tofu`, so `import jaxmethods.data` stays cheap (no transformers, grain,
scipy or nltk until a name that needs them is used)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """`({public name: submodule})` -> the package's `__getattr__`, `__dir__` and `__all__`.

    A name is imported from `package.submodule` on first access and cached in the package.
    """

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__, sorted(exports)
