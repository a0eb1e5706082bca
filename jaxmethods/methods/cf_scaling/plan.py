"""Which replicas train together, and how their parameters are laid out on the mesh.

A replica is one (embedding size, seed) run of a model. Replicas of a group are stacked on a
leading axis and trained by one vmapped program; sizes that differ are zero-padded to the
group's widest (exact, see `jaxmethods.models.cf.init`). Small sizes are latency-bound on an
accelerator, so packing them costs about as much as running the widest alone; large sizes run
one size per group (seeds still stacked).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P


@dataclasses.dataclass(frozen=True)
class Replica:
    dim: int
    seed: int


@dataclasses.dataclass(frozen=True)
class Group:
    model: str
    replicas: tuple[Replica, ...]

    @property
    def padded_dim(self) -> int:
        return max(r.dim for r in self.replicas)

    @property
    def name(self) -> str:
        dims = sorted({r.dim for r in self.replicas})
        seeds = sorted({r.seed for r in self.replicas})
        d = f"d{dims[0]}" if len(dims) == 1 else f"d{dims[0]}-{dims[-1]}"
        s = f"s{seeds[0]}" if len(seeds) == 1 else f"s{seeds[0]}-{seeds[-1]}"
        return f"{self.model}_{d}_{s}"


def plan_groups(
    model: str,
    dims: Sequence[int],
    seeds: Sequence[int],
    *,
    pack_max_dim: int,
    max_group_replicas: int,
) -> list[Group]:
    """Dims <= pack_max_dim (times seeds) packed in groups of at most `max_group_replicas`
    replicas; every larger dim is its own group of all seeds. Groups are in increasing size."""
    if not dims or not seeds:
        raise ValueError(f"{model}: the sweep needs at least one dim and one seed")
    dims = sorted(set(dims))
    small = [Replica(d, s) for d in dims if d <= pack_max_dim for s in seeds]
    groups = [
        Group(model, tuple(small[i : i + max_group_replicas]))
        for i in range(0, len(small), max(1, max_group_replicas))
    ]
    groups += [Group(model, tuple(Replica(d, s) for s in seeds)) for d in dims if d > pack_max_dim]
    return groups


def group_rules(
    group: Group, mesh: Mesh, *, shard_min_dim: int, shard_axis: str
) -> list[tuple[str, P]]:
    """Sharding rules for the stacked [R, ...] parameters of a group (regex over param paths).

    - R divisible by the `fsdp` axis (and > 1): replicas are split over devices, each device
      trains its own replicas with no communication.
    - padded size >= shard_min_dim: the `*_emb` tables are split over `fsdp` along the
      embedding dimension ("dim": gathers and graph propagation stay device-local, only [B]
      dot-product partials are summed) or the rows ("rows"); other large arrays fall back to
      the shared automatic FSDP rule.
    - otherwise everything is replicated.
    """
    n = mesh.shape.get("fsdp", 1)
    r = len(group.replicas)
    if n > 1 and r > 1 and r % n == 0:
        return [(".*", P("fsdp"))]
    if n > 1 and group.padded_dim >= shard_min_dim:
        spec = P(None, None, "fsdp") if shard_axis == "dim" else P(None, "fsdp", None)
        return [(r"_emb$", spec)]
    return [(".*", P())]
