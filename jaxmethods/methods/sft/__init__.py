"""Supervised fine-tuning of a decoder LM on prompt/response pairs (response-only loss)."""

from jaxmethods.methods.sft.config import DataConfig, SFTConfig
from jaxmethods.methods.sft.run import run

__all__ = ["DataConfig", "SFTConfig", "run"]
