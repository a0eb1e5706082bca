"""`causal_lm_sequence_logprobs` (the DPO/GRPO log-prob path) and `lora_base_state` (the
reference policy without a second copy of the weights)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.models import DecoderConfig, DecoderLM, LoRAParam, apply_lora
from jaxmethods.models.causal_lm import causal_lm_sequence_logprobs
from jaxmethods.models.lora import lora_base_state

IDS = jnp.asarray(np.random.RandomState(0).randint(3, 64, size=(3, 8)), jnp.int32)
MASK = jnp.asarray([[1] * 8, [0, 0] + [1] * 6, [1] * 5 + [0] * 3], jnp.int32)
LABELS = jnp.where((jnp.arange(8)[None] >= jnp.asarray([[4], [5], [2]])) & (MASK == 1), IDS, -100)


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_sequence_logprobs_match_numpy_and_the_chunked_path():
    model = DecoderLM(DecoderConfig.tiny(vocab_size=64, initializer_range=0.2), rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state):
        m = nnx.merge(graphdef, state)
        return (
            m(IDS, MASK),
            causal_lm_sequence_logprobs(m, IDS, MASK, LABELS),
            causal_lm_sequence_logprobs(m, IDS, MASK, LABELS, chunk_size=3)[0],
        )

    logits, (got, lengths), chunked = run(state)
    logits = np.asarray(logits, np.float64)
    lp = np_log_softmax(logits)
    labels = np.asarray(LABELS)
    want, count = np.zeros(3), np.zeros(3)
    for b in range(3):
        for t in range(7):  # position t predicts labels[t + 1]
            if labels[b, t + 1] != -100:
                want[b] += lp[b, t, labels[b, t + 1]]
                count[b] += 1
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_array_equal(lengths, count)
    np.testing.assert_allclose(chunked, got, rtol=1e-5)


def test_lora_base_state_is_the_base_model():
    base = DecoderLM(DecoderConfig.tiny(vocab_size=64, initializer_range=0.2), rngs=nnx.Rngs(0))
    adapted = nnx.clone(base)
    apply_lora(adapted, 4, 8.0, target_modules=r"(q_proj|v_proj|lm_head)$")
    graphdef, lora, rest = nnx.split(adapted, LoRAParam, ...)
    rng = np.random.RandomState(1)
    lora = jax.tree.map(lambda x: jnp.asarray(0.3 * rng.randn(*x.shape), x.dtype), lora)

    @jax.jit
    def forward(lora, rest):
        return nnx.merge(graphdef, lora, rest)(IDS, MASK)

    base_graphdef, base_state = nnx.split(base)
    want = np.asarray(jax.jit(lambda s: nnx.merge(base_graphdef, s)(IDS, MASK))(base_state))
    assert not np.allclose(forward(lora, rest), want, atol=1e-3)  # the adapter does something
    np.testing.assert_allclose(forward(lora_base_state(lora), rest), want, rtol=1e-5, atol=1e-5)
    # The A factors are kept: the state is the adapter's own, only B is zeroed.
    a_leaves = [x for p, x in jax.tree_util.tree_leaves_with_path(lora_base_state(lora))
                if "lora_a" in jax.tree_util.keystr(p)]  # fmt: skip
    assert a_leaves and all(np.abs(np.asarray(x)).sum() > 0 for x in a_leaves)
