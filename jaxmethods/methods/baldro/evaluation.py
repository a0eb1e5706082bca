"""Evaluation of one set of weights: TOFU (forget quality, model utility) or MUSE (verbmem,
knowmem, privleak), plus the spread of the forget set's per-sample NLL."""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import nnx

from jaxmethods.eval.likelihood import sequence_statistics
from jaxmethods.eval.muse_eval import MuseEvalSettings, evaluate_muse
from jaxmethods.eval.tofu_eval import TofuEvalSettings, evaluate_tofu
from jaxmethods.methods.baldro.assets import RunData
from jaxmethods.methods.baldro.config import BalDROConfig


def forget_spread(
    model: nnx.Module, examples: list[dict], pad_id: int, *, batch_size: int, length: int
) -> dict[str, float]:
    """Per-sample average NLL over the forget set: mean, std and the p90 - p10 range."""
    stats = sequence_statistics(
        model, examples, batch_size=batch_size, length=length, pad_id=pad_id
    )
    nll = stats["avg_nll"]
    return {
        "forget_nll_mean": float(nll.mean()),
        "forget_nll_std": float(nll.std()),
        "forget_nll_p10_p90": float(np.percentile(nll, 90) - np.percentile(nll, 10)),
    }


class Evaluator:
    """`evaluate(params) -> (metrics, forget truth ratios or None)` for the run's benchmark.

    Args:
      cfg: the run config (its `eval` section and benchmark).
      graphdef: the decoder's graph; `params` passed to `evaluate` complete it.
      tokenizer, data: the run's tokenizer and data (`RunData.eval_rows`, forget examples).
      retain_truth_ratios: the retain model's per-question forget TRs (TOFU); None leaves
        `forget_quality` out.
    """

    def __init__(
        self,
        cfg: BalDROConfig,
        graphdef: nnx.GraphDef,
        tokenizer: Any,
        data: RunData,
        retain_truth_ratios: np.ndarray | None,
    ):
        self.cfg, self.graphdef, self.tokenizer, self.data = cfg, graphdef, tokenizer, data
        self.retain_tr = retain_truth_ratios

    def evaluate(self, params: Any) -> tuple[dict[str, float], list[float] | None]:
        cfg, e = self.cfg, self.cfg.eval
        model = nnx.merge(self.graphdef, params)
        out: dict[str, Any] = forget_spread(
            model, self.data.forget, self.data.pad_id, batch_size=e.batch_size,
            length=cfg.data.sequence_length,
        )  # fmt: skip
        if not e.enabled:
            return out, None
        if cfg.data.benchmark == "muse":
            s = MuseEvalSettings(
                batch_size=e.batch_size, length=e.length, prompt_length=e.prompt_length,
                use_stemmer=e.use_stemmer,
            )  # fmt: skip
            auc = None if e.retrain_auc < 0 else e.retrain_auc
            out |= evaluate_muse(model, self.tokenizer, self.data.eval_rows, retrain_auc=auc,
                                 settings=s)  # fmt: skip
            return out, None
        s = TofuEvalSettings(
            batch_size=e.batch_size, length=e.length, prompt_length=e.prompt_length,
            max_new_tokens=e.max_new_tokens, use_stemmer=e.use_stemmer,
            gibberish_classifier=e.gibberish_classifier or None,
        )  # fmt: skip
        tofu = evaluate_tofu(
            model, self.tokenizer, self.data.eval_rows, forget_config=cfg.data.forget_split,
            retain_truth_ratios=self.retain_tr, settings=s, with_rouge=e.with_rouge,
        )  # fmt: skip
        truth_ratios = tofu.pop("forget_truth_ratio_values")
        out |= {k: v for k, v in tofu.items() if v is not None}
        return out, truth_ratios
