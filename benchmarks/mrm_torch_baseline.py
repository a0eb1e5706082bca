"""MRM meta-step in PyTorch with the authors' structure: the peer of `mrm_meta_step.py`.

The authors' `train.py` (`maml_train`, `higher.innerloop_ctx`, `RPO`) loops over users one at a
time: each user's θ_w takes `steps` differentiable Adam steps from a fresh state on its support
pairs, its query Bradley-Terry loss goes into a buffer, RPO combines the buffer, and one
backward pass, a global-norm clip at 1.0 and an outer Adam step follow. Here the inner step is
written with `torch.func.grad` + `torch.func.functional_call` (no `higher` dependency): the
inner gradient is part of the autograd graph, so the outer backward is exact second-order MAML.

Inputs are the project's (the same embedding table kept resident as one tensor, the same
padded `support`/`query` index batches of `MetaTaskIterator`, the same initial W and θ_w), so
`mrm_meta_step.py` times the same computation on both sides. Per user only the valid (unpadded)
pairs are gathered, as the authors' loader yields ragged per-user tensors.

    TorchMetaStep(embeddings, W, theta_w, config)(batch) -> RPO objective (float)

Needs torch (`pip install jaxmethods[torch]`); imports nothing from JAX.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call


@dataclass(frozen=True)
class BaselineConfig:
    """Hyper-parameters of one meta-step (defaults: the PRISM script, `docs/mrm.md`)."""

    inner_lr: float = 1e-3
    inner_steps: int = 1
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    tail_frac: float = 0.5
    gamma: float = 0.5
    scale: float = 0.01
    outer_lr: float = 1e-3
    clip_norm: float = 1.0


class MRM(torch.nn.Module):
    """The authors' `class MRM`: bias-free stacked linears on 0.01·x, softmax(θ_w)-weighted sum.

    Built from the project's parameters: `kernels` are nnx.Linear kernels [in, out] (torch stores
    their transposes); `theta_w` [K].
    """

    def __init__(self, kernels: list[np.ndarray], theta_w: np.ndarray, scale: float):
        super().__init__()
        self.scale = scale
        self.layers = torch.nn.ModuleList()
        for k in kernels:
            layer = torch.nn.Linear(k.shape[0], k.shape[1], bias=False)
            with torch.no_grad():
                layer.weight.copy_(torch.tensor(np.asarray(k, np.float32).T))
            self.layers.append(layer)
        self.shared_weight = torch.nn.Parameter(torch.tensor(np.asarray(theta_w, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> rewards [N]."""
        h = x * self.scale
        for layer in self.layers:
            h = layer(h)
        return h @ torch.softmax(self.shared_weight, dim=0)


def bt_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """The authors' `utils.bt_loss`: -mean log σ(r_c - r_r)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def rpo(losses: torch.Tensor, tail_frac: float, gamma: float) -> torch.Tensor:
    """The authors' `RPO`: τ = quantile(L, 1 - tail_frac); Σ σ((L - τ)/γ)·L (hard mask if γ ≤ 0)."""
    tau = torch.quantile(losses, 1.0 - tail_frac)
    if gamma <= 0:
        return ((losses > tau).float().detach() * losses).sum()
    return (torch.sigmoid((losses - tau) / gamma) * losses).sum()


class TorchMetaStep:
    """One outer step per call: per-user loop, RPO, backward, clip, Adam (the authors' order).

    Args:
      embeddings: [N, D] the response-embedding table (kept resident as one float32 tensor).
      kernels, theta_w: the initial parameters (see `MRM`).
      config: `BaselineConfig`.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        kernels: list[np.ndarray],
        theta_w: np.ndarray,
        config: BaselineConfig,
    ):
        self.config = config
        self.emb = torch.from_numpy(np.array(embeddings, np.float32))
        self.model = MRM(kernels, theta_w, config.scale)
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=config.outer_lr, betas=(config.b1, config.b2), eps=1e-8
        )

    def _rows(self, split: tuple, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        chosen, rejected, mask = (np.asarray(a[t]) for a in split)
        valid = np.flatnonzero(mask)
        return (
            self.emb[torch.as_tensor(chosen[valid], dtype=torch.long)],
            self.emb[torch.as_tensor(rejected[valid], dtype=torch.long)],
        )

    def user_query_loss(self, support: tuple, query: tuple) -> torch.Tensor:
        """Query BT loss after `inner_steps` differentiable Adam steps on θ_w from a zero state.

        support, query: (chosen [N, D], rejected [N, D]) embeddings of one user's valid pairs.
        """
        c = self.config
        params = dict(self.model.named_parameters())

        def loss_at(theta: torch.Tensor, pairs: tuple) -> torch.Tensor:
            p = {**params, "shared_weight": theta}
            return bt_loss(
                functional_call(self.model, p, (pairs[0],)),
                functional_call(self.model, p, (pairs[1],)),
            )

        theta = params["shared_weight"]
        m = torch.zeros_like(theta)
        v = torch.zeros_like(theta)
        for step in range(1, c.inner_steps + 1):
            g = torch.func.grad(loss_at)(theta, support)
            m = c.b1 * m + (1 - c.b1) * g
            v = c.b2 * v + (1 - c.b2) * g * g
            m_hat = m / (1 - c.b1**step)
            v_hat = v / (1 - c.b2**step)
            theta = theta - c.inner_lr * m_hat / (v_hat.sqrt() + c.eps)
        return loss_at(theta, query)

    def objective(self, batch: dict) -> torch.Tensor:
        """RPO over the batch's valid users (`task_mask`), each adapted in its own loop turn."""
        losses = []
        for t in np.flatnonzero(np.asarray(batch["task_mask"])):
            losses.append(
                self.user_query_loss(self._rows(batch["support"], t), self._rows(batch["query"], t))
            )
        return rpo(torch.stack(losses), self.config.tail_frac, self.config.gamma)

    def gradients(self, batch: dict) -> tuple[float, dict[str, np.ndarray]]:
        """(objective, {parameter name: gradient}) without updating anything (for tests)."""
        self.model.zero_grad(set_to_none=True)
        obj = self.objective(batch)
        obj.backward()
        grads = {n: p.grad.detach().numpy().copy() for n, p in self.model.named_parameters()}
        self.model.zero_grad(set_to_none=True)
        return float(obj.detach()), grads

    def __call__(self, batch: dict) -> float:
        self.opt.zero_grad(set_to_none=True)
        obj = self.objective(batch)
        obj.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.opt.step()
        return float(obj.detach())
