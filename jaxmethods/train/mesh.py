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

log = logging.getLogger(__name__)

DEFAULT_MESH = {"data": -1, "fsdp": 1, "tensor": 1}
BATCH_AXES = ("data", "fsdp")


def maybe_initialize_distributed() -> bool:
    """Calls `jax.distributed.initialize()` when the environment describes several processes.

    Recognises an explicit coordinator (`JAX_COORDINATOR_ADDRESS`), SLURM job steps with several
    tasks and multi-worker TPU VMs. Returns whether initialisation happened.
    """
    env = os.environ
    multi = (
        bool(env.get("JAX_COORDINATOR_ADDRESS"))
        or int(env.get("SLURM_NTASKS", "1")) > 1
        or "," in env.get("TPU_WORKER_HOSTNAMES", "")
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    )
    if multi and not jax.distributed.is_initialized():
        jax.distributed.initialize()
        log.info(
            "jax.distributed initialised: process %d of %d",
            jax.process_index(),
            jax.process_count(),
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
