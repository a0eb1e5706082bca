"""XLA:CPU flags that trade the speed of the emitted code for compile time (no jax import here:
XLA reads XLA_FLAGS once, when jax starts, so callers set them before importing it).

`FAST_COMPILE_CPU_FLAGS`: no LLVM optimisation, the loop emitters instead of the fusion
emitters, no expensive LLVM passes. A tiny decoder's train step compiles in about 1.2 s instead
of 10 s on the 2-core CPU machine, and runs slower. For runs that check values, not speed: the
test suite (`tests/conftest.py`) and the benchmarks' smoke tier (`benchmarks/suite.py`).
"""

FAST_COMPILE_CPU_FLAGS: tuple[str, ...] = (
    "--xla_backend_optimization_level=0",
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_llvm_disable_expensive_passes=true",
)
