"""GRPO rollouts: prompts -> G sampled completions each -> rewards -> an update batch.

`RolloutStream.next_batch(params)` runs one iteration's host and sampling side:

  1. draw the next list of prompt records from the resumable prompt iterator, encode them
     (left-truncated, left-padded) and repeat each G times (row i*G + g = prompt i, sample g);
  2. sample all prompts x G completions in one KV-cache `generate` call on the training mesh;
  3. old log-probs (the sampling policy's, when the update needs them) and reference
     log-probs, once per batch, in one jitted forward;
  4. `reward_fn(records, texts) -> [B, R]` on a worker thread, then the jitted
     `compose(scores, lengths, features)` and the group advantages.

With `overlap=True` step 4 of batch n runs while batch n+1 is sampled (steps 1-3), so the
device is busy while judges answer. The batch returned for update n was then sampled by the
policy before update n-1 was applied: one step off-policy. Its old log-probs are those of that
sampling policy, so the clipped ratio corrects for it exactly as for `num_iterations > 1`.

The stream's `get_state()` is the prompt iterator's position before the first batch not yet
returned (a batch in flight is dropped on restore and sampled again, from the restored
policy, with the same prompts) plus the rollout counter that seeds the sampler.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxmethods.data.pipeline import step_stream
from jaxmethods.generate import generate
from jaxmethods.losses.policy_gradient import grpo_advantages
from jaxmethods.models.lora import lora_base_state
from jaxmethods.train.grpo_loss import completion_logprobs
from jaxmethods.train.loop import put_batch
from jaxmethods.train.mesh import data_sharding


class RewardFnError(RuntimeError):
    """`reward_fn` raised; the message names the file where the rollout was saved."""


def prompt_stream(
    records: Sequence[Mapping[str, Any]],
    *,
    prompts_per_step: int,
    seed: int = 0,
    shuffle: bool = True,
    prefetch: int = 0,
):
    """A resumable iterator of lists of `prompts_per_step` prompt records, epoch after epoch
    (a fresh permutation per epoch; each epoch's incomplete last batch is dropped)."""
    if len(records) < prompts_per_step:
        raise ValueError(
            f"prompt_stream: {len(records)} prompt records, fewer than prompts_per_step="
            f"{prompts_per_step}"
        )
    records = list(records)
    return step_stream(
        len(records), lambda idx: [records[i] for i in idx.tolist()],
        micro_batch_size=prompts_per_step, seed=seed, shuffle=shuffle, drop_last=True,
        prefetch=prefetch,
    )  # fmt: skip


def bucket(n: int, cap: int) -> int:
    """The smallest power of two >= n, at most `cap` (few distinct shapes, few compilations)."""
    return min(cap, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def encode_prompts(
    tokenizer: Any, texts: Sequence[str], *, max_length: int, pad_id: int, bucketed: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Left-truncated (the last `max_length` tokens kept, as TRL), left-padded prompt ids.

    Returns (ids [N, P] int32, mask [N, P] int32); P = `max_length`, or with `bucketed` the
    power-of-two bucket of the longest prompt. No special tokens are added (the prompt text is
    already chat-templated, as in TRL).
    """
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids = [row[-max_length:] for row in ids]
    empty = [i for i, row in enumerate(ids) if not row]
    if empty:
        raise ValueError(f"prompt record {empty[0]} encodes to no tokens: {texts[empty[0]]!r}")
    longest = max(len(r) for r in ids)
    width = bucket(longest, max_length) if bucketed else max_length
    out = np.full((len(ids), width), pad_id, np.int32)
    mask = np.zeros((len(ids), width), np.int32)
    for i, row in enumerate(ids):
        out[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return out, mask


def record_features(
    records: Sequence[Mapping[str, Any]], keys: Sequence[str], group_size: int
) -> dict[str, np.ndarray]:
    """{key: [N * G] array} from the numeric fields `keys` of each record, repeated G times."""
    out = {}
    for key in keys:
        try:
            col = np.asarray([r[key] for r in records])
        except KeyError:
            bad = next(i for i, r in enumerate(records) if key not in r)
            raise KeyError(
                f"prompt record {bad} has no feature field {key!r} (feature_keys={list(keys)}); "
                f"its fields: {sorted(records[bad])}"
            ) from None
        if col.dtype.kind in "iub":
            col = col.astype(np.int32)
        elif col.dtype.kind == "f":
            col = col.astype(np.float32)
        else:
            raise TypeError(f"feature field {key!r} is not numeric (dtype {col.dtype})")
        out[key] = np.repeat(col, group_size, axis=0)
    return out


def dump_rollout(path: str, prompts: Sequence[str], texts: Sequence[str], lengths) -> str:
    """Writes one JSON line per completion {prompt, completion, length}; returns `path`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for p, t, n in zip(prompts, texts, np.asarray(lengths).tolist(), strict=True):
            f.write(json.dumps({"prompt": p, "completion": t, "length": int(n)}) + "\n")
    return path


@dataclass
class _Sampled:
    """A sampled, not yet scored batch."""

    index: int  # rollout counter (this batch trains step index + 1)
    records: list
    prompts: list  # B prompt texts (each record's prompt G times)
    texts: list  # B completion texts
    lengths: np.ndarray  # [B] int32 generated tokens (EOS included)
    batch: dict  # device arrays of the update batch (no advantages yet)
    features: dict
    prompt_state: dict | None = None  # the prompt iterator's position before `records`
    future: concurrent.futures.Future | None = None


class RolloutStream:
    """Produces scored GRPO update batches from the current policy (see the module doc).

    Args:
      prompts: resumable iterator of lists of prompt records ({"prompt": str, ...}).
      graphdef, rest: the model split as the trainer trains it (`rest` frozen, on the mesh).
      ref_params: the frozen reference's trainable part ("frozen"), else None.
      reference: "frozen" | "lora_base" | "none" ("none" also when kl_coef is 0).
      need_old_logp: compute the sampling policy's log-probs (num_iterations > 1 or overlap).
    """

    def __init__(
        self,
        *,
        prompts: Any,
        tokenizer: Any,
        reward_fn: Callable,
        compose: Callable,
        cfg: Any,
        graphdef: nnx.GraphDef,
        rest: Any,
        ref_params: Any,
        reference: str,
        need_old_logp: bool,
        mesh: Any,
        workdir: str,
        feature_keys: Sequence[str] = (),
        reward_names: Sequence[str] = (),
        seed: int = 0,
    ):
        self.prompts, self.tokenizer, self.cfg = prompts, tokenizer, cfg
        self.reward_fn, self.graphdef, self.rest = reward_fn, graphdef, rest
        self.ref_params, self.reference, self.need_old = ref_params, reference, need_old_logp
        self.workdir, self.feature_keys = workdir, tuple(feature_keys)
        self.reward_names = tuple(reward_names)
        self.sharding = data_sharding(mesh)
        self.key = jax.random.key(seed)
        eos = tokenizer.eos_token_id
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids or [0])[0])
        self.index = 0  # next rollout to sample
        self._pending: _Sampled | None = None
        self._resume_state = self._prompt_state()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="grpo-reward")
        g, scale = cfg.group_size, cfg.advantage_scale

        @jax.jit
        def score(scores, lengths, features):
            rewards = jnp.asarray(compose(scores, lengths, features), jnp.float32)
            valid = jnp.isfinite(rewards)
            adv = grpo_advantages(jnp.where(valid, rewards, 0.0), g, scale, valid)
            return rewards, adv, valid

        kw = {"temperature": cfg.temperature, "chunk_size": cfg.logits_chunk_size}

        @jax.jit
        def logprobs(params, rest, ref_params, batch):
            args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
            out = {}
            if need_old_logp:
                out["old_logp"] = completion_logprobs(
                    nnx.merge(graphdef, params, rest), *args, **kw
                )
            if reference != "none":
                ref = lora_base_state(params) if reference == "lora_base" else ref_params
                out["ref_logp"] = completion_logprobs(nnx.merge(graphdef, ref, rest), *args, **kw)
            return out

        self._score, self._logprobs = score, logprobs

    # -- the DataIterator protocol (train_loop checkpoints get_state with the train state) --

    def __iter__(self) -> RolloutStream:
        return self

    def __next__(self) -> dict:
        """The loop's batch is an empty placeholder: the step samples from its own state."""
        return {}

    def get_state(self) -> dict:
        return {"prompts": self._resume_state, "index": self.index - (self._pending is not None)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._pending = None
        self.index = int(state["index"])
        if state.get("prompts") is not None:
            self.prompts.set_state(dict(state["prompts"]))
        self._resume_state = self._prompt_state()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _prompt_state(self) -> dict | None:
        get = getattr(self.prompts, "get_state", None)
        return dict(get()) if get else None

    # -- one iteration --

    def next_batch(self, params: Any, step: int) -> tuple[dict, dict]:
        """The scored update batch for optimizer step `step` (1-based) and its host stats."""
        timing: dict[str, float] = {}
        if self._pending is None:
            self._pending = self._sample(params, timing)
        current = self._pending
        self._pending = None
        if self.cfg.overlap_rewards:
            # Sample the next batch while the judges score this one.
            self._pending = self._sample(params, timing)
        batch, stats = self._finish(current, step)
        pending = self._pending
        self._resume_state = pending.prompt_state if pending else self._prompt_state()
        rollout_s = timing.get("time/rollout_s", 0.0)
        if rollout_s:
            stats["throughput/rollout_tokens_per_s"] = timing["rollout/tokens"] / rollout_s
        return batch, {**stats, **timing}

    def _sample(self, params: Any, timing: dict) -> _Sampled:
        cfg, g = self.cfg, self.cfg.group_size
        prompt_state = self._prompt_state()
        records = list(next(self.prompts))
        if len(records) != cfg.prompts_per_step:
            raise ValueError(
                f"the prompt iterator yielded {len(records)} records, expected "
                f"grpo.prompts_per_step={cfg.prompts_per_step}"
            )
        try:
            texts = [r["prompt"] for r in records]
        except KeyError:
            bad = next(i for i, r in enumerate(records) if "prompt" not in r)
            raise KeyError(
                f"prompt record {bad} has no 'prompt' field; its fields: {sorted(records[bad])}"
            ) from None
        ids, mask = encode_prompts(
            self.tokenizer, texts, max_length=cfg.max_prompt_length, pad_id=self.pad_id,
            bucketed=cfg.bucket_lengths,
        )  # fmt: skip
        ids, mask = np.repeat(ids, g, axis=0), np.repeat(mask, g, axis=0)
        t0 = time.perf_counter()
        model = nnx.merge(self.graphdef, params, self.rest)
        out = generate(
            model, put_batch(ids, self.sharding), put_batch(mask, self.sharding),
            max_new_tokens=cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature,
            top_k=cfg.top_k, top_p=cfg.top_p, rng=jax.random.fold_in(self.key, self.index),
            eos_token_id=self.eos_ids or None, pad_token_id=self.pad_id,
        )  # fmt: skip
        seqs, lengths = jax.device_get((out.sequences, out.lengths))
        t1 = time.perf_counter()
        lengths = np.asarray(lengths, np.int32)
        width = bucket(int(lengths.max()), cfg.max_new_tokens) if cfg.bucket_lengths else None
        seqs = np.asarray(seqs)[:, : width or cfg.max_new_tokens]
        cmask = (np.arange(seqs.shape[1])[None, :] < lengths[:, None]).astype(np.int32)
        seqs = np.where(cmask > 0, seqs, self.pad_id).astype(np.int32)
        host = {
            "input_ids": np.concatenate([ids, seqs], axis=1),
            "attention_mask": np.concatenate([mask, cmask], axis=1),
            "completion_mask": cmask,
            "num_tokens": np.full((ids.shape[0],), cmask.sum(), np.float32),
        }
        batch = put_batch(host, self.sharding)
        if self.need_old or self.reference != "none":
            batch |= self._logprobs(params, self.rest, self.ref_params, batch)
            jax.block_until_ready(batch)
        t2 = time.perf_counter()
        completions = [
            self.tokenizer.decode(row[:n].tolist(), skip_special_tokens=True)
            for row, n in zip(seqs, lengths.tolist(), strict=True)
        ]
        prompts = [t for t in texts for _ in range(g)]
        recs = [r for r in records for _ in range(g)]
        s = _Sampled(
            index=self.index, records=records, prompts=prompts, texts=completions,
            lengths=lengths, batch=batch,
            features=record_features(records, self.feature_keys, g),
        )  # fmt: skip
        s.prompt_state = prompt_state
        s.future = self._pool.submit(_timed, self.reward_fn, recs, completions)
        self.index += 1
        for k, v in (("time/rollout_s", t1 - t0), ("time/logprob_s", t2 - t1)):
            timing[k] = timing.get(k, 0.0) + v
        timing["rollout/tokens"] = timing.get("rollout/tokens", 0) + int(lengths.sum())
        return s

    def _finish(self, s: _Sampled, step: int) -> tuple[dict, dict]:
        t0 = time.perf_counter()
        try:
            scores, judge_s = s.future.result()
        except Exception as e:
            path = os.path.join(self.workdir, "rollouts", f"step_{step}.jsonl")
            dump_rollout(path, s.prompts, s.texts, s.lengths)
            raise RewardFnError(
                f"reward_fn failed on the rollout of step {step} ({type(e).__name__}: {e}); "
                f"its {len(s.texts)} completions are saved in {path}"
            ) from e
        wait_s = time.perf_counter() - t0
        scores = np.asarray(scores, np.float32)
        b = len(s.texts)
        if scores.ndim == 1:
            scores = scores[:, None]
        if scores.ndim != 2 or scores.shape[0] != b:
            raise ValueError(
                f"reward_fn returned scores of shape {scores.shape}; expected [{b}, R] "
                f"(prompts_per_step x group_size rows)"
            )
        if self.reward_names and scores.shape[1] != len(self.reward_names):
            raise ValueError(
                f"reward_fn returned {scores.shape[1]} score columns but reward_names has "
                f"{len(self.reward_names)}: {list(self.reward_names)}"
            )
        rewards, adv, valid = self._score(
            jnp.asarray(scores), jnp.asarray(s.lengths), jax.tree.map(jnp.asarray, s.features)
        )
        batch = dict(s.batch, advantages=jax.device_put(adv, self.sharding))  # on device already
        rewards, valid = np.asarray(rewards), np.asarray(valid)
        r = rewards[valid]
        names = self.reward_names or [str(i) for i in range(scores.shape[1])]
        with np.errstate(all="ignore"):
            col_means = np.nanmean(np.where(np.isfinite(scores), scores, np.nan), axis=0)
        stats = {
            "reward/mean": float(r.mean()) if r.size else float("nan"),
            "reward/std": float(r.std()) if r.size else float("nan"),
            "reward/valid_frac": float(valid.mean()),
            "completion/length": float(s.lengths.mean()),
            "completion/max_length_frac": float(np.mean(s.lengths >= self.cfg.max_new_tokens)),
            "time/judge_s": judge_s,
            "time/judge_wait_s": wait_s,
        }
        stats |= {f"scores/{n}": float(v) for n, v in zip(names, col_means, strict=True)}
        return batch, stats


def _timed(fn: Callable, records: list, texts: list) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn(records, texts)
    return out, time.perf_counter() - t0
