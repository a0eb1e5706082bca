"""The experts as named adapters of one `MultiLoRA` base: chat-format SFT examples (response-only
labels), training one adapter with the shared trainer, batched expected-rating scoring and
batched greedy generation (one compiled program serves every adapter).

    fmt = ChatFormat(tokenizer, max_length=4096)
    train_expert(ml, "reasoner", [fmt.example(p, r) ...], cfg.reasoner, ...)
    ratings = RatingScorer(ml, fmt).score("predictor", prompts)      # [N] in [1, 5]
    texts, cost = generate_texts(ml, "reasoner", fmt, prompts, max_new_tokens=...)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.data.forget_retain import sft_stream
from jaxmethods.data.tofu import left_pad_prompts
from jaxmethods.generate import generate
from jaxmethods.losses.rating import expected_rating
from jaxmethods.losses.unlearning import IGNORE_INDEX
from jaxmethods.methods.reason4rec.config import ExpertConfig
from jaxmethods.methods.reason4rec.prompts import OUTPUT_PREFIX
from jaxmethods.methods.reason4rec.resume import check_resume, fingerprint
from jaxmethods.models.causal_lm import causal_lm_loss
from jaxmethods.models.multi_lora import MultiLoRA
from jaxmethods.models.sharding_rules import DECODER_SHARDING_RULES
from jaxmethods.train import OptimConfig, fit, hf_max_steps
from jaxmethods.train.trainer import LoopConfig


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class ChatFormat:
    """One user turn through the tokenizer's chat template (generation prompt added), the
    response tokenised on its own and closed by EOS (the authors' Unsloth
    `train_on_responses_only`: every token up to the assistant header is unscored).

    The rating tokens are found from the response side: "Predicted Rating: 1.0" .. "5.0" are
    tokenised; their common prefix is the scoring prefix and the five next tokens (distinct)
    are the rating tokens.
    """

    def __init__(self, tokenizer: Any, *, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        seqs = [self.encode(f"{OUTPUT_PREFIX}{k}.0") for k in range(1, 6)]
        n = 0
        while all(len(s) > n for s in seqs) and len({s[n] for s in seqs}) == 1:
            n += 1
        ids = [s[n] if len(s) > n else -1 for s in seqs]
        if len(set(ids)) != 5 or min(ids) < 0:
            raise ValueError(
                f"tokenizer: 'Predicted Rating: 1.0'..'5.0' do not differ in one token after a "
                f"common prefix (token ids after {n} shared tokens: {ids})"
            )
        self.rating_prefix = seqs[0][:n]
        self.rating_ids = np.asarray(ids, np.int32)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, prompt: str) -> list[int]:
        msgs = [{"role": "user", "content": prompt}]
        text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return self.encode(text)

    def example(self, prompt: str, response: str) -> dict[str, list[int]]:
        """{"input_ids", "labels"} (HF layout, -100 on the prompt); an example longer than
        `max_length` is an error naming its length (the authors truncate silently)."""
        p, r = self.prompt_ids(prompt), [*self.encode(response), self.eos_id]
        if len(p) + len(r) > self.max_length:
            raise ValueError(
                f"SFT example of {len(p)} prompt + {len(r)} response tokens > config.max_length="
                f"{self.max_length}"
            )
        return {"input_ids": p + r, "labels": [IGNORE_INDEX] * len(p) + r}

    def score_ids(self, prompt: str) -> list[int]:
        """The chat prompt followed by the scoring prefix ("Predicted Rating:" tokens)."""
        return self.prompt_ids(prompt) + self.rating_prefix


def train_expert(
    ml: MultiLoRA,
    name: str,
    examples: Sequence[dict],
    ecfg: ExpertConfig,
    *,
    mesh: Any,
    workdir: str,
    loop: LoopConfig,
    seed: int,
    pad_id: int,
    length_multiple: int = 64,
) -> dict[str, float]:
    """SFT of adapter `name` (response-only CE) through `fit`; writes it back into `ml`
    (every other adapter stays bit-identical). Resumes from `<workdir>/<name>/checkpoints`, only
    when that phase was trained from the same base, initial adapter, examples and recipe
    (`resume.check_resume`; otherwise a ValueError names the directory)."""
    if not examples:
        raise ValueError(f"expert {name!r}: no training examples")
    length = _round_up(max(len(e["input_ids"]) for e in examples), length_multiple)
    params, constants = ml.trainable(name), ml.constants(name)
    settings = {"expert": name, "recipe": dataclasses.asdict(ecfg), "seed": seed,
                "length": length}  # fmt: skip
    check_resume(os.path.join(workdir, name),
                 fingerprint(base=constants, init=params, examples=examples, settings=settings))  # fmt: skip

    def loss_fn(params, constants, batch, rng):
        model = ml.merge_trainable(name, params, constants)
        loss, tokens = causal_lm_loss(model, batch, dropout_rng=rng)
        return loss, {"tokens": tokens.astype(jnp.float32)}

    stream = sft_stream(examples, batch_size=ecfg.batch_size, length=length, pad_id=pad_id,
                        seed=seed)  # fmt: skip
    num_steps = hf_max_steps(stream.batches_per_epoch, 1, ecfg.epochs)
    optim = OptimConfig(
        lr=ecfg.lr, warmup_steps=ecfg.warmup_steps, warmup_ratio=ecfg.warmup_ratio,
        weight_decay=ecfg.weight_decay, max_grad_norm=ecfg.max_grad_norm,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = fit(
        params=params, optim=optim, num_steps=num_steps, batches=stream, mesh=mesh,
        workdir=os.path.join(workdir, name), loss_fn=loss_fn, constants=constants,
        rules=DECODER_SHARDING_RULES, loop=dataclasses.replace(loop, log_every=1), seed=seed,
        desc=name, items_per_step=ecfg.batch_size,
    )  # fmt: skip
    ml.insert(name, jax.device_get(result.state.params))
    last = last_epoch_loss(os.path.join(workdir, name, "metrics.jsonl"), result.step,
                           stream.batches_per_epoch)  # fmt: skip
    return {
        f"{name}/steps": result.step,
        f"{name}/examples": len(examples),
        f"{name}/train_loss": last,
        f"{name}/train_s": time.perf_counter() - t0,
    }


def last_epoch_loss(metrics_path: str, last_step: int, steps_per_epoch: int) -> float:
    """The token-weighted mean training loss over the last epoch (steps last_step -
    steps_per_epoch + 1 .. last_step) from a phase's `metrics.jsonl` (one row per step; a step
    logged twice, by a resumed run, counts once: its last row). NaN without such rows."""
    rows: dict[int, dict] = {}
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "loss" in r and last_step - steps_per_epoch < r.get("step", -1) <= last_step:
                    rows[r["step"]] = r
    if not rows:
        return float("nan")
    w = np.asarray([r.get("tokens", 1.0) for r in rows.values()], np.float64)
    loss = np.asarray([r["loss"] for r in rows.values()], np.float64)
    return float((w * loss).sum() / max(w.sum(), 1e-12))


class RatingScorer:
    """Batched `logits_weighted_predict`: the expected rating of any adapter at the position
    after "Predicted Rating: ", one jitted program per (batch, padded length) for all adapters."""

    def __init__(self, ml: MultiLoRA, fmt: ChatFormat, *, batch_size: int = 16,
                 length_multiple: int = 64):  # fmt: skip
        self.ml, self.fmt = ml, fmt
        self.batch_size, self.length_multiple = batch_size, length_multiple
        rating_ids = jnp.asarray(fmt.rating_ids)

        @jax.jit
        def score(bank, base, index, ids, mask):
            model = ml.merge(bank, base, index)
            h = model.hidden_states(ids, mask)[:, -1]  # left padded: the last position is real
            return expected_rating(model.logits_from_hidden(h), rating_ids)

        self._score = score
        self.tokens = 0

    def score(self, name: str, prompts: Sequence[str]) -> np.ndarray:
        """[N] float expected ratings of adapter `name` on the prompts."""
        ids = [self.fmt.score_ids(p) for p in prompts]
        self.tokens += sum(len(x) for x in ids)
        out = np.zeros((len(ids),), np.float32)
        index = self.ml.index(name)
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            length = _round_up(max(len(x) for x in chunk), self.length_multiple)
            x, mask = left_pad_prompts(chunk, length=length, pad_id=self.fmt.pad_id,
                                       batch_size=self.batch_size)  # fmt: skip
            r = self._score(self.ml.bank, self.ml.base, index, x, mask)
            out[start : start + len(chunk)] = np.asarray(r)[: len(chunk)]
        return out


def generate_texts(
    ml: MultiLoRA,
    name: str,
    fmt: ChatFormat,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    length_multiple: int = 64,
) -> tuple[list[str], dict[str, float]]:
    """Greedy completions of adapter `name` (the authors decode at T = 0), and their cost
    {"prompt_tokens", "new_tokens", "seconds"}."""
    model = ml.model(name)
    ids = [fmt.prompt_ids(p) for p in prompts]
    texts: list[str] = []
    new_tokens, t0 = 0, time.perf_counter()
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        length = _round_up(max(len(x) for x in chunk), length_multiple)
        x, mask = left_pad_prompts(chunk, length=length, pad_id=fmt.pad_id, batch_size=batch_size)
        res = generate(model, x, mask, max_new_tokens=max_new_tokens, eos_token_id=fmt.eos_id,
                       pad_token_id=fmt.pad_id)  # fmt: skip
        seqs, lens = np.asarray(res.sequences), np.asarray(res.lengths)
        for row in range(len(chunk)):
            toks = seqs[row, : lens[row]]
            new_tokens += int(lens[row])
            texts.append(fmt.tokenizer.decode(toks, skip_special_tokens=True).strip())
    cost = {"prompt_tokens": float(sum(len(x) for x in ids)), "new_tokens": float(new_tokens),
            "seconds": time.perf_counter() - t0}  # fmt: skip
    return texts, cost
