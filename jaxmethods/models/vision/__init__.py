"""Image models in Flax NNX: a ViT (CLIP vision tower, DINOv2), the CLIP text + vision pair,
image preprocessing, the CLIP / DINO scores, and a small VQ image tokenizer.

    from jaxmethods.hf.vision_loading import load_vision_model
    from jaxmethods.models.vision import ClipScorer, load_image_preprocessor

    clip = load_vision_model("laion/CLIP-ViT-H-14-laion2B-s32B-b79K")   # a CLIPModel
    pixels = load_image_preprocessor(folder)(images_uint8)              # [B, 224, 224, 3]
    scores = ClipScorer(clip, tokenizer).clip_score(pixels, texts)      # 100 * cos, [B]

Names are imported on first use.
"""

from jaxmethods._exports import lazy_exports

_EXPORTS = {
    "CLIPConfig": "config",
    "CLIPTextConfig": "config",
    "ViTConfig": "config",
    "CLIPModel": "clip",
    "CLIPTextTransformer": "clip",
    "ViT": "vit",
    "Block": "layers",
    "ImagePreprocessor": "preprocess",
    "image_preprocessor_from_dict": "preprocess",
    "load_image_preprocessor": "preprocess",
    "ClipScorer": "scores",
    "DinoScorer": "scores",
    "cosine_score": "scores",
    "VISION_SHARDING_RULES": "sharding",
    "torch_bicubic_matrix": "resize",
    "LPIPS": "lpips",
    "LPIPSConfig": "lpips",
    "VQConfig": "vq",
    "VQTokenizer": "vq",
    "VQTrainResult": "vq",
    "build_vq_tokenizer": "vq",
    "check_token_ids": "vq",
    "codebook_usage": "vq",
    "ema_codebook_update": "vq",
    "restart_dead_codes": "vq",
    "train_vq": "vq",
    "vq_losses": "vq",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
