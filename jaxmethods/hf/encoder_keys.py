"""HF checkpoint key <-> `EncoderModel` parameter path tables for BERT, RoBERTa/XLM-R, DistilBERT.

Keys are written without the base-model prefix; a checkpoint may carry it (`bert.`, `roberta.`,
`distilbert.`; DPR: `question_encoder.bert_model.` / `ctx_encoder.bert_model.`) or not (a bare
`BertModel` / bge-m3). Old BERT checkpoints name LayerNorm parameters `gamma` / `beta`; both
spellings load. `KNOWN_UNUSED` lists the tensors every family may carry that no encoder
parameter uses (MLM / next-sentence heads, position-id buffers): the loader skips exactly these
and logs how many it skipped; anything else unknown is an error.
"""

from __future__ import annotations

from jaxmethods.hf.key_map import Rule

BASE_PREFIXES: dict[str, tuple[str, ...]] = {
    "bert": ("bert.",),
    "roberta": ("roberta.",),
    "xlm-roberta": ("roberta.",),
    "distilbert": ("distilbert.",),
    "dpr": ("question_encoder.bert_model.", "ctx_encoder.bert_model."),
}

KNOWN_UNUSED: tuple[str, ...] = (
    r"(^|\.)embeddings\.position_ids$",  # registered buffers some checkpoints saved
    r"(^|\.)embeddings\.token_type_ids$",
    r"^cls\.(predictions|seq_relationship)\.",  # BertForPreTraining / BertForMaskedLM heads
    r"^lm_head\.",  # RobertaForMaskedLM
    r"^(vocab_transform|vocab_layer_norm|vocab_projector)\.",  # DistilBertForMaskedLM
)

_DENSE = (("weight", "kernel", True), ("bias", "bias", False))
_NORM = (("weight", "scale"), ("bias", "bias"), ("gamma", "scale"), ("beta", "bias"))


def _dense(key: str, path: str) -> list[Rule]:
    return [Rule(f"{key}.{w}", f"{path}/{p}", t) for w, p, t in _DENSE]


def _norm(key: str, path: str) -> list[Rule]:
    return [Rule(f"{key}.{w}", f"{path}/{p}", False) for w, p in _NORM]


def _bert_body() -> list[Rule]:
    e, L, m = "embeddings", "encoder.layer.{i}", "model/layers/{i}"
    rules = [
        Rule(f"{e}.word_embeddings.weight", "model/embeddings/word_embeddings/embedding", False),
        Rule(f"{e}.position_embeddings.weight", "model/embeddings/position_embeddings/embedding",
             False),
        Rule(f"{e}.token_type_embeddings.weight",
             "model/embeddings/token_type_embeddings/embedding", False),
        *_norm(f"{e}.LayerNorm", "model/embeddings/layer_norm"),
    ]  # fmt: skip
    for proj in ("query", "key", "value"):
        rules += _dense(f"{L}.attention.self.{proj}", f"{m}/attention/{proj}")
    rules += _dense(f"{L}.attention.output.dense", f"{m}/attention/output")
    rules += _norm(f"{L}.attention.output.LayerNorm", f"{m}/attention_norm")
    rules += _dense(f"{L}.intermediate.dense", f"{m}/intermediate")
    rules += _dense(f"{L}.output.dense", f"{m}/output")
    rules += _norm(f"{L}.output.LayerNorm", f"{m}/output_norm")
    return rules


def _distilbert_body() -> list[Rule]:
    e, L, m = "embeddings", "transformer.layer.{i}", "model/layers/{i}"
    rules = [
        Rule(f"{e}.word_embeddings.weight", "model/embeddings/word_embeddings/embedding", False),
        Rule(f"{e}.position_embeddings.weight", "model/embeddings/position_embeddings/embedding",
             False),
        *_norm(f"{e}.LayerNorm", "model/embeddings/layer_norm"),
    ]  # fmt: skip
    for theirs, ours in (("q_lin", "query"), ("k_lin", "key"), ("v_lin", "value")):
        rules += _dense(f"{L}.attention.{theirs}", f"{m}/attention/{ours}")
    rules += _dense(f"{L}.attention.out_lin", f"{m}/attention/output")
    rules += _norm(f"{L}.sa_layer_norm", f"{m}/attention_norm")
    rules += _dense(f"{L}.ffn.lin1", f"{m}/intermediate")
    rules += _dense(f"{L}.ffn.lin2", f"{m}/output")
    rules += _norm(f"{L}.output_layer_norm", f"{m}/output_norm")
    return rules


def _head(family: str, head: str | None) -> list[Rule]:
    """Pooler / classification-head rules (keys as HF names them, without a base prefix)."""
    if head == "sequence_classification":
        if family == "bert":
            return _dense("pooler.dense", "pooler") + _dense("classifier", "classifier")
        if family in ("roberta", "xlm-roberta"):
            return _dense("classifier.dense", "pooler") + _dense(
                "classifier.out_proj", "classifier"
            )
        if family == "distilbert":
            return _dense("pre_classifier", "pooler") + _dense("classifier", "classifier")
        raise ValueError(f"no sequence-classification head is defined for {family!r}")
    if family == "distilbert":
        return []
    return _dense("pooler.dense", "pooler")


def encoder_rules(family: str, head: str | None) -> tuple[Rule, ...]:
    """All rules of `family` ("bert", "roberta", "xlm-roberta", "distilbert"; DPR is "bert") for
    the base encoder (`head=None`, with the BERT pooler when present) or
    `head="sequence_classification"`."""
    body = _distilbert_body() if family == "distilbert" else _bert_body()
    return (*body, *_head(family, head))


def strip_prefix(key: str, prefixes: tuple[str, ...]) -> str:
    """`key` without the first matching base-model prefix (unchanged when none matches)."""
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key
