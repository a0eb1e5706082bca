"""Self-Selection RAG and Self-Selection-RGP (arXiv 2502.06148): closed-book, RAG and selection
prompts; RGP preference pairs from the model's own samples; DPO (`jaxmethods.train.dpo`)."""

from jaxmethods.methods.selfselect.config import SelfSelectConfig
from jaxmethods.methods.selfselect.run import run

__all__ = ["SelfSelectConfig", "run"]
