"""Hugging Face `config.json` of BERT / RoBERTa / XLM-R / DistilBERT / DPR -> `EncoderConfig`.

Parsed as plain JSON. Absent optional fields take transformers' config-class defaults
(`ENCODER_HF_DEFAULTS`); DistilBERT's own field names (dim, n_layers, activation, ...) are
translated. DPR (`model_type: dpr`) is a BERT encoder under a `question_encoder.bert_model.` or
`ctx_encoder.bert_model.` prefix; only `projection_dim: 0` (every released DPR model) is supported.
"""

from __future__ import annotations

from typing import Any

from jaxmethods.models.encoder_config import EncoderConfig

# model_type -> encoder family
ENCODER_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "xlm-roberta",
    "distilbert": "distilbert",
    "dpr": "bert",
}

_BERT = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
    intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
    initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
    position_embedding_type="absolute",
)  # fmt: skip
ENCODER_HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "bert": _BERT,
    "dpr": dict(_BERT, projection_dim=0),
    "roberta": dict(_BERT, vocab_size=50265, pad_token_id=1),
    "xlm-roberta": dict(_BERT, pad_token_id=1),
    "distilbert": dict(
        vocab_size=30522, max_position_embeddings=512, n_layers=6, n_heads=12, dim=768,
        hidden_dim=3072, dropout=0.1, attention_dropout=0.1, activation="gelu",
        initializer_range=0.02, pad_token_id=0,
    ),
}  # fmt: skip


def encoder_config_from_hf(
    hf: dict[str, Any], *, source: str = "config.json", **overrides: Any
) -> EncoderConfig:
    """`EncoderConfig` of an HF encoder config dict; `overrides` are EncoderConfig fields
    (dtype, param_dtype, scan_layers, attention_impl, ...). Errors name `source`."""
    model_type = hf.get("model_type")
    if model_type not in ENCODER_MODEL_TYPES:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not an encoder ({sorted(ENCODER_MODEL_TYPES)})"
        )
    c = {**ENCODER_HF_DEFAULTS[model_type], **{k: v for k, v in hf.items() if v is not None}}
    family = ENCODER_MODEL_TYPES[model_type]
    if model_type == "distilbert":
        fields = dict(
            vocab_size=c["vocab_size"], hidden_size=c["dim"], intermediate_size=c["hidden_dim"],
            num_layers=c["n_layers"], num_heads=c["n_heads"], type_vocab_size=0,
            max_position_embeddings=c["max_position_embeddings"], layer_norm_eps=1e-12,
            hidden_act=c["activation"], hidden_dropout=c["dropout"],
            attention_dropout=c["attention_dropout"],
        )  # fmt: skip
    else:
        if c["position_embedding_type"] != "absolute":
            raise ValueError(
                f"{source}: position_embedding_type {c['position_embedding_type']!r} is not "
                "supported (only 'absolute')"
            )
        if model_type == "dpr" and c["projection_dim"]:
            raise ValueError(
                f"{source}: DPR projection_dim={c['projection_dim']} is not supported (only 0)"
            )
        fields = dict(
            vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
            intermediate_size=c["intermediate_size"], num_layers=c["num_hidden_layers"],
            num_heads=c["num_attention_heads"], type_vocab_size=c["type_vocab_size"],
            max_position_embeddings=c["max_position_embeddings"],
            layer_norm_eps=c["layer_norm_eps"], hidden_act=c["hidden_act"],
            hidden_dropout=c["hidden_dropout_prob"],
            attention_dropout=c["attention_probs_dropout_prob"],
        )  # fmt: skip
    fields.update(
        family=family, pad_token_id=int(c["pad_token_id"]),
        initializer_range=c["initializer_range"],
    )  # fmt: skip
    fields.update(overrides)
    try:
        return EncoderConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from e
