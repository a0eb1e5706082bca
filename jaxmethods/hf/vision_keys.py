"""HF checkpoint key <-> parameter path tables of `CLIPModel` and DINOv2 (`ViT`).

`KNOWN_UNUSED` lists tensors a checkpoint may carry that no parameter uses (position-id buffers of
old CLIP checkpoints, DINOv2's pre-training `mask_token`); the loader skips and counts them.
DINOv2 keys may carry the `dinov2.` prefix (Dinov2ForImageClassification; its `classifier` is
not loaded: pass `ignore_checkpoint_keys=("^classifier",)`).
"""

from __future__ import annotations

from jaxmethods.hf.key_map import Rule

VISION_PREFIXES: dict[str, tuple[str, ...]] = {"clip": (), "dinov2": ("dinov2.",)}

KNOWN_UNUSED: tuple[str, ...] = (
    r"(^|\.)position_ids$",
    r"^embeddings\.mask_token$",
)


def _dense(key: str, path: str, bias: bool = True) -> list[Rule]:
    rules = [Rule(f"{key}.weight", f"{path}/kernel", True)]
    return [*rules, Rule(f"{key}.bias", f"{path}/bias", False)] if bias else rules


def _norm(key: str, path: str) -> list[Rule]:
    return [
        Rule(f"{key}.weight", f"{path}/scale", False),
        Rule(f"{key}.bias", f"{path}/bias", False),
    ]


def _clip_layers(key: str, path: str) -> list[Rule]:
    L, m = f"{key}.encoder.layers.{{i}}", f"{path}/layers/{{i}}"
    rules = _norm(f"{L}.layer_norm1", f"{m}/norm1") + _norm(f"{L}.layer_norm2", f"{m}/norm2")
    for theirs, ours in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"),
                         ("out_proj", "out")):  # fmt: skip
        rules += _dense(f"{L}.self_attn.{theirs}", f"{m}/attention/{ours}")
    return rules + _dense(f"{L}.mlp.fc1", f"{m}/mlp/fc1") + _dense(f"{L}.mlp.fc2", f"{m}/mlp/fc2")


def clip_rules() -> tuple[Rule, ...]:
    t, v = "text_model", "vision_model"
    rules = [
        Rule(f"{t}.embeddings.token_embedding.weight", f"{t}/token_embedding/embedding", False),
        Rule(f"{t}.embeddings.position_embedding.weight", f"{t}/position_embedding/embedding",
             False),
        *_clip_layers(t, t),
        *_norm(f"{t}.final_layer_norm", f"{t}/final_norm"),
        Rule(f"{v}.embeddings.class_embedding", f"{v}/cls_token", False),
        Rule(f"{v}.embeddings.patch_embedding.weight", f"{v}/patch_kernel", False),
        Rule(f"{v}.embeddings.position_embedding.weight", f"{v}/position_embeddings", False),
        *_norm(f"{v}.pre_layrnorm", f"{v}/pre_norm"),
        *_clip_layers(v, v),
        *_norm(f"{v}.post_layernorm", f"{v}/final_norm"),
        *_dense("visual_projection", "visual_projection", bias=False),
        *_dense("text_projection", "text_projection", bias=False),
        Rule("logit_scale", "logit_scale", False),
    ]  # fmt: skip
    return tuple(rules)


def dinov2_rules() -> tuple[Rule, ...]:
    L, m = "encoder.layer.{i}", "layers/{i}"
    rules = [
        Rule("embeddings.cls_token", "cls_token", False),
        Rule("embeddings.position_embeddings", "position_embeddings", False),
        Rule("embeddings.patch_embeddings.projection.weight", "patch_kernel", False),
        Rule("embeddings.patch_embeddings.projection.bias", "patch_bias", False),
        *_norm(f"{L}.norm1", f"{m}/norm1"),
        *_norm(f"{L}.norm2", f"{m}/norm2"),
        Rule(f"{L}.layer_scale1.lambda1", f"{m}/layer_scale1", False),
        Rule(f"{L}.layer_scale2.lambda1", f"{m}/layer_scale2", False),
        *_dense(f"{L}.attention.output.dense", f"{m}/attention/out"),
        *_dense(f"{L}.mlp.fc1", f"{m}/mlp/fc1"),
        *_dense(f"{L}.mlp.fc2", f"{m}/mlp/fc2"),
        *_dense(f"{L}.mlp.weights_in", f"{m}/mlp/weights_in"),
        *_dense(f"{L}.mlp.weights_out", f"{m}/mlp/weights_out"),
        *_norm("layernorm", "final_norm"),
    ]
    for proj in ("query", "key", "value"):
        rules += _dense(f"{L}.attention.attention.{proj}", f"{m}/attention/{proj}")
    return tuple(rules)


VISION_RULES = {"clip": clip_rules, "dinov2": dinov2_rules}
