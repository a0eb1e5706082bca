"""A straightforward PyTorch implementation of the CF models, for `cf_epoch.py` to compare with.

Written the way RecBole's models are (embedding tables, `torch.sparse.mm` propagation, one Adam
step per batch of 2048 triples), with the sampling done in torch too so that both sides time the
same work: shuffle, uniform negatives re-drawn when they are training positives, forward,
backward, Adam. Evaluation ranks all items in user chunks with training items masked.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TorchData:
    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
        self.n_users, self.n_items = n_users, n_items
        self.user = torch.as_tensor(users, dtype=torch.long)
        self.item = torch.as_tensor(items, dtype=torch.long)
        self.keys = torch.sort(self.user * n_items + self.item).values
        self.adj = self._norm_adj(torch.ones(len(users)))

    def _norm_adj(self, keep: torch.Tensor) -> torch.Tensor:
        n = self.n_users + self.n_items
        u, i = self.user[keep > 0], self.item[keep > 0] + self.n_users
        rows, cols = torch.cat([u, i]), torch.cat([i, u])
        deg = torch.bincount(rows, minlength=n).float().clamp(min=1)
        w = deg[rows].rsqrt() * deg[cols].rsqrt()
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), w, (n, n)).coalesce()

    def edge_dropout(self, ratio: float) -> torch.Tensor:
        keep = torch.zeros(len(self.user))
        keep[torch.randperm(len(self.user))[: int(len(self.user) * (1 - ratio))]] = 1
        return self._norm_adj(keep)

    def negatives(self, users: torch.Tensor, rounds: int = 8) -> torch.Tensor:
        neg = torch.randint(0, self.n_items, users.shape)
        for _ in range(rounds):
            key = users * self.n_items + neg
            pos = torch.searchsorted(self.keys, key).clamp(max=len(self.keys) - 1)
            hit = self.keys[pos] == key
            if not hit.any():
                break
            neg = torch.where(hit, torch.randint(0, self.n_items, users.shape), neg)
        return neg


class MF(nn.Module):
    def __init__(self, n_users, n_items, dim, n_layers=0, init=nn.init.xavier_normal_):
        super().__init__()
        self.user, self.item = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        init(self.user.weight)
        init(self.item.weight)
        self.n_layers = n_layers

    def reps(self, adj=None):
        ego = torch.cat([self.user.weight, self.item.weight])
        if not self.n_layers:
            return self.user.weight, self.item.weight
        layers, x = [ego], ego
        for _ in range(self.n_layers):
            x = torch.sparse.mm(adj, x)
            layers.append(x)
        out = torch.stack(layers, 1).mean(1)
        return out[: self.user.num_embeddings], out[self.user.num_embeddings :]


class NeuMF(nn.Module):
    def __init__(self, n_users, n_items, dim, dropout=0.1):
        super().__init__()
        self.ug, self.ig = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        self.um, self.im = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        for e in (self.ug, self.ig, self.um, self.im):
            nn.init.normal_(e.weight, std=0.01)
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * dim, 2 * dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(2 * dim, dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * dim, 1)

    def forward(self, u, i):
        h = self.mlp(torch.cat([self.um(u), self.im(i)], -1))
        return self.head(torch.cat([self.ug(u) * self.ig(i), h], -1)).squeeze(-1)

    def score_all(self, users):
        n_items = self.ig.num_embeddings
        u = users.repeat_interleave(n_items)
        i = torch.arange(n_items).repeat(len(users))
        return self.forward(u, i).view(len(users), n_items)


def _emb_loss(*embs):
    return sum(torch.norm(e) for e in embs) / embs[-1].shape[0]


def make_model(name: str, data: TorchData, dim: int) -> nn.Module:
    if name in ("bpr", "bpr_drop"):
        return MF(data.n_users, data.n_items, dim)
    if name == "lightgcn":
        return MF(data.n_users, data.n_items, dim, 2, nn.init.xavier_uniform_)
    if name == "sgl":
        return MF(data.n_users, data.n_items, dim, 3, nn.init.xavier_uniform_)
    if name == "neumf":
        return NeuMF(data.n_users, data.n_items, dim)
    raise ValueError(name)


def _info_nce(view1, view2, ids, tau):
    """SGL eq. 10 as RecBole's calc_ssl_loss: every node of view 2 is a candidate."""
    a, all2 = F.normalize(view1[ids], dim=1), F.normalize(view2, dim=1)
    pos = (a * all2[ids]).sum(1) / tau
    return (torch.logsumexp(a @ all2.T / tau, 1) - pos).sum()


def batch_loss(name, model, data, u, p, n, views):
    if name == "neumf":
        pos, neg = model(u, p), model(u, n)
        return F.binary_cross_entropy_with_logits(
            torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        )
    ur, ir = model.reps(data.adj)
    diff = (ur[u] * ir[p]).sum(1) - (ur[u] * ir[n]).sum(1)
    per = -F.logsigmoid(diff)
    if name == "bpr":
        return per.mean()
    if name == "bpr_drop":
        keep = per.argsort()[: len(per) - int(0.2 * len(per))]
        return per[keep].mean()
    reg = _emb_loss(model.user(u), model.item(p), model.item(n))
    if name == "lightgcn":
        return per.mean() + 1e-5 * reg
    u1, i1 = model.reps(views[0])
    u2, i2 = model.reps(views[1])
    ssl = _info_nce(u1, u2, u, 0.5) + _info_nce(i1, i2, p, 0.5)
    return per.sum() + 1e-5 * reg + 0.05 * ssl


def train_epoch(name, model, opt, data, batch_size):
    model.train()
    views = (data.edge_dropout(0.1), data.edge_dropout(0.1)) if name == "sgl" else None
    if name == "neumf":
        batch_size //= 2  # pointwise: positives and their negatives share a batch (RecBole)
    order = torch.randperm(len(data.user))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        u, p = data.user[idx], data.item[idx]
        n = data.negatives(u)
        loss = batch_loss(name, model, data, u, p, n, views)
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.no_grad()
def evaluate(name, model, data, eval_users, k=20, budget=1 << 26):
    model.eval()
    width = 2 * model.ug.embedding_dim if name == "neumf" else 1
    chunk = max(1, budget // (data.n_items * width))
    if name != "neumf":
        ur, ir = model.reps(data.adj)
    seen = (
        torch.sparse_coo_tensor(
            torch.stack([data.user, data.item]),
            torch.ones(len(data.user)),
            (data.n_users, data.n_items),
        ).to_dense()
        > 0
    )
    tops = []
    for start in range(0, len(eval_users), chunk):
        users = eval_users[start : start + chunk]
        scores = model.score_all(users) if name == "neumf" else ur[users] @ ir.T
        scores = scores.masked_fill(seen[users], -float("inf"))
        tops.append(scores.topk(k, dim=1).indices)
    return torch.cat(tops)


def time_torch(name, users, items, n_users, n_items, dim, *, epochs, batch_size, eval_users):
    """Median seconds of `epochs` training epochs (after one warm-up) and of evaluations."""
    torch.manual_seed(0)
    data = TorchData(users, items, n_users, n_items)
    model = make_model(name, data, dim)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    eval_users = torch.as_tensor(eval_users, dtype=torch.long)
    epoch_times, eval_times = [], []
    for _ in range(epochs + 1):
        t0 = time.perf_counter()
        train_epoch(name, model, opt, data, batch_size)
        t1 = time.perf_counter()
        evaluate(name, model, data, eval_users)
        t2 = time.perf_counter()
        epoch_times.append(t1 - t0)
        eval_times.append(t2 - t1)
    return {
        "epoch_median_s": float(np.median(epoch_times[1:])),
        "eval_median_s": float(np.median(eval_times[1:])),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


RECBOLE_MODELS = {"bpr": "BPR", "lightgcn": "LightGCN", "neumf": "NeuMF", "sgl": "SGL"}


def numpy2_aliases_for_recbole() -> None:
    """RecBole 1.2.1's `Config.compatibility_settings` reads `np.float_`, `np.complex_` and
    `np.unicode_`, which NumPy 2 removed (AttributeError on the first `Config(...)`); restores
    them as the aliases they were. Nothing else in RecBole's BPR/LightGCN path needs NumPy 1."""
    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if old not in np.__dict__:
            setattr(np, old, new)


def recbole_epoch_fn(name: str, atomic_dir: str, dataset: str, dim: int, *, batch_size: int,
                     workdir: str, seed: int = 2020):  # fmt: skip
    """RecBole 1.2.1 itself: `(one_epoch, info)` where `one_epoch()` runs `Trainer._train_epoch`
    once (RecBole's own data loader, uniform negative sampling, forward, backward, Adam).

    `atomic_dir/dataset/dataset.inter` is read with RecBole's defaults for a general recommender
    (random 8:1:1 split per user, one uniform negative per positive, lr 1e-3, batch 2048); the
    embedding size is `dim`. Logs and TensorBoard files go under `workdir`.
    """
    import os

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    numpy2_aliases_for_recbole()
    config_dict = {
        "data_path": atomic_dir,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id"]},
        "embedding_size": dim,
        "train_batch_size": batch_size,
        "learning_rate": 1e-3,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user",
                      "mode": "full"},
        "device": "cpu",
        "use_gpu": False,
        "seed": seed,
        "reproducibility": True,
        "show_progress": False,
        "checkpoint_dir": os.path.join(workdir, "saved"),
        "save_dataset": False,
        "save_dataloaders": False,
        "worker": 0,
    }  # fmt: skip
    model_name = RECBOLE_MODELS[name]
    cwd = os.getcwd()
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)  # RecBole writes ./log_tensorboard relative to the working directory
    try:
        config = Config(model=model_name, dataset=dataset, config_dict=config_dict)
        init_seed(config["seed"], config["reproducibility"])
        data = create_dataset(config)
        train_data, _, _ = data_preparation(config, data)
        model = get_model(model_name)(config, train_data._dataset).to("cpu")
        trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
    finally:
        os.chdir(cwd)
    counter = {"epoch": 0}

    def one_epoch() -> float:
        loss = trainer._train_epoch(train_data, counter["epoch"], show_progress=False)
        counter["epoch"] += 1
        return float(loss if not isinstance(loss, tuple) else sum(loss))

    info = {
        "recbole_model": model_name,
        "n_train": len(train_data._dataset),
        "n_users": data.user_num,
        "n_items": data.item_num,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    return one_epoch, info
