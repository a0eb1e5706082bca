"""Mesh and sharding rules, the train state and step, the loop, checkpoints and metric logging.

from jaxmethods.train import fit, train_loop, make_mesh, OptimConfig, LoopConfig
"""

from jaxmethods.train.checkpoint import (
    Checkpointer,
    CheckpointRestoreError,
    MissingCheckpointError,
    SaveFailedError,
)
from jaxmethods.train.grpo import (
    ComposeFn,
    GRPOConfig,
    GRPOResult,
    RewardFn,
    RewardFnError,
    prompt_stream,
    train_grpo,
)
from jaxmethods.train.loop import (
    EarlyStopping,
    Eval,
    LoopResult,
    NonFiniteLossError,
    Preempted,
    put_batch,
    train_loop,
)
from jaxmethods.train.mesh import (
    batch_size_multiple,
    data_sharding,
    make_mesh,
    maybe_initialize_distributed,
    replicated,
)
from jaxmethods.train.metrics import (
    MetricWriter,
    make_summary,
    read_jsonl,
    write_json_atomic,
    write_summary,
    write_text_atomic,
)
from jaxmethods.train.optim import (
    OptimConfig,
    hf_max_steps,
    make_optimizer,
    make_schedule,
    num_warmup_steps,
)
from jaxmethods.train.sharding import param_shardings
from jaxmethods.train.state import TrainState
from jaxmethods.train.step import jit_train_step, make_train_step, state_shardings
from jaxmethods.train.trainer import LoopConfig, compile_step, create_state, fit, shard_and_place

__all__ = [
    "CheckpointRestoreError",
    "Checkpointer",
    "ComposeFn",
    "EarlyStopping",
    "Eval",
    "GRPOConfig",
    "GRPOResult",
    "LoopConfig",
    "LoopResult",
    "MetricWriter",
    "MissingCheckpointError",
    "NonFiniteLossError",
    "OptimConfig",
    "Preempted",
    "RewardFn",
    "RewardFnError",
    "SaveFailedError",
    "TrainState",
    "batch_size_multiple",
    "compile_step",
    "create_state",
    "data_sharding",
    "fit",
    "hf_max_steps",
    "jit_train_step",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_summary",
    "make_train_step",
    "maybe_initialize_distributed",
    "num_warmup_steps",
    "param_shardings",
    "prompt_stream",
    "put_batch",
    "read_jsonl",
    "replicated",
    "shard_and_place",
    "state_shardings",
    "train_grpo",
    "train_loop",
    "write_json_atomic",
    "write_summary",
    "write_text_atomic",
]
