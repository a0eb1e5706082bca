"""Embedding-dimension scaling in collaborative filtering (arXiv 2509.15709): BPR, NeuMF,
LightGCN, SGL and BPR_Drop trained at every size of a power-of-two grid. See docs/cf_scaling.md.

    from jaxmethods.methods.cf_scaling import CFScalingConfig, run, classify_curve
"""

from jaxmethods.methods.cf_scaling.config import (
    MODELS,
    CFScalingConfig,
    ModelHParams,
    SweepConfig,
    TrainConfig,
    from_config_dict,
)
from jaxmethods.methods.cf_scaling.curves import classify_curve, find_double_peak
from jaxmethods.methods.cf_scaling.objectives import ModelDef, get_model_def
from jaxmethods.methods.cf_scaling.plan import Group, Replica, plan_groups
from jaxmethods.methods.cf_scaling.prepare import PreparedData
from jaxmethods.methods.cf_scaling.presets import PAPER_DIM_RANGES
from jaxmethods.methods.cf_scaling.report import curves, markdown_table, plot_curves
from jaxmethods.methods.cf_scaling.run import popularity_metrics, run, run_single, run_sweep
from jaxmethods.methods.cf_scaling.trainer import build_group_fns, train_group

__all__ = [
    "MODELS",
    "PAPER_DIM_RANGES",
    "CFScalingConfig",
    "Group",
    "ModelDef",
    "ModelHParams",
    "PreparedData",
    "Replica",
    "SweepConfig",
    "TrainConfig",
    "build_group_fns",
    "classify_curve",
    "curves",
    "find_double_peak",
    "from_config_dict",
    "get_model_def",
    "markdown_table",
    "plan_groups",
    "plot_curves",
    "popularity_metrics",
    "run",
    "run_single",
    "run_sweep",
    "train_group",
]
