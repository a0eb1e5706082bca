"""BalDRO: DRO-balanced LLM unlearning (NPO / SimNPO / SatImp, plain, BalDRO-G, BalDRO-DV).

from jaxmethods.methods.baldro import BalDROConfig, ObjectiveConfig, objective, run
"""

from jaxmethods.methods.baldro.config import (
    BalDROConfig,
    DataConfig,
    EvalConfig,
    FinetuneConfig,
    TrainConfig,
    from_config_dict,
)
from jaxmethods.methods.baldro.evaluation import Evaluator, forget_spread
from jaxmethods.methods.baldro.objective import ObjectiveConfig, objective
from jaxmethods.methods.baldro.run import run
from jaxmethods.methods.baldro.schedule import StepPlan, plan_steps

__all__ = [
    "BalDROConfig",
    "DataConfig",
    "EvalConfig",
    "Evaluator",
    "FinetuneConfig",
    "ObjectiveConfig",
    "StepPlan",
    "TrainConfig",
    "forget_spread",
    "from_config_dict",
    "objective",
    "plan_steps",
    "run",
]
