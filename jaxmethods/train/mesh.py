"""Device mesh construction and the standard data/replicated shardings.

One device is just a mesh of size 1; the same code runs on a TPU pod slice or a GPU node.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxmethods.train.config import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MESH = {"data": -1, "fsdp": 1, "tensor": 1}
BATCH_AXES = ("data", "fsdp")


def distributed_args(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str | int]:
    """The explicit `jax.distributed.initialize` arguments: flags win over the environment.

    Reads `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (JAX itself reads
    none of the last two). Returns only the arguments that are set, so SLURM, Open MPI and TPU
    auto-detection fill in the rest. A non-integer, a count below 1 or an id outside
    `[0, num_processes)` raises `ValueError` naming the flag or variable.
    """
    env = os.environ if env is None else env

    def pick(value, var: str, flag: str, cast):
        if value is not None:
            return value, f"--{flag}"
        raw = env.get(var, "").strip()
        if not raw:
            return None, var
        try:
            return cast(raw), var
        except ValueError:
            raise ValueError(f"{var}={raw!r}: expected an integer") from None

    args: dict[str, str | int] = {}
    address, _ = pick(coordinator or None, "JAX_COORDINATOR_ADDRESS", "coordinator", str)
    count, count_src = pick(num_processes, "JAX_NUM_PROCESSES", "num_processes", int)
    pid, pid_src = pick(process_id, "JAX_PROCESS_ID", "process_id", int)
    if count is not None and count < 1:
        raise ValueError(f"{count_src}={count}: the number of processes must be >= 1")
    if pid is not None:
        if count is not None and not 0 <= pid < count:
            raise ValueError(f"{pid_src}={pid}: must be in [0, {count}) ({count_src}={count})")
        if pid < 0:
            raise ValueError(f"{pid_src}={pid}: must be >= 0")
    if address:
        args["coordinator_address"] = address
    if count is not None:
        args["num_processes"] = count
    if pid is not None:
        args["process_id"] = pid
    return args


def maybe_initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Calls `jax.distributed.initialize(...)` when the flags or environment describe several
    processes.

    Explicit arguments (launcher flags `--coordinator/--num_processes/--process_id`, else
    `JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/JAX_PROCESS_ID`) are passed through; without
    them, SLURM job steps with several tasks, Open MPI and multi-worker TPU VMs are
    auto-detected by JAX; outside those, all three must be given (`ValueError` otherwise, instead
    of JAX's "Number of processes must be defined"). A single process (`num_processes=1`)
    initialises nothing. Returns whether initialisation happened.
    """
    env = os.environ
    args = distributed_args(coordinator, num_processes, process_id)
    if args.get("num_processes") == 1:
        return False
    scheduler = (
        int(env.get("SLURM_NTASKS", "1")) > 1
        or "," in env.get("TPU_WORKER_HOSTNAMES", "")
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    )
    if args and not scheduler and len(args) < 3:
        raise ValueError(
            f"several processes need all of the coordinator address, the number of processes and "
            f"this process's id, got {args}: set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
            "JAX_PROCESS_ID (or --coordinator/--num_processes/--process_id), or launch under "
            "SLURM, Open MPI or on a TPU slice, which JAX detects"
        )
    if (args or scheduler) and not jax.distributed.is_initialized():
        jax.distributed.initialize(**args)
        log.info(
            "jax.distributed initialised: process %d of %d (%d local / %d global devices)",
            jax.process_index(),
            jax.process_count(),
            jax.local_device_count(),
            jax.device_count(),
        )
        return True
    return False


def make_mesh(
    dims: Mapping[str, int] | None = None,
    *,
    devices: Sequence[jax.Device] | None = None,
    axis_type: AxisType = AxisType.Auto,
) -> Mesh:
    """Builds a named mesh, e.g. `{"data": -1, "fsdp": 1, "tensor": 1}`; -1 takes the rest.

    `axis_types` are always passed explicitly (Auto by default: the compiler propagates shardings
    from `in_shardings` and sharding constraints).
    """
    dims = dict(DEFAULT_MESH if dims is None else dims)
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    unknown = [k for k, v in dims.items() if v == -1]
    if len(unknown) > 1:
        raise ValueError(f"mesh {dims}: at most one axis may be -1, got {unknown}")
    fixed = int(np.prod([v for v in dims.values() if v != -1]))
    if any(v == 0 or v < -1 for v in dims.values()):
        raise ValueError(f"mesh {dims}: axis sizes must be positive or -1")
    if unknown:
        if n % fixed:
            raise ValueError(
                f"mesh {dims}: {n} devices are not divisible by the fixed axes ({fixed})"
            )
        dims[unknown[0]] = n // fixed
    total = int(np.prod(list(dims.values())))
    if total > n:
        raise ValueError(f"mesh {dims} needs {total} devices but {n} are available")
    if total < n:
        log.info("mesh %s uses %d of the %d devices", dims, total, n)
        devices = devices[:total]
    names = tuple(dims)
    return jax.make_mesh(
        tuple(dims.values()), names, axis_types=(axis_type,) * len(names), devices=devices
    )


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The mesh axes the batch dimension is split over (data and fsdp, where present)."""
    return tuple(a for a in BATCH_AXES if a in mesh.axis_names)


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over `data` x `fsdp`; other dimensions replicated."""
    return NamedSharding(mesh, P(batch_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_size_multiple(mesh: Mesh) -> int:
    """Global batch sizes must be multiples of this to split evenly over the batch axes."""
    return int(np.prod([mesh.shape[a] for a in batch_axes(mesh)]))


def check_batch_sizes(mesh: Mesh, **sizes: int) -> None:
    """Raises ConfigError (a ValueError) naming the first config field whose global batch size does not split
    evenly over the mesh's batch axes, e.g. `check_batch_sizes(mesh, **{"config.batch_size": 8})`."""
    multiple = batch_size_multiple(mesh)
    for name, size in sizes.items():
        if size % multiple:
            raise ConfigError(
                f"{name}={size} must be a multiple of the {multiple} devices the batch is split "
                f"over (mesh {dict(mesh.shape)})"
            )
