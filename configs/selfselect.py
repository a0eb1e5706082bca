"""Self-Selection RAG / Self-Selection-RGP (arXiv 2502.06148): three prompts, RGP pairs, DPO.

Variants (`--config configs/selfselect.py:VARIANT[,key=value,...]`):
  tiny            CI: a tiny world, a 1-layer decoder, a few steps of each phase (seconds).
  demo            the synthetic world on CPU: a tiny decoder pre-trained in the run to know half
                  the facts, BM25 over a corpus covering another half, RGP + DPO (~2-3 min).
  nq_llama2_13b   NQ-open, Llama-2-13b-chat (LoRA r 16, base as reference), Contriever over the
  tqa_llama2_13b  DPR Wikipedia-2018 passages (`corpus=psgs_w100.tsv`) or BM25 / cached top-k
  nq_mistral_7b   (`retriever=bm25`, `retriever=cached,cached_train=...,cached_test=...`);
  tqa_mistral_7b  TriviaQA-unfiltered likewise; Mistral-7B-Instruct-v0.2.
  bench           the demo with a larger decoder (timing).
Shortcuts: shots (few-shot demonstrations, 0 = zero-shot), retriever (bm25 / dense / cached),
  k, corpus, index, cached_train, cached_test, encoder, model, lr, beta, dpo_epochs,
  samples (RGP samples per question), max_train, max_test, backend (local / client),
  llm_model, llm_url.
The prompts, the RGP recipe and the DPO settings of the paper are unknown: every default here is
a reconstruction (docs/selfselect.md).
"""

from configs.common import apply_overrides, config_from, parse_arg
from jaxmethods.methods.selfselect.config import SelfSelectConfig

VARIANTS = ("tiny", "demo", "nq_llama2_13b", "tqa_llama2_13b", "nq_mistral_7b",
            "tqa_mistral_7b", "bench")  # fmt: skip
SHORTCUTS = {
    "shots": "prompts.num_shots",
    "retriever": "retrieval.kind",
    "k": "retrieval.k",
    "corpus": "retrieval.corpus",
    "index": "retrieval.index",
    "cached_train": "retrieval.cached_train",
    "cached_test": "retrieval.cached_test",
    "encoder": "retrieval.encoder",
    "model": "model.source",
    "lr": "optim.lr",
    "beta": "dpo.beta",
    "dpo_epochs": "dpo.epochs",
    "samples": "rgp.num_samples",
    "max_train": "data.max_train",
    "max_test": "data.max_test",
    "backend": "generation.backend",
    "llm_model": "generation.llm.model",
    "llm_url": "generation.llm.base_url",
}

# Compact templates for the tiny decoder: the same three prompts, fewer tokens.
TINY_PROMPTS = dict(
    closed_book="Q: {question} A:",
    rag="{passages} ; Q: {question} A:",
    select="{passages} ; Q: {question} ; {responses} ; Final:",
    passage="{text}",
    response="R{index}: {answer}",
    passage_separator=" ; ",
    response_separator=" ; ",
)
HF_MODELS = {
    "llama2_13b": ("meta-llama/Llama-2-13b-chat-hf", "[INST] ", " [/INST]"),
    "mistral_7b": ("mistralai/Mistral-7B-Instruct-v0.2", "[INST] ", " [/INST]"),
}


def _tiny_model(c, hidden, layers, vocab):
    c.model.hidden_size, c.model.intermediate_size, c.model.num_layers = hidden, 2 * hidden, layers
    c.model.num_heads, c.model.num_kv_heads, c.model.head_dim = 4, 2, hidden // 4
    c.model.vocab_size = vocab
    for k, v in TINY_PROMPTS.items():
        c.prompts[k] = v


def _demo(c):
    _tiny_model(c, 48, 2, 768)
    c.data.pretrain_epochs, c.data.pretrain_lr, c.data.pretrain_batch_size = 5.0, 3e-3, 32
    c.retrieval.k = 3
    c.generation.prompt_length, c.generation.max_new_tokens, c.generation.batch_size = 64, 4, 64
    c.rgp.num_samples, c.rgp.temperature, c.rgp.max_pairs, c.rgp.chunk_size = 4, 1.0, 2, 200
    c.data.world.num_entities, c.data.world.num_test = 440, 200
    c.dpo.beta, c.dpo.epochs, c.dpo.batch_size, c.dpo.max_length = 0.1, 8.0, 32, 64
    c.dpo.nll_weight = 1.0  # keeps EOS and the chosen answers likely (see docs/selfselect.md)
    c.optim.lr, c.optim.warmup_ratio, c.optim.weight_decay = 1e-3, 0.05, 0.0
    c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 100_000, 50, False


def _paper(c, dataset, model):
    source, user_start, user_end = HF_MODELS[model]
    c.data.source = dataset
    c.data.test_split = "validation"  # NQ-open test (3,610) / TriviaQA-unfiltered dev (11,313)
    c.model.source, c.model.dtype, c.model.remat = source, "bfloat16", "full"
    c.model.logits_chunk_size = 256
    c.model.lora.rank, c.model.lora.alpha, c.model.lora.dropout = 16, 32.0, 0.05
    c.prompts.user_start, c.prompts.user_end = user_start, user_end
    c.retrieval.kind, c.retrieval.k = "dense", 5
    c.retrieval.encoder = "facebook/contriever-msmarco"
    c.retrieval.corpus = "psgs_w100.tsv"
    c.generation.prompt_length, c.generation.max_new_tokens, c.generation.batch_size = 1024, 32, 16
    c.rgp.num_samples, c.rgp.temperature, c.rgp.max_pairs, c.rgp.chunk_size = 4, 0.7, 2, 256
    c.rgp.passage_variants = 1
    c.data.max_train = 20000
    c.dpo.beta, c.dpo.epochs, c.dpo.batch_size, c.dpo.max_length = 0.1, 2.0, 4, 1280
    c.optim.lr, c.optim.warmup_ratio, c.optim.grad_accum = 5e-5, 0.1, 8
    c.loop.checkpoint_every = 200


def get_config(arg: str | None = None):
    variant, overrides = parse_arg(arg, VARIANTS, default="demo", where=__file__)
    c = config_from(SelfSelectConfig)
    c.name = f"selfselect_{variant}"
    if variant == "tiny":
        _tiny_model(c, 32, 1, 320)
        w = c.data.world
        w.num_entities, w.num_test, w.num_reading_entities = 40, 16, 40
        w.reading_rows, w.format_rows, w.relevance_rows, w.known_repeats = 48, 16, 16, 1
        c.data.pretrain_epochs, c.data.pretrain_lr, c.data.pretrain_batch_size = 8.0, 5e-3, 16
        c.retrieval.k = 2
        c.generation.prompt_length, c.generation.max_new_tokens, c.generation.batch_size = 64, 3, 16
        c.rgp.num_samples, c.rgp.temperature, c.rgp.chunk_size = 2, 1.5, 8
        c.rgp.passage_variants = 1
        c.dpo.epochs, c.dpo.batch_size, c.dpo.max_length, c.dpo.eval_pairs = 1.0, 8, 64, 0
        c.optim.lr, c.optim.warmup_ratio = 1e-3, 0.0
        c.loop.checkpoint_every, c.loop.log_every, c.loop.progress = 1000, 1, False
    elif variant == "demo":
        _demo(c)
    elif variant == "bench":
        _demo(c)
        _tiny_model(c, 128, 4, 768)
    else:
        dataset, _, model = variant.partition("_")
        _paper(c, dataset, model)
    return apply_overrides(c, overrides, shortcuts=SHORTCUTS, where=__file__)
