"""benchmarks/mrm_torch_baseline.py computes what the JAX meta-step computes.

The PyTorch per-user loop (differentiable inner Adam via `torch.func`) and the project's vmapped
`make_meta_grad_fn` get the same embeddings, the same padded meta-batch and the same initial
parameters; their RPO objective and outer gradients must agree (second-order MAML on both sides,
two inner Adam steps so the bias corrections of step 2 are exercised). Runs where torch is
installed (`/work/torchenv`, or the `torch` extra); skipped otherwise.
"""

import dataclasses
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks.mrm_torch_baseline import BaselineConfig, TorchMetaStep  # noqa: E402
from jaxmethods.data.synthetic_prefs import make_synthetic_corpus  # noqa: E402
from jaxmethods.methods.mrm.config import MetaConfig  # noqa: E402
from jaxmethods.methods.mrm.objective import make_meta_grad_fn, split_model  # noqa: E402
from jaxmethods.methods.mrm.tasks import MetaTaskIterator  # noqa: E402
from jaxmethods.models.personalized_reward import PersonalizedReward  # noqa: E402
from jaxmethods.train.meta import InnerLoopConfig  # noqa: E402

DIM = 16


@pytest.mark.parametrize("gamma", [0.5, 0.0])
def test_torch_baseline_matches_the_vmapped_meta_gradient(gamma):
    corpus, _ = make_synthetic_corpus(12, DIM, pairs_per_user=(6, 10), convs_per_user=(2, 4))
    seen, _ = corpus.seen_unseen(0)
    batch = next(MetaTaskIterator(corpus, seen, tasks_per_batch=4, val_ratio=0.5, seed=0))
    meta = MetaConfig(inner=InnerLoopConfig(lr=0.05, steps=2), tasks_per_batch=4, rpo_gamma=gamma)
    graphdef, params = split_model(PersonalizedReward(DIM, (2,), rngs=nnx.Rngs(0)))
    emb = np.asarray(corpus.embeddings, np.float32) * 30.0  # rewards of order 1 after the 0.01
    (obj, _), grads = make_meta_grad_fn(graphdef, meta)(
        params, jnp.asarray(emb), jax.tree.map(jnp.asarray, batch), None
    )
    (kernel,) = jax.tree.leaves(params["base"])
    (theta,) = jax.tree.leaves(params["theta_w"])
    cfg = dataclasses.replace(
        BaselineConfig(), inner_lr=0.05, inner_steps=2, tail_frac=0.5, gamma=gamma
    )
    t_obj, t_grads = TorchMetaStep(emb, [np.asarray(kernel)], np.asarray(theta), cfg).gradients(
        batch
    )
    np.testing.assert_allclose(t_obj, float(obj), rtol=1e-5)
    (g_kernel,) = jax.tree.leaves(grads["base"])
    (g_theta,) = jax.tree.leaves(grads["theta_w"])
    np.testing.assert_allclose(t_grads["layers.0.weight"].T, g_kernel, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(t_grads["shared_weight"], g_theta, rtol=1e-4, atol=1e-7)
