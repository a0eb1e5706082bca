"""Test-wide setup: 4 fake CPU devices and no network, fixed before JAX initialises, and a
persistent XLA compilation cache shared by the test processes.

Many tests compile the same programs (every `run(...)` of a method jits fresh closures of the
same step); with the on-disk cache XLA compiles each distinct program once per machine. The
cache is keyed by the program, compile options and JAX version, so a hit is the same
executable. `JAXMETHODS_TEST_JIT_CACHE=""` disables it; a path moves it. XLA:CPU compiles
without optimisation (see `_FAST_COMPILE`).
"""

import getpass
import os
import tempfile

from jaxmethods.xla_flags import FAST_COMPILE_CPU_FLAGS  # imports no jax

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Fast-compiling XLA:CPU: tests check values, not speed, and most of the suite's time is XLA
# compiles of tiny programs, which these flags cut several-fold.
# `JAXMETHODS_TEST_XLA_OPT=1` keeps XLA's default optimisation.
_FAST_COMPILE = () if os.environ.get("JAXMETHODS_TEST_XLA_OPT") else FAST_COMPILE_CPU_FLAGS
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=4", *_FAST_COMPILE]
).strip()
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

_cache_dir = os.environ.get(
    "JAXMETHODS_TEST_JIT_CACHE",
    os.path.join(tempfile.gettempdir(), f"jaxmethods-test-jit-cache-{getpass.getuser()}"),
)
if _cache_dir:
    jax.config.update("jax_compilation_cache_dir", _cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", 4 * 1024**3)  # LRU eviction past 4 GiB

# Reference helpers shared across test folders (tests/cf_reference.py) import by module name.
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
