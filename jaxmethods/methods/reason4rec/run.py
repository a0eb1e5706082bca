"""Reason4Rec end to end: Summarizer -> reward model -> reason distillation -> Reasoner ->
Predictor (and the direct Predictor baseline), five adapters of one frozen base, then the
three-step inference on the test rows and one table.

Every training phase resumes from its checkpoints (`<workdir>/<expert>/`), the distillation from
its JSONL; generation is greedy, so a rerun rebuilds the same intermediate texts.
"""

from __future__ import annotations

import logging
import os
import time

import jax
import numpy as np
import pandas as pd

from jaxmethods.methods.reason4rec.config import EXPERTS, Reason4RecConfig, from_config_dict
from jaxmethods.methods.reason4rec.context import SUMMARY_COLUMN, HistoryIndex
from jaxmethods.methods.reason4rec.distill import Target, distill_reasons
from jaxmethods.methods.reason4rec.evaluate import (
    cost_table,
    error_metrics,
    mean_baselines,
    paired_mae_gap,
    results_table,
)
from jaxmethods.methods.reason4rec.experts import (
    ChatFormat,
    RatingScorer,
    generate_texts,
    train_expert,
)
from jaxmethods.methods.reason4rec.prompts import get_prompts, rating_target
from jaxmethods.methods.reason4rec.setup import build_base, make_teacher
from jaxmethods.methods.reason4rec.synthetic import reason_text
from jaxmethods.methods.reason4rec.tables import load_tables, sample_targets, target_prompts
from jaxmethods.models.multi_lora import apply_multi_lora
from jaxmethods.train import make_mesh, make_summary
from jaxmethods.train.metrics import write_json_atomic

log = logging.getLogger(__name__)


def _multi_lora(cfg: Reason4RecConfig, model):
    e = [getattr(cfg, n) for n in EXPERTS]
    return apply_multi_lora(
        model, EXPERTS, rank=[x.rank for x in e], alpha=[x.alpha for x in e],
        dropout=[x.dropout for x in e], target_modules=cfg.target_modules,
        head_trainable=[n for n, x in zip(EXPERTS, e) if x.head_trainable], seed=cfg.seed + 1,
    )  # fmt: skip


def run(config, workdir: str) -> dict:
    t_start = time.perf_counter()
    cfg = from_config_dict(config)
    os.makedirs(workdir, exist_ok=True)
    mesh = make_mesh(cfg.mesh)
    P, cls, g = get_prompts(cfg.prompts), cfg.data.product_class, cfg.generation
    tables = load_tables(cfg)
    train, test = tables.train, tables.test
    metrics: dict[str, float] = dict(tables.counts)
    item_lines = cfg.data.max_item_history
    lines = {"max_lines": cfg.data.max_history,
             "max_item_lines": None if item_lines < 0 else item_lines}  # fmt: skip
    summ_prompts = [P.summarizer.format(cls=cls, title=r.title, rating=r.ratings, review=r.reviews)
                    for r in train.itertuples()]  # fmt: skip
    pre_docs: list[tuple[str, str | None]] = []
    if tables.world is not None and cfg.pretrain_epochs > 0:  # the tiny base's LM text
        idx = HistoryIndex(train.assign(**{SUMMARY_COLUMN: train.teacher_summary}), **lines)
        for r in train.itertuples():
            tp = target_prompts(P, idx, r, cls)
            if not tp.ctx.cold:
                pre_docs += [(tp.reason, None), (tp.direct, None),
                             (tp.predictor.replace("{analysis}", r.reviews),
                              rating_target(r.ratings))]  # fmt: skip
    tokenizer, model, pre = build_base(cfg, mesh, workdir, tables, summ_prompts, pre_docs)
    metrics |= pre
    ml = _multi_lora(cfg, model)
    fmt = ChatFormat(tokenizer, max_length=cfg.max_length)
    scorer = RatingScorer(ml, fmt, batch_size=g.batch_size, length_multiple=g.length_multiple)
    common = dict(mesh=mesh, workdir=workdir, loop=cfg.loop, seed=cfg.seed, pad_id=fmt.pad_id,
                  length_multiple=g.length_multiple)  # fmt: skip
    gen = dict(batch_size=g.batch_size, length_multiple=g.length_multiple)

    # 1. Summarizer: SFT on the teacher's summaries, then it summarises every train row.
    history = train.copy()
    if cfg.data.student_summaries_file:
        from jaxmethods.methods.reason4rec.data import read_interactions

        s, _ = read_interactions(cfg.data.student_summaries_file, drop_missing_reviews=False)
        keys = ["user_id", "item_id", "unixReviewTime"]
        history = history.merge(s.drop_duplicates(keys)[[*keys, SUMMARY_COLUMN]], on=keys,
                                how="left")  # fmt: skip
        history[SUMMARY_COLUMN] = history[SUMMARY_COLUMN].fillna("")
    else:
        ex = [fmt.example(p, s) for p, s in zip(summ_prompts, train.teacher_summary) if s]
        metrics |= train_expert(ml, "summarizer", ex, cfg.summarizer, **common)
        texts, cost = generate_texts(ml, "summarizer", fmt, summ_prompts,
                                     max_new_tokens=g.max_new_tokens_summary, **gen)  # fmt: skip
        history[SUMMARY_COLUMN] = texts
        metrics |= {f"cost/summarize/{k}": v for k, v in cost.items()}
        metrics["cost/summarize/rows"] = float(len(texts))
        metrics["summarizer/exact_match"] = float(np.mean(
            [a.strip() == b.strip() for a, b in zip(texts, train.teacher_summary)]))  # fmt: skip
    student = HistoryIndex(history, **lines)
    # The reward model's histories carry the teacher summaries (the authors' step 2 reads
    # train_aspect_preference_summary.pkl); everything else the Summarizer's.
    has_teacher = bool((train.teacher_summary != "").all())
    teacher_hist = history.assign(**{SUMMARY_COLUMN: train.teacher_summary})
    rm_index = HistoryIndex(teacher_hist if has_teacher else history, **lines)
    rm_rows, rs_rows = sample_targets(train, student, cfg)

    # 2. Reward model: the true review in the analysis slot.
    rm_ex = []
    for r in train.iloc[rm_rows].itertuples():
        tp = target_prompts(P, rm_index, r, cls)
        rm_ex.append(fmt.example(tp.predictor.replace("{analysis}", r.reviews),
                                 rating_target(r.ratings)))  # fmt: skip
    metrics |= train_expert(ml, "reward", rm_ex, cfg.reward, **common)

    # 3. Reason distillation against the reward model.
    rs = train.iloc[rs_rows].reset_index(drop=True)
    tps = [target_prompts(P, student, r, cls) for r in rs.itertuples()]
    targets = [Target(f"{r.user_id}|{r.item_id}|{r.unixReviewTime}", float(r.ratings), tp.reason,
                      tp.hint, tp.direct, tp.predictor) for r, tp in zip(rs.itertuples(), tps)]  # fmt: skip
    d = cfg.distill
    if cfg.data.reasons_file:  # the authors' released distilled reasons
        accepted, dstats = released_reasons(cfg.data.reasons_file, targets)
    else:
        accepted, dstats = distill_reasons(
            targets, make_teacher(cfg, workdir, tables, rs, tps),
            lambda ps: scorer.score("reward", ps), os.path.join(workdir, "reasons.jsonl"),
            tau=d.tau, max_retries=d.max_retries, temperature=d.temperature,
            max_tokens=d.max_tokens, chunk_size=d.chunk_size,
        )  # fmt: skip
    metrics |= {f"distill/{k}": v for k, v in dstats.items()}
    keep = [j for j, t in enumerate(targets) if t.key in accepted]
    if not keep:
        raise RuntimeError("reason distillation accepted no reason: raise config.distill.tau")

    # 4. Reasoner on the accepted reasons; 5. Predictor on its own (greedy) reasons; the direct
    # Predictor on the same targets without reasoning.
    ex = [fmt.example(tps[j].reason, accepted[targets[j].key]) for j in keep]
    metrics |= train_expert(ml, "reasoner", ex, cfg.reasoner, **common)
    replies, _ = generate_texts(ml, "reasoner", fmt, [tps[j].reason for j in keep],
                                max_new_tokens=g.max_new_tokens_reason, **gen)  # fmt: skip
    ex = [fmt.example(tps[j].predictor.replace("{analysis}", a), rating_target(rs.ratings[j]))
          for j, a in zip(keep, replies)]  # fmt: skip
    metrics |= train_expert(ml, "predictor", ex, cfg.predictor, **common)
    ex = [fmt.example(tps[j].direct, rating_target(rs.ratings[j])) for j in keep]
    metrics |= train_expert(ml, "direct", ex, cfg.direct, **common)

    # 6. Three-step inference on the test rows (cold rows: the global mean, counted).
    def reason_fn(prompts):
        return generate_texts(ml, "reasoner", fmt, prompts,
                              max_new_tokens=g.max_new_tokens_reason, **gen)  # fmt: skip

    def score_fn(adapter, prompts):
        tokens = scorer.tokens
        return scorer.score(adapter, prompts), scorer.tokens - tokens

    preds, m = infer(reason_fn, score_fn, P, student, test, cls)
    metrics |= m
    if tables.world is not None:  # the Reasoner against the rule-based teacher's right reason
        got = preds["reason4rec"]["reason"].tolist()
        want = [reason_text(tables.world, u, i) for u, i in zip(test.user_id, test.item_id)]
        warm = [j for j, g in enumerate(got) if g]
        metrics["test/reason_exact"] = float(np.mean([got[j] == want[j] for j in warm] or [0]))
    truth = test[["user_id", "item_id", "ratings"]]
    preds |= mean_baselines(train, test)
    for name, p in preds.items():
        metrics |= {f"test/{name}/{k}": v for k, v in error_metrics(p, truth).items()}
    gap, se = paired_mae_gap(preds["reason4rec"], preds["direct"], truth)
    metrics |= {"test/direct_minus_reason4rec_mae": gap, "test/direct_minus_reason4rec_se": se}
    metrics["time/total_s"] = time.perf_counter() - t_start
    return _report(metrics, preds, test, workdir)


def released_reasons(path: str, targets: list[Target]) -> tuple[dict[str, str], dict]:
    """The reasons of `distilling_high_quality_reasons` (converted to Parquet; column
    `personalized_analysis`) for the sampled targets, keyed like `Target.key`."""
    from jaxmethods.methods.reason4rec.data import read_interactions

    df, _ = read_interactions(path, drop_missing_reviews=False)
    if "personalized_analysis" not in df.columns:
        raise ValueError(f"{path}: no column 'personalized_analysis'")
    df = df[df.personalized_analysis.map(lambda v: isinstance(v, str) and bool(v.strip()))]
    have = {f"{r.user_id}|{r.item_id}|{r.unixReviewTime}": r.personalized_analysis
            for r in df.itertuples()}  # fmt: skip
    accepted = {t.key: have[t.key] for t in targets if t.key in have}
    n = float(len(targets))
    stats = {"targets": n, "accepted": float(len(accepted)), "accept_rate": len(accepted) / n,
             "first_try_rate": float("nan"), "tau_pass_rate": float("nan"), "candidates": 0.0,
             "rejected_forbidden": 0.0, "rejected_tau": 0.0, "dropped": n - len(accepted)}  # fmt: skip
    return accepted, stats


def infer(reason_fn, score_fn, P, index: HistoryIndex, test: pd.DataFrame, cls: str):
    """({"reason4rec", "direct"} prediction frames, metrics incl. per-step cost).

    `reason_fn(prompts) -> (texts, cost)` is the Reasoner's greedy generation and
    `score_fn(adapter, prompts) -> [N]` the expected-rating head; rows without a user or item
    history (cold start) get the history's global mean and are counted."""
    tps = [target_prompts(P, index, r, cls) for r in test.itertuples()]
    warm = [j for j, tp in enumerate(tps) if not tp.ctx.cold]
    out = {k: np.full(len(test), index.global_mean) for k in ("reason4rec", "direct")}
    metrics = {"test/cold_start": float(len(test) - len(warm))}
    reasons, cost = reason_fn([tps[j].reason for j in warm]) if warm else ([], {})
    metrics |= {f"cost/reason/{k}": v for k, v in cost.items()} | {"cost/reason/rows": len(warm)}
    for step, adapter, col, prompts in (
        ("predict", "predictor", "reason4rec",
         [tps[j].predictor.replace("{analysis}", r) for j, r in zip(warm, reasons)]),
        ("direct", "direct", "direct", [tps[j].direct for j in warm]),
    ):  # fmt: skip
        t0 = time.perf_counter()
        scores, tokens = score_fn(adapter, prompts) if warm else (np.zeros(0), 0)
        metrics |= {f"cost/{step}/seconds": time.perf_counter() - t0, f"cost/{step}/rows": len(warm),
                    f"cost/{step}/prompt_tokens": float(tokens), f"cost/{step}/new_tokens": 0.0}  # fmt: skip
        out[col][warm] = scores
    frames = {k: pd.DataFrame({"user_id": test.user_id.to_numpy(),
                               "item_id": test.item_id.to_numpy(), "pred": v})
              for k, v in out.items()}  # fmt: skip
    frames["reason4rec"]["reason"] = ""
    frames["reason4rec"].loc[warm, "reason"] = reasons
    return frames, metrics


def _report(metrics: dict, preds: dict, test: pd.DataFrame, workdir: str) -> dict:
    text = results_table(metrics, ("reason4rec", "direct", "item_mean", "user_mean"))
    if "test/reason_exact" in metrics:
        text += (f"\n\nReasoner output equal to the teacher's correct reason on "
                 f"{metrics['test/reason_exact']:.3f} of the test rows")  # fmt: skip
    text += (
        f"\n\nMAE(direct) - MAE(Reason4Rec) = {metrics['test/direct_minus_reason4rec_mae']:.4f} "
        f"± {metrics['test/direct_minus_reason4rec_se']:.4f} (paired s.e.); cold-start rows "
        f"(global mean): {int(metrics['test/cold_start'])}; rows with missing reviews skipped: "
        f"{int(metrics['data/missing_reviews_train'])} train, "
        f"{int(metrics['data/missing_reviews_test'])} test\n"
        f"reason distillation: {int(metrics['distill/accepted'])}/"
        f"{int(metrics['distill/targets'])} targets kept (rate "
        f"{metrics['distill/accept_rate']:.3f}; first try {metrics['distill/first_try_rate']:.3f}"
        f"), tau filter passed {metrics['distill/tau_pass_rate']:.3f} of "
        f"{int(metrics['distill/candidates'] - metrics['distill/rejected_forbidden'])} scored "
        f"candidates, {int(metrics['distill/rejected_forbidden'])} rejected for forbidden strings"
    )
    costs = cost_table(metrics)
    path = os.path.join(workdir, "predictions.jsonl")
    if jax.process_index() == 0:
        print(text + "\n\n" + costs)
        rows = test[["user_id", "item_id", "ratings"]].copy()
        for name, p in preds.items():
            rows[name] = p["pred"].to_numpy()
        rows["reason"] = preds["reason4rec"]["reason"].to_numpy()
        rows.to_json(path, orient="records", lines=True)
        write_json_atomic(os.path.join(workdir, "cost.json"),
                          {k: v for k, v in metrics.items() if k.startswith("cost/")})  # fmt: skip
    return make_summary(
        metrics,
        tables={"reason4rec": text, "cost": costs},
        artifacts={"predictions": path, "reasons": os.path.join(workdir, "reasons.jsonl")},
    )
