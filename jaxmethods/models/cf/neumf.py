"""NeuMF (He et al. 2017): a GMF branch and an MLP branch joined by a linear head.

ŷ(u, i) = h_gmf · (p_u ⊙ q_i) + h_mlp · MLP([p'_u ; q'_i]) + b           (NCF eq. 12)

GMF and MLP embeddings have size d. The MLP widths are either scaled with d, [2d -> 2d -> d]
(`hidden=()`, RecBole's 128 -> [128, 64] at d = 64), or fixed (`hidden=(128, 64)`, RecBole's
`mlp_hidden_size` at every d, which keeps the MLP small at d = 2^14 .. 2^15). Each layer is
dropout -> linear -> ReLU (RecBole `MLPLayers`), embeddings N(0, 0.01²), linear layers with PyTorch's default init.
The first MLP kernel is stored as two halves (`mlp0_user`, `mlp0_item`), which is the same linear
map as one kernel on the concatenation but keeps zero-padding to a wider d a corner operation.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxmethods.models.cf.init import Size, normal_table, torch_linear
from jaxmethods.models.dropout import dropout

HIDDEN_MULT = (2, 1)


def init_neumf(
    key: jax.Array,
    *,
    n_users: int,
    n_items: int,
    dim: Size,
    padded_dim: int | None = None,
    hidden: tuple[int, ...] = (),
) -> dict[str, jax.Array]:
    """Parameters of size `dim` (int or traced), zero-padded to `padded_dim`. With `hidden=()`
    the MLP widths are HIDDEN_MULT times d (padded: times `padded_dim`); otherwise they are the
    fixed `hidden` widths. The first layer's halves share the bound of the full fan-in 2d."""
    pd = int(dim) if padded_dim is None else padded_dim
    hidden_mult = HIDDEN_MULT if not hidden else tuple(hidden)
    keys = iter(jax.random.split(key, 8 + len(hidden_mult)))
    params = {}
    for name, n in (("user", n_users), ("item", n_items)):
        for branch in ("gmf", "mlp"):
            params[f"{name}_{branch}_emb"] = normal_table(next(keys), n, dim, pd, std=0.01)
    sizes = [m * dim for m in hidden_mult] if not hidden else list(hidden)
    padded = [m * pd for m in hidden_mult] if not hidden else list(hidden)
    params["mlp0_user"], params["mlp0_bias"] = torch_linear(
        next(keys), dim, sizes[0], pd, padded[0], bound_fan_in=2 * dim
    )
    params["mlp0_item"], _ = torch_linear(
        next(keys), dim, sizes[0], pd, padded[0], bound_fan_in=2 * dim
    )
    for layer in range(1, len(sizes)):
        kernel, bias = torch_linear(
            next(keys), sizes[layer - 1], sizes[layer], padded[layer - 1], padded[layer]
        )
        params[f"mlp{layer}_kernel"], params[f"mlp{layer}_bias"] = kernel, bias
    head_fan_in = dim + sizes[-1]
    head_gmf, head_bias = torch_linear(next(keys), dim, 1, pd, 1, bound_fan_in=head_fan_in)
    head_mlp, _ = torch_linear(next(keys), sizes[-1], 1, padded[-1], 1, bound_fan_in=head_fan_in)
    params["head_gmf"], params["head_mlp"] = head_gmf[:, 0], head_mlp[:, 0]
    params["head_bias"] = head_bias[0]
    return params


def _n_layers(params: dict[str, jax.Array]) -> int:
    return 1 + sum(1 for k in params if k.startswith("mlp") and k.endswith("_kernel"))


def neumf_logits(
    params: dict[str, jax.Array],
    users: jax.Array,
    items: jax.Array,
    *,
    dropout_rate: float = 0.0,
    key: jax.Array | None = None,
) -> jax.Array:
    """[B] user ids, [B] item ids -> [B] logits (dropout only when `key` is given)."""
    n_dropouts = 1 + _n_layers(params)  # both embedding halves, then every later layer input
    keys = iter(jax.random.split(key, n_dropouts) if key is not None else [None] * n_dropouts)
    gmf = params["user_gmf_emb"][users] * params["item_gmf_emb"][items]
    xu = dropout(params["user_mlp_emb"][users], dropout_rate, next(keys))
    xi = dropout(params["item_mlp_emb"][items], dropout_rate, next(keys))
    h = jax.nn.relu(xu @ params["mlp0_user"] + xi @ params["mlp0_item"] + params["mlp0_bias"])
    for layer in range(1, _n_layers(params)):
        h = dropout(h, dropout_rate, next(keys))
        h = jax.nn.relu(h @ params[f"mlp{layer}_kernel"] + params[f"mlp{layer}_bias"])
    return gmf @ params["head_gmf"] + h @ params["head_mlp"] + params["head_bias"]


def neumf_scorer(params: dict[str, jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """A full-sort scorer: [C] user ids -> [C, I] logits (eval mode, no dropout).

    The item half of the first MLP layer is computed once for all items; the [C, I, 2D] hidden
    activations are what bounds the user chunk size.
    """
    item_gmf = params["item_gmf_emb"] * params["head_gmf"]  # [I, D]
    item_h0 = params["item_mlp_emb"] @ params["mlp0_item"] + params["mlp0_bias"]  # [I, H1]

    def score(users: jax.Array) -> jax.Array:
        gmf = params["user_gmf_emb"][users] @ item_gmf.T  # [C, I]
        user_h0 = params["user_mlp_emb"][users] @ params["mlp0_user"]  # [C, H1]
        h = jax.nn.relu(user_h0[:, None, :] + item_h0[None, :, :])
        for layer in range(1, _n_layers(params)):
            h = jax.nn.relu(h @ params[f"mlp{layer}_kernel"] + params[f"mlp{layer}_bias"])
        return gmf + h @ params["head_mlp"] + params["head_bias"]

    return score


def neumf_hidden_width(padded_dim: int, hidden: tuple[int, ...] = ()) -> int:
    """The widest per-(user, item) activation of the scorer, for sizing evaluation chunks."""
    return max(hidden) if hidden else max(HIDDEN_MULT) * padded_dim
