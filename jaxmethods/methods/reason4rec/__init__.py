"""Reason4Rec (arXiv 2502.02061): Summarizer, reward model, Reasoner and Predictor as LoRA
adapters of one frozen base, reason distillation with the tau filter, three-step inference.

Modules: `convert` (pickle -> Parquet, once), `data` (Parquet reader), `context` (histories),
`prompts` (the authors' templates), `experts` (SFT, scoring, generation per adapter),
`distill` (the resumable tau-filtered distillation), `evaluate` (MAE/RMSE), `run`.
"""
