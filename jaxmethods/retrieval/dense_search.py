"""The exact top-k search program of `DenseIndex`: per-shard matmul + mask + `lax.top_k`, merged.

The corpus [N_pad, D] is split over `corpus_axes` of the mesh (S shards of n_local rows); a
query batch [B, D] is replicated. Inside `jax.shard_map` each shard computes its score block
[B, n_local] (fp32 accumulation), sets every row that fails a filter or is padding to -inf,
and keeps its own top-k; the S x k candidates per query are then merged by a second `top_k`.
Slots that no passing row fills come back as score -inf and index -1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

MASK_KINDS = (None, "docs", "query")


@functools.lru_cache(maxsize=64)
def make_search_fn(
    mesh: Mesh,
    corpus_axes: tuple[str, ...],
    *,
    num_docs: int,
    k: int,
    normalize_queries: bool,
    mask_kind: str | None = None,
    range_names: tuple[str, ...] = (),
):
    """A jitted `search(queries, emb, attrs, mask, lows, highs) -> (scores, indices)`.

    Args of the returned function:
      queries: [B, D] float32, replicated.
      emb: [N_pad, D] index dtype, rows split over `corpus_axes` (N_pad = S * n_local).
      attrs: {name: [N_pad]} the `range_names` attribute columns, split like `emb`.
      mask: None, [N_pad] bool (`mask_kind="docs"`) or [B, N_pad] bool (`"query"`).
      lows, highs: {name: [B]} inclusive bounds per query, in the column's dtype.
    Returns scores [B, k] float32 and indices [B, k] int32 (global rows; -1 for an empty slot),
    replicated, best first. Cached: indexes of one shape and mesh share the compiled program.
    """
    if mask_kind not in MASK_KINDS:
        raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    rows = P(corpus_axes)
    mask_spec = {None: None, "docs": rows, "query": P(None, corpus_axes)}[mask_kind]

    def local_topk(queries, emb, attrs, mask, lows, highs):
        n_local = emb.shape[0]
        k_local = min(k, n_local)
        scores = lax.dot_general(
            queries.astype(emb.dtype),
            emb,
            (((1,), (1,)), ((), ())),
            preferred_element_type=jnp.float32,
        )  # [B, n_local]
        rows_global = lax.axis_index(corpus_axes) * n_local + jnp.arange(n_local, dtype=jnp.int32)
        keep = jnp.broadcast_to(rows_global < num_docs, scores.shape)
        if mask_kind == "docs":
            keep = keep & mask[None, :]
        elif mask_kind == "query":
            keep = keep & mask
        for name in range_names:
            col = attrs[name][None, :]
            keep = keep & (col >= lows[name][:, None]) & (col <= highs[name][:, None])
        scores = jnp.where(keep, scores, -jnp.inf)
        top_s, top_i = lax.top_k(scores, k_local)
        return top_s[None], rows_global[top_i][None]  # [1, B, k_local]

    in_specs = (P(), P(corpus_axes, None), {n: rows for n in range_names}, mask_spec, P(), P())
    sharded = jax.shard_map(
        local_topk, mesh=mesh, in_specs=in_specs, out_specs=(rows, rows), check_vma=False
    )

    def search(queries, emb, attrs, mask, lows, highs):
        queries = queries.astype(jnp.float32)
        if normalize_queries:
            norm = jnp.linalg.norm(queries, axis=-1, keepdims=True)
            queries = queries / jnp.maximum(norm, 1e-12)
        cand_s, cand_i = sharded(queries, emb, attrs, mask, lows, highs)  # [S, B, k_local]
        b = queries.shape[0]
        cand_s = jnp.moveaxis(cand_s, 0, 1).reshape(b, -1)  # [B, S * k_local], shard order
        cand_i = jnp.moveaxis(cand_i, 0, 1).reshape(b, -1)
        kk = min(k, cand_s.shape[1])
        top_s, pos = lax.top_k(cand_s, kk)
        top_i = jnp.take_along_axis(cand_i, pos, axis=1)
        if kk < k:  # more slots asked for than the (padded) corpus has rows
            top_s = jnp.pad(top_s, ((0, 0), (0, k - kk)), constant_values=-jnp.inf)
            top_i = jnp.pad(top_i, ((0, 0), (0, k - kk)))
        top_i = jnp.where(jnp.isneginf(top_s), -1, top_i)
        return top_s, top_i

    rep = NamedSharding(mesh, P())
    row_sharding = NamedSharding(mesh, rows)
    in_shardings = (
        rep,
        NamedSharding(mesh, P(corpus_axes, None)),
        {n: row_sharding for n in range_names},
        None if mask_spec is None else NamedSharding(mesh, mask_spec),
        {n: rep for n in range_names},
        {n: rep for n in range_names},
    )
    return jax.jit(search, in_shardings=in_shardings, out_shardings=(rep, rep))
