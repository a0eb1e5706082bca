"""One GRPO iteration (rollout + update) of `jaxmethods.train.grpo` against TRL's `GRPOTrainer`.

Both sides train the same tiny random decoder (built here, exported to HF safetensors with
`save_pretrained` and loaded by TRL with `AutoModelForCausalLM`), with the same tokenizer,
prompts, group size G, completions per step, max new tokens, sampler (temperature 1), loss
(DAPO token normalisation, beta 0.01 with a frozen reference copy, one update per batch),
AdamW and a reward computed in Python (the fraction of 'a' among a completion's letters). Both
run the whole trainer, host work included: our `train_grpo` (strictly on-policy order,
`overlap_rewards=False`, since the reward is instant) and `GRPOTrainer.train()`.

Per iteration the median over the steps after `--warmup` (compilation) is reported, split into
  rollout  = sampling (our `generate`; TRL's `_generate`)
  score    = rewards, advantages and the reference log-prob pass (our logprob pass + judge wait;
             TRL: the rest of `_generate_and_score_completions`)
  update   = the optimizer step (forward + backward + AdamW)
The goal of issue 14 is at least 2x TRL per iteration on CPU. On an accelerator (JAX side
only, `--no-trl`) it reports rollout tokens/s and the update's MFU (analytic 6·N·tokens FLOPs).

    python benchmarks/grpo_step.py                   # CPU; TRL runs in /work/torchenv
    python benchmarks/grpo_step.py --torch-python /path/to/python --out runs/bench/grpo.json
Writes JSON to --out (default runs/bench/grpo_step.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROMPTS = ["a b c", "d e f", "g h a", "b c d", "e f g", "h a b", "c d e", "f g h"]
PRESETS = {
    "smoke": dict(hidden=32, inter=64, layers=1, heads=2, kv=2, vocab=256, prompts=2, group=2,
                  max_new_tokens=4, steps=2, warmup=1),
    "cpu": dict(hidden=128, inter=344, layers=2, heads=4, kv=2, vocab=256, prompts=4, group=4,
                max_new_tokens=32, steps=8, warmup=2),
    "gpu": dict(hidden=2048, inter=5504, layers=16, heads=16, kv=8, vocab=256, prompts=16,
                group=8, max_new_tokens=256, steps=8, warmup=2),
}  # fmt: skip


def frac_a(texts):
    out = []
    for t in texts:
        letters = [c for c in t if c.isalpha()]
        out.append(letters.count("a") / max(len(letters), 1))
    return out


def _median_after(rows, key, warmup):
    vals = [r[key] for r in rows[warmup:] if key in r]
    return statistics.median(vals) if vals else None


def export_model(p: dict, folder: str):
    """The tiny tokenizer and decoder, saved as an HF folder; returns (model, tokenizer)."""
    from flax import nnx

    from jaxmethods.data.tokenizer import build_tiny_tokenizer
    from jaxmethods.hf import save_pretrained
    from jaxmethods.models.decoder import DecoderConfig, DecoderLM

    tok = build_tiny_tokenizer([" ".join("abcdefgh") * 4, *PROMPTS], vocab_size=p["vocab"])
    cfg = DecoderConfig.tiny(
        vocab_size=len(tok), hidden_size=p["hidden"], intermediate_size=p["inter"],
        num_layers=p["layers"], num_heads=p["heads"], num_kv_heads=p["kv"],
        head_dim=p["hidden"] // p["heads"], bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    model = DecoderLM(cfg, rngs=nnx.Rngs(0))
    save_pretrained(model, folder, tokenizer=tok)
    return model, tok


def run_jax(p: dict, model, tok, workdir: str) -> dict:
    import jax
    import numpy as np

    from benchmarks.timing import device_peak_flops, environment
    from jaxmethods.train import LoopConfig, OptimConfig, make_mesh
    from jaxmethods.train.grpo import GRPOConfig, prompt_stream, train_grpo

    cfg = GRPOConfig(
        group_size=p["group"], prompts_per_step=p["prompts"], max_prompt_length=32,
        max_new_tokens=p["max_new_tokens"], kl_coef=0.01, reference="frozen",
        overlap_rewards=False, bucket_lengths=False,
    )  # fmt: skip
    mesh = make_mesh()
    records = [{"prompt": s} for s in PROMPTS]
    t0 = time.perf_counter()
    result = train_grpo(
        model=model, tokenizer=tok,
        prompts=prompt_stream(records, prompts_per_step=p["prompts"], seed=0),
        reward_fn=lambda recs, texts: np.asarray(frac_a(texts), np.float32)[:, None],
        compose=lambda s, n, f: s[:, 0], cfg=cfg,
        optim=OptimConfig(lr=1e-5, schedule="constant", max_grad_norm=1.0),
        num_steps=p["steps"], mesh=mesh, workdir=workdir,
        loop=LoopConfig(checkpoint_every=0, log_every=1, progress=False),
    )  # fmt: skip
    total = time.perf_counter() - t0
    rows, w = result.metrics, p["warmup"]
    med = {k: _median_after(rows, k, w) for k in (
        "time/iteration_s", "time/rollout_s", "time/logprob_s", "time/judge_wait_s",
        "time/update_s", "throughput/rollout_tokens_per_s", "throughput/train_tokens_per_s",
        "completion/length", "time/device_idle_frac")}  # fmt: skip
    it = med["time/iteration_s"]
    rollout, update = med["time/rollout_s"], med["time/update_s"]
    n_params = sum(x.size for x in jax.tree.leaves(model))
    seq = 32 + p["max_new_tokens"]  # max_prompt_length bucket is not used (bucket_lengths=False)
    train_tokens = p["prompts"] * p["group"] * seq
    peak = device_peak_flops()
    mfu = (
        None if peak is None else 6 * n_params * train_tokens / update / (peak * len(jax.devices()))
    )
    return {
        "iteration_s": it, "rollout_s": rollout, "score_s": it - rollout - update,
        "update_s": update, "logprob_s": med["time/logprob_s"],
        "rollout_tokens_per_s": med["throughput/rollout_tokens_per_s"],
        "train_tokens_per_s": med["throughput/train_tokens_per_s"],
        "completion_length": med["completion/length"],
        "device_idle_frac": med["time/device_idle_frac"], "update_mfu": mfu,
        "first_iteration_s": rows[0]["time/iteration_s"], "total_s": total,
        "num_params": int(n_params), "environment": environment(mesh),
    }  # fmt: skip


# ---- TRL side (runs under the torch interpreter; imports no JAX) ----


def run_trl(p: dict, folder: str, workdir: str) -> dict:
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    n = p["prompts"] * p["steps"]
    data = Dataset.from_dict({"prompt": [PROMPTS[i % len(PROMPTS)] for i in range(n)]})
    times = {"gen": [], "gen_score": [], "step": []}

    class Timed(trl.GRPOTrainer):
        def _generate(self, prompts):
            t0 = time.perf_counter()
            out = super()._generate(prompts)
            times["gen"].append(time.perf_counter() - t0)
            return out

        def _generate_and_score_completions(self, inputs):
            t0 = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            times["gen_score"].append(time.perf_counter() - t0)
            return out

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times["step"].append(time.perf_counter() - self.t0)

    def reward(completions, **kw):
        return frac_a(completions)

    b = p["prompts"] * p["group"]
    args = trl.GRPOConfig(
        output_dir=workdir, per_device_train_batch_size=b, gradient_accumulation_steps=1,
        num_generations=p["group"], max_completion_length=p["max_new_tokens"],
        temperature=1.0, top_p=1.0, beta=0.01, loss_type="dapo", num_iterations=1,
        learning_rate=1e-5, lr_scheduler_type="constant", max_grad_norm=1.0,
        max_steps=p["steps"], logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=True, bf16=False, seed=0, disable_tqdm=True, shuffle_dataset=False,
    )  # fmt: skip
    trainer = Timed(model=model, reward_funcs=reward, args=args, train_dataset=data,
                    processing_class=tok, callbacks=[StepClock()])  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    w = p["warmup"]
    step = statistics.median(times["step"][w:])
    gen = statistics.median(times["gen"][w:])
    gen_score = statistics.median(times["gen_score"][w:])
    lengths = [r["completions/mean_length"] for r in trainer.state.log_history
               if "completions/mean_length" in r]  # fmt: skip
    return {
        "iteration_s": step, "rollout_s": gen, "score_s": gen_score - gen,
        "update_s": step - gen_score, "completion_length": statistics.median(lengths[w:]),
        "rollout_tokens_per_s": b * statistics.median(lengths[w:]) / gen, "total_s": total,
        "versions": {"trl": trl.__version__, "torch": torch.__version__},
        "torch_threads": torch.get_num_threads(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs/bench/grpo_step.json")
    ap.add_argument("--torch-python", default="/work/torchenv/bin/python")
    ap.add_argument("--no-trl", action="store_true")
    ap.add_argument("--trl-worker", help=argparse.SUPPRESS)  # internal: JSON {p, folder, out}
    args = ap.parse_args(argv)
    if args.trl_worker:
        job = json.loads(args.trl_worker)
        with tempfile.TemporaryDirectory() as wd:
            res = run_trl(job["p"], job["folder"], wd)
        with open(job["out"], "w") as f:
            json.dump(res, f)
        return

    from benchmarks.timing import write_json

    p = PRESETS[args.preset]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "hf")
        model, tok = export_model(p, folder)
        trl_res = None
        if not args.no_trl:
            out = os.path.join(tmp, "trl.json")
            job = json.dumps({"p": p, "folder": folder, "out": out})
            env = dict(os.environ, PYTHONPATH="", CUDA_VISIBLE_DEVICES="")
            subprocess.run([args.torch_python, os.path.abspath(__file__), "--trl-worker", job],
                           check=True, env=env)  # fmt: skip
            with open(out) as f:
                trl_res = json.load(f)
        ours = run_jax(p, model, tok, os.path.join(tmp, "jax"))
    result = {"benchmark": "grpo_step", "preset": args.preset, "config": p, "jaxmethods": ours}
    if trl_res is not None:
        result["trl"] = trl_res
        result["speedup_vs_trl"] = {
            k: trl_res[k] / ours[k] for k in ("iteration_s", "rollout_s", "update_s")
        }
        result["at_least_2x_trl"] = result["speedup_vs_trl"]["iteration_s"] >= 2.0
    write_json(args.out, result)
    for name, r in (("jaxmethods", ours), ("trl", trl_res)):
        if r is None:
            continue
        print(f"{name:10s} iteration {r['iteration_s'] * 1e3:8.1f} ms = rollout "
              f"{r['rollout_s'] * 1e3:7.1f} + score {r['score_s'] * 1e3:6.1f} + update "
              f"{r['update_s'] * 1e3:6.1f} (completion length {r['completion_length']:.1f})")  # fmt: skip
    if trl_res is not None:
        print(f"speed-up vs TRL: {result['speedup_vs_trl']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
