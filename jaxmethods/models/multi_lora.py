"""Several named LoRA adapters resident on one frozen decoder (the base weights exist once).

    ml = apply_multi_lora(model, ("summarizer", "reasoner", "predictor", "reward"),
                          rank=(16, 16, 8, 8), alpha=(32, 32, 16, 16), dropout=(0, 0.1, 0, 0),
                          target_modules=ALL_LINEARS, head_trainable=("predictor", "reward"))
    @jax.jit                                      # one program serves every adapter
    def logits(bank, base, index, ids, mask):
        return ml.merge(bank, base, index)(ids, mask)
    logits(ml.bank, ml.base, ml.index("reasoner"), ids, mask)   # switching = a new int value

    params, constants = ml.trainable(name), ml.constants(name)  # train one adapter with `fit`
    loss_fn = ... ml.merge_trainable(name, params, constants) ...  # own rank, alpha/r, dropout
    ml.insert(name, result.state.params)           # every other adapter stays bit-identical

`AdapterBank` stacks every factor over the N adapters (`lora_a` [N, (L,) in, r_max], `lora_b`
[N, (L,) r_max, out]); an adapter of rank r < r_max has zero columns r.. of A and zero rows of
B, so it is exactly rank r (those entries get zero gradients). alpha_i / r_i is folded into B
when an adapter is selected. LM heads are S separate arrays: slot 0 the base `lm_head` (stored
only there), slots 1.. the head-trainable adapters' copies (PEFT `modules_to_save`). A traced
index out of [0, N) is clamped (XLA dynamic indexing): check names on the host (`index`).
PEFT files: `jaxmethods.hf.peft`. Design and measurements: docs/multi_lora.md.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.lora import LoRAParam, apply_lora, lora_modules

HEAD = "lm_head"


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter's hyper-parameters (PEFT `LoraConfig` fields)."""

    name: str
    rank: int
    alpha: float
    dropout: float
    head_trainable: bool

    @property
    def scale(self) -> float:  # alpha / r (PEFT `scaling` without rsLoRA)
        return self.alpha / self.rank


@jax.tree_util.register_dataclass
@dataclass
class AdapterBank:
    """Every adapter's arrays (a pytree; pass it to jit as one argument).

    lora: `LoRAParam` state, each leaf stacked [N, ...] over adapters, padded to r_max.
    scale: [N] float32, alpha_i / r_i.
    heads: None (no head-trainable adapter) or S `lm_head` states (kernel [H, V] each): slot 0
      the base head, slot s > 0 a trainable copy (separate arrays, so `MultiLoRA.model` and
      `MultiLoRA.constants` pass them on without a copy).
    head_slot: [N] int32, the head slot of each adapter (0 = the base head).
    """

    lora: nnx.State
    scale: jax.Array
    heads: tuple[nnx.State, ...] | None
    head_slot: jax.Array


def _per_adapter(value: Any, n: int, field: str) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return (value,) * n
    if len(value) != n:
        raise ValueError(f"apply_multi_lora: {field} has {len(value)} values for {n} adapters")
    return tuple(value)


def _take(x: jax.Array, index: jax.Array | int) -> jax.Array:
    """x[index] along axis 0 with a traced or Python int index."""
    return jax.lax.dynamic_index_in_dim(x, index, axis=0, keepdims=False)


def _is_b(path: tuple) -> bool:
    return "lora_b" in jax.tree_util.keystr(path)


def _rank_axis(path: tuple, x: jax.Array) -> int:
    """The rank axis of a factor: A [.., in, r] the last, B [.., r, out] the one before."""
    return x.ndim - 2 if _is_b(path) else x.ndim - 1


def _init_bank(template: nnx.State, specs: tuple[AdapterSpec, ...], seed: int) -> nnx.State:
    """Stacked factors of N fresh adapters, initialised like `apply_lora` (A uniform
    +-1/sqrt(in) like PEFT's kaiming init, B = 0) on the host: A [N, .., in, r_max] with the
    columns past each adapter's rank zeroed, B [N, .., r_max, out] zeros."""
    rng = np.random.default_rng(seed)
    n, r_max = len(specs), max(s.rank for s in specs)
    keep = (np.arange(r_max) < np.array([[s.rank] for s in specs])).astype(np.float32)

    def init(path, x):
        shape = (n, *x.shape)
        if _is_b(path):
            return jnp.zeros(shape, x.dtype)
        bound = 1.0 / x.shape[-2] ** 0.5
        a = rng.uniform(-bound, bound, shape).astype(np.float32)
        a *= keep.reshape(n, *([1] * (x.ndim - 1)), r_max)
        return jnp.asarray(a, x.dtype)

    return jax.tree_util.tree_map_with_path(init, template)


@functools.partial(jax.jit, static_argnames=("rank",))
def _extract(lora: Any, index: jax.Array, rank: int) -> Any:
    """Adapter `index`'s factors at rank `rank` (fresh arrays)."""

    def one(path, x):
        x = _take(x, index)
        return jax.lax.slice_in_dim(x, 0, rank, axis=_rank_axis(path, x))

    return jax.tree_util.tree_map_with_path(one, lora)


@jax.jit
def _insert(lora: Any, params: Any, index: jax.Array) -> Any:
    """`lora` with adapter `index`'s slice replaced by `params` (zero-padded to r_max)."""

    def put(path, stacked, x):
        pad, r = [(0, 0)] * x.ndim, _rank_axis(path, x)
        pad[r] = (0, stacked.shape[r + 1] - x.shape[r])  # zeros past the adapter's rank
        x = jnp.pad(x.astype(stacked.dtype), pad)
        return jax.lax.dynamic_update_index_in_dim(stacked, x, index, 0)

    return jax.tree_util.tree_map_with_path(put, lora, params)


@jax.jit
def _select_lora(lora: Any, scale: jax.Array, index: jax.Array) -> Any:
    """Adapter `index`'s padded factors with alpha/r folded into B."""
    s = _take(scale, index)

    def pick(path, x):
        x = _take(x, index)
        return (x * s.astype(x.dtype)) if _is_b(path) else x

    return jax.tree_util.tree_map_with_path(pick, lora)


def _shapes(tree: Any) -> dict[str, tuple]:
    """{key path: (shape, dtype)} of a pytree's leaves."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): (tuple(x.shape), jnp.dtype(x.dtype)) for p, x in flat}


def _head_filter(path: tuple, _value: Any) -> bool:
    return len(path) >= 2 and path[0] == HEAD and path[1] == "kernel"


@dataclass
class MultiLoRA:
    """N named LoRA adapters on one frozen decoder; built by `apply_multi_lora`.

    specs: the adapters' `AdapterSpec`s, in index order (`names`: their names).
    graphdef: the decoder with rank-r_max LoRA, scale 1 (folded into B), no dropout;
      train_graphdefs: per adapter, with its own alpha/r and dropout.
    base: the frozen decoder state without LoRA factors (and without the LM head kernel when
      an adapter trains its head: that kernel is then `bank.heads[0]`).
    bank: the `AdapterBank` (every adapter's arrays); `rank_max`: its padded rank.
    config: the decoder's `DecoderConfig`; paths: the adapted modules' paths.
    """

    specs: tuple[AdapterSpec, ...]
    graphdef: nnx.GraphDef
    train_graphdefs: dict[str, nnx.GraphDef]
    base: nnx.State
    bank: AdapterBank
    config: Any
    paths: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    @property
    def rank_max(self) -> int:
        return max(s.rank for s in self.specs)

    def shardings(self, mesh: jax.sharding.Mesh, rules: Sequence = ()) -> tuple[Any, Any]:
        """`(bank, base)` NamedSharding trees under the regex `rules` (e.g.
        `DECODER_SHARDING_RULES`): each stacked factor gets its per-adapter spec behind an
        unsharded leading [N] axis; heads follow the `lm_head` rule; scale and slots replicate."""
        from jax.sharding import NamedSharding, PartitionSpec

        from jaxmethods.train.sharding import param_shardings

        one = jax.eval_shape(lambda: jax.tree.map(lambda x: x[0], self.bank.lora))
        per = param_shardings(one, mesh, rules)
        lora = jax.tree.map(lambda s: NamedSharding(mesh, PartitionSpec(None, *s.spec)), per)
        bank = dataclasses.replace(self.bank, lora=None)
        bank = dataclasses.replace(param_shardings(bank, mesh, rules), lora=lora)
        return bank, param_shardings(self.base, mesh, rules)

    def place(self, mesh: jax.sharding.Mesh, rules: Sequence = ()) -> None:
        """Places `bank` and `base` on `mesh` with `shardings(mesh, rules)` (in place)."""
        bank, base = self.shardings(mesh, rules)
        self.bank, self.base = jax.device_put((self.bank, self.base), (bank, base))

    def index(self, name: str) -> jax.Array:
        """The adapter's index as an int32 scalar array (a traced jit argument, not static)."""
        return jnp.asarray(self._position(name), jnp.int32)

    def spec(self, name: str) -> AdapterSpec:
        return self.specs[self._position(name)]

    def _position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"MultiLoRA: no adapter {name!r}; adapters are {self.names}") from None

    def _head_slot(self, name: str) -> int:
        return int(np.asarray(self.bank.head_slot)[self._position(name)])

    def select(self, bank: AdapterBank, index: jax.Array | int) -> list[nnx.State]:
        """Adapter `index`'s states to merge with `base`: [LoRA state [.., in, r_max] with
        alpha/r folded into B] plus [its lm_head state] when the bank holds heads. Pure;
        `index` may be a traced int32 scalar (then the head is chosen by `lax.switch`)."""
        states = [_select_lora(bank.lora, bank.scale, index)]
        if bank.heads is not None:
            if isinstance(index, int):
                slot = int(np.asarray(bank.head_slot)[index])
                states.append(bank.heads[slot])
            else:
                branches = [lambda hs, s=s: hs[s] for s in range(len(bank.heads))]
                slot = _take(bank.head_slot, index)
                states.append(jax.lax.switch(slot, branches, bank.heads))
        return states

    def merge(self, bank: AdapterBank, base: nnx.State, index: jax.Array | int) -> DecoderLM:
        """The decoder with adapter `index` (a traced int32 inside jit) active; deterministic, and
        one graphdef for every adapter: another index is another value for the same program."""
        return nnx.merge(self.graphdef, *self.select(bank, index), base)

    def model(self, name: str) -> DecoderLM:
        """An eager standalone DecoderLM with adapter `name` active (base arrays shared, not
        copied; same graphdef for every adapter, so `jaxmethods.generate` compiles one decoding
        program for all of them)."""
        return self.merge(self.bank, self.base, self._position(name))

    def trainable(self, name: str) -> dict[str, nnx.State]:
        """The trainable pytree of adapter `name` (fresh arrays): {"lora": LoRA state at the
        adapter's own rank ([.., in, r] / [.., r, out]), "head": its lm_head state, only when
        it is head-trainable}."""
        k, spec = self._position(name), self.spec(name)
        out = {"lora": _extract(self.bank.lora, jnp.int32(k), spec.rank)}
        if spec.head_trainable:
            out["head"] = jax.tree.map(jnp.copy, self.bank.heads[self._head_slot(name)])
        return out

    def constants(self, name: str) -> dict[str, nnx.State]:
        """The frozen inputs of adapter `name`'s train step (shared, not copied): {"base": the
        base state, "head": the base lm_head state when it lives in the bank and `name` does
        not train its own}."""
        out = {"base": self.base}
        if self.bank.heads is not None and not self.spec(name).head_trainable:
            out["head"] = self.bank.heads[0]
        return out

    def merge_trainable(
        self, name: str, params: dict[str, nnx.State], constants: dict[str, nnx.State]
    ) -> DecoderLM:
        """The decoder of adapter `name`'s loss (inside jit): its own rank, alpha/r and LoRA
        dropout (active when the model is called with `dropout_rng`)."""
        self._position(name)
        states = [params["lora"]]
        head = params.get("head", constants.get("head"))
        if head is not None:
            states.append(head)
        return nnx.merge(self.train_graphdefs[name], *states, constants["base"])

    def insert(self, name: str, params: dict[str, nnx.State]) -> None:
        """Writes a trained `trainable(name)` pytree back into the bank (in place on this
        object; arrays are replaced functionally, every other adapter keeps its exact bits)."""
        k, spec = self._position(name), self.spec(name)
        got, want = _shapes(params), _shapes(jax.eval_shape(lambda: self.trainable(name)))
        if got != want:
            diff = [
                f"{p}: got {got.get(p)}, expected {want.get(p)}"
                for p in sorted(set(got) | set(want))
                if got.get(p) != want.get(p)
            ]
            raise ValueError(
                f"MultiLoRA.insert({name!r}): params do not match trainable({name!r}): {diff[0]}"
            )
        lora = _insert(self.bank.lora, params["lora"], jnp.int32(k))
        heads = self.bank.heads
        if spec.head_trainable:
            heads = list(heads)
            heads[self._head_slot(name)] = jax.tree.map(jnp.asarray, params["head"])
            heads = tuple(heads)
        self.bank = dataclasses.replace(self.bank, lora=lora, heads=heads)

    def adapter_nbytes(self, name: str | None = None) -> int:
        """Bytes of one adapter's parameters at its own rank (head copy included), or of every
        adapter in the bank (rank padding and head copies included) when `name` is None."""
        if name is None:
            copies = (self.bank.heads or ())[1:]
            return sum(x.nbytes for x in jax.tree.leaves((self.bank.lora, copies)))
        shapes = jax.tree.leaves(jax.eval_shape(lambda: self.trainable(name)))
        return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in shapes)


def apply_multi_lora(
    model: DecoderLM,
    names: Sequence[str],
    rank: int | Sequence[int],
    alpha: float | Sequence[float],
    dropout: float | Sequence[float] = 0.0,
    target_modules: str = r"(q_proj|v_proj)$",
    *,
    head_trainable: str | Sequence[str] = (),
    seed: int = 0,
    param_dtype: Any = jnp.float32,
) -> MultiLoRA:
    """Adds N named LoRA adapters on the same target modules of `model`. The model is
    consumed: its weights move into the returned `MultiLoRA`, which holds them once.

    Args:
      model: a DecoderLM without LoRA factors.
      names: the adapters' names (unique, non-empty).
      rank, alpha, dropout: one value for every adapter, or one per adapter.
      target_modules: regex `re.search`ed against module paths (as `apply_lora`).
      head_trainable: names of the adapters that train their own copy of `lm_head`
        (PEFT `modules_to_save=["lm_head"]`), initialised to the base head; needs an untied head.
      seed: of the host RNG that draws every A (uniform +-1/sqrt(in) as `apply_lora`; B = 0).
      param_dtype: storage dtype of the LoRA factors (head copies keep the head's dtype).
    """
    names = tuple(names)
    n = len(names)
    if n == 0 or len(set(names)) != n or not all(isinstance(x, str) and x for x in names):
        raise ValueError(f"apply_multi_lora: names must be unique non-empty strings, got {names}")
    ranks = _per_adapter(rank, n, "rank")
    alphas = _per_adapter(alpha, n, "alpha")
    dropouts = _per_adapter(dropout, n, "dropout")
    head_trainable = (head_trainable,) if isinstance(head_trainable, str) else tuple(head_trainable)
    unknown = sorted(set(head_trainable) - set(names))
    if unknown:
        raise ValueError(f"apply_multi_lora: head_trainable names {unknown} are not in {names}")
    if lora_modules(model):
        raise ValueError("apply_multi_lora: the model already has LoRA factors")
    if head_trainable and model.lm_head is None:
        raise ValueError(
            "apply_multi_lora: head_trainable needs an untied lm_head "
            "(this config has tie_word_embeddings=True)"
        )
    specs = tuple(
        AdapterSpec(nm, int(r), float(a), float(d), nm in set(head_trainable))
        for nm, r, a, d in zip(names, ranks, alphas, dropouts)
    )
    r_max = max(s.rank for s in specs)

    # The structure (rank r_max, scale 1) comes from `apply_lora`; the factors from `_init_bank`.
    paths = apply_lora(model, r_max, float(r_max), 0.0, target_modules, param_dtype=param_dtype)
    if head_trainable and any(p.startswith(HEAD) for p in paths):
        raise ValueError(
            f"apply_multi_lora: target_modules {target_modules!r} adapts lm_head, which "
            f"head_trainable adapters train in full"
        )
    stacked = _init_bank(nnx.state(model, LoRAParam), specs, seed)

    train_graphdefs = {}
    adapted = lora_modules(model)
    for s in specs:
        for _, dense in adapted:
            dense.lora_scale, dense.lora_dropout = s.scale, s.dropout
        train_graphdefs[s.name] = nnx.graphdef(model)
    for _, dense in adapted:
        dense.lora_scale, dense.lora_dropout = 1.0, 0.0

    heads, head_slot = None, np.zeros(n, np.int32)
    if head_trainable:
        graphdef, _, head, base = nnx.split(model, LoRAParam, _head_filter, ...)
        copies = [jax.tree.map(jnp.copy, head) for s in specs if s.head_trainable]
        heads = (head, *copies)
        head_slot = np.cumsum([s.head_trainable for s in specs]) * [s.head_trainable for s in specs]
    else:
        graphdef, _, base = nnx.split(model, LoRAParam, ...)
    bank = AdapterBank(
        lora=stacked,
        scale=jnp.asarray([s.scale for s in specs], jnp.float32),
        heads=heads,
        head_slot=jnp.asarray(head_slot, jnp.int32),
    )
    return MultiLoRA(specs, graphdef, train_graphdefs, base, bank, model.config, tuple(paths))
