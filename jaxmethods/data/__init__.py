"""Dataset loaders in the original datasets' formats, tokenisation and synthetic stand-ins.

    from jaxmethods.data import load_tofu, tokenize_qa, build_tiny_tokenizer

Collaborative-filtering interactions live in `jaxmethods.data.recsys`. Names are imported on
first use (transformers/tokenizers load only when a tokenizer is needed).
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "process_category": "amazon2018",
    "read_samples_csv": "amazon2018",
    "forget_retain_stream": "forget_retain",
    "gather_examples": "forget_retain",
    "sft_stream": "forget_retain",
    "jsonl_objects": "jsonl",
    "chunk_corpus": "muse",
    "OpenQAExample": "open_qa",
    "load_open_qa": "open_qa",
    "read_dpr_qa_csv": "open_qa",
    "read_nq_open_jsonl": "open_qa",
    "read_triviaqa_json": "open_qa",
    "knowmem_examples": "muse",
    "load_muse": "muse",
    "pretraining_instance": "muse",
    "verbmem_examples": "muse",
    "BatchStream": "pipeline",
    "batches_per_epoch": "pipeline",
    "epoch_permutation": "pipeline",
    "micro_batch_indices": "pipeline",
    "step_indices": "pipeline",
    "step_stream": "pipeline",
    "PreferenceCorpus": "preferences",
    "TextPair": "preferences",
    "load_corpus": "preferences",
    "save_corpus": "preferences",
    "load_prism_pairs": "prism",
    "load_reddit_pairs": "reddit_tldr",
    "synthetic_tofu": "synthetic_authors",
    "write_tofu_folder": "synthetic_authors",
    "synthetic_amazon": "synthetic_catalog",
    "make_synthetic_corpus": "synthetic_prefs",
    "LLAMA2_CHAT_TEMPLATE": "tofu",
    "MUSE_QA_TEMPLATE": "tofu",
    "QATemplate": "tofu",
    "left_pad_prompts": "tofu",
    "load_tofu": "tofu",
    "pad_examples": "tofu",
    "tokenize_qa": "tofu",
    "tokenize_rows": "tofu",
    "build_tiny_tokenizer": "tokenizer",
    "user_split_pairs": "user_splits",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
