"""The image-token LM: our `DecoderLM` over a text + visual vocabulary (LaVIT / Pigeon layout).

Id layout (LaVIT-7B-v2 as Pigeon uses it [from the authors' code]):

    [0, T)                      text ids (T = 32000 for Llama-2; 0-2 are unk / bos / eos)
    T       = 32000             `<img>`, the start of an image
    T + 1   = 32001             `<emb>` in a prompt (the reference-embedding slot), and LaVIT's
                                image-end token after an image's visual ids
    T + 2 + c                   visual token c of the codebook, c in [0, 16384)

so the LM vocabulary is T + 2 + 16384 = 48386 [reconstruction: verify against the checkpoint's
config.json; `load_lavit_llm` only requires it to be at least that large]. An image in a sequence
is `<img> v_1 .. v_N <end>`. Images <-> codes (the LaVIT visual tokenizer and SDXL decoder, or
our VQ tokenizer `jaxmethods.models.vision.vq`) stay outside: this module takes codes.

Generation suppresses text tokens (`VisualTokenProcessor`): Pigeon passes
`suppress_tokens=range(3, 32000)` (suppress="text"); the default here, suppress="non_visual",
also removes ids 0-2 and `<img>` so only visual ids and (optionally) the end id survive.

Soft prompts: `inject_placeholders` writes K soft vectors over the K occurrences of one
placeholder id (`<emb>`) in each row, in order (Pigeon: K = 1; DRC: K latent-instruction tokens).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxmethods.generate.processors import DecodeState
from jaxmethods.losses import token_cross_entropy, token_cross_entropy_from_hidden
from jaxmethods.models.backbone import LoRAConfig
from jaxmethods.models.decoder import DecoderLM
from jaxmethods.models.decoder_config import DecoderConfig
from jaxmethods.models.lora import apply_lora
from jaxmethods.models.vision.vq import check_token_ids

LAVIT_REPO = "rain1011/LaVIT-7B-v2"
LAVIT_LLM_SUBFOLDER = "language_model"
# Pigeon's LoRA on the LaVIT LLM (finetune_sft.py): r 8, alpha 16, dropout 0.05, q_proj and v_proj.
LAVIT_LORA = LoRAConfig(rank=8, alpha=16.0, dropout=0.05, targets=r"(q_proj|v_proj)$")
SUPPRESS_MODES = ("non_visual", "text")


@dataclass(frozen=True)
class VisualVocab:
    """The LM id layout of text, `<img>`, `<emb>`/end and visual ids (see the module doc).

    text_vocab_size: T, the number of text ids (32000 for LaVIT's Llama-2).
    codebook_size: visual tokens (16384 for LaVIT's tokenizer; the VQ codebook in the demo).
    """

    text_vocab_size: int = 32000
    codebook_size: int = 16384

    def __post_init__(self):
        if self.text_vocab_size < 3 or self.codebook_size <= 0:
            raise ValueError(
                f"VisualVocab: text_vocab_size must be >= 3 and codebook_size > 0, got "
                f"{self.text_vocab_size}, {self.codebook_size}"
            )

    @classmethod
    def tiny(cls, codebook_size: int, text_vocab_size: int = 8) -> VisualVocab:
        """A demo layout: a handful of text ids, then `<img>`, `<emb>`/end and the codebook."""
        return cls(text_vocab_size=text_vocab_size, codebook_size=codebook_size)

    @property
    def img_id(self) -> int:
        return self.text_vocab_size

    @property
    def emb_id(self) -> int:
        return self.text_vocab_size + 1

    @property
    def end_id(self) -> int:
        return self.text_vocab_size + 1

    @property
    def visual_offset(self) -> int:
        return self.text_vocab_size + 2

    @property
    def vocab_size(self) -> int:
        return self.visual_offset + self.codebook_size

    def to_lm_ids(
        self, codes: Any, *, field: str = "codes", sample_ids: Sequence[Any] | None = None
    ) -> np.ndarray:
        """Codes [B, ...] in [0, codebook_size) -> LM ids (int32, + visual_offset).

        Raises ValueError naming the batch field, the sample (row, and its id from `sample_ids`
        when given) and the offending values when a code lies outside the codebook.
        """
        codes = np.asarray(codes)
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"{field}: visual-token ids must be integers, got dtype {codes.dtype}")
        try:
            check_token_ids(codes, self.codebook_size)
        except ValueError as e:
            who = ""
            if sample_ids is not None:
                bad = (codes < 0) | (codes >= self.codebook_size)
                row = int(np.argmax(bad.reshape(bad.shape[0], -1).any(axis=1)))
                who = f" (sample {row} is {sample_ids[row]!r})"
            raise ValueError(f"{field}{who}: {e}") from None
        return (codes.astype(np.int64) + self.visual_offset).astype(np.int32)

    def to_codes(self, lm_ids: Any) -> np.ndarray:
        """LM ids -> codes; ids that are not visual become -1."""
        ids = np.asarray(lm_ids).astype(np.int64)
        codes = ids - self.visual_offset
        ok = (codes >= 0) & (codes < self.codebook_size)
        return np.where(ok, codes, -1).astype(np.int32)

    def image_ids(self, codes: Any) -> jnp.ndarray:
        """Codes [..., N] (validated, or traced) -> `<img> v_1..v_N <end>` LM ids [..., N + 2]."""
        codes = jnp.asarray(codes, jnp.int32)
        lead = codes.shape[:-1]
        img = jnp.full((*lead, 1), self.img_id, jnp.int32)
        end = jnp.full((*lead, 1), self.end_id, jnp.int32)
        return jnp.concatenate([img, codes + self.visual_offset, end], axis=-1)


def visual_lm_config(vocab: VisualVocab, **overrides: Any) -> DecoderConfig:
    """`DecoderConfig.tiny` (2 layers, hidden 32 unless overridden) sized to `vocab`."""
    return DecoderConfig.tiny(vocab_size=vocab.vocab_size, **overrides)


# Llama-2-7B, the LLM of LaVIT-7B-v2 (shapes only; `load_lavit_llm` reads the real config.json).
LAVIT_7B_V2_SHAPES = dict(
    hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32, num_kv_heads=32,
    head_dim=128, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096,
)  # fmt: skip


def lavit_decoder_config(vocab: VisualVocab = VisualVocab(), **overrides: Any) -> DecoderConfig:
    """The LaVIT-7B-v2 LLM's architecture as a `DecoderConfig` (e.g. for `nnx.eval_shape`
    memory plans without the checkpoint)."""
    return DecoderConfig(
        vocab_size=vocab.vocab_size, family="llama", bos_token_id=1, eos_token_id=2,
        **{**LAVIT_7B_V2_SHAPES, **overrides},
    )  # fmt: skip


@dataclass(frozen=True)
class VisualTokenProcessor:
    """Logits processor (`jaxmethods.generate`): only visual ids (and the end id) can be chosen.

    vocab: the id layout.
    suppress: "non_visual" (default: everything except visual ids and, when allowed, the end
      id is -inf) or "text" (Pigeon: only ids 3..T-1 are suppressed).
    allow_end: the end id may be chosen (once `min_tokens` tokens were generated).
    min_tokens: new tokens before the end id is allowed (fixed-length images: N, with
      max_new_tokens = N + 1, or allow_end=False and max_new_tokens = N).
    Hashable (no arrays), so it is a static part of the jitted decoding program.
    """

    vocab: VisualVocab
    suppress: str = "non_visual"
    allow_end: bool = True
    min_tokens: int = 0

    def __post_init__(self):
        if self.suppress not in SUPPRESS_MODES:
            raise ValueError(
                f"VisualTokenProcessor.suppress: {self.suppress!r} is not one of {SUPPRESS_MODES}"
            )

    def allowed(self, num_ids: int, step: Any = 0) -> jnp.ndarray:
        """[num_ids] bool, the ids that may be chosen at decoding step `step`."""
        v = self.vocab
        ids = jnp.arange(num_ids)
        end_ok = self.allow_end & (jnp.asarray(step) >= self.min_tokens)
        if self.suppress == "text":
            keep = (ids < 3) | (ids >= v.text_vocab_size)
            return jnp.where(ids == v.end_id, keep & end_ok, keep)
        visual = (ids >= v.visual_offset) & (ids < v.visual_offset + v.codebook_size)
        return visual | ((ids == v.end_id) & end_ok)

    def __call__(self, scores: jax.Array, state: DecodeState) -> jax.Array:
        mask = self.allowed(scores.shape[-1], state.step)
        return jnp.where(mask, scores, jnp.asarray(-jnp.inf, scores.dtype))


def inject_placeholders(
    embeds: jnp.ndarray, input_ids: jnp.ndarray, soft: jnp.ndarray, placeholder_id: int
) -> jnp.ndarray:
    """Writes soft[:, k] over the k-th occurrence of `placeholder_id` in each row.

    Args:
      embeds: [B, T, H] token embeddings (`DecoderLM.embed(input_ids)`).
      input_ids: [B, T] int with exactly K occurrences of `placeholder_id` per row (more are
        clipped to the last soft vector; rows with fewer leave the trailing vectors unused).
      soft: [B, K, H] soft tokens.
      placeholder_id: the placeholder (static).
    Returns:
      [B, T, H] in `embeds.dtype`.
    """
    hit = input_ids == placeholder_id
    k = jnp.clip(jnp.cumsum(hit, axis=-1) - 1, 0, soft.shape[1] - 1)  # [B, T]
    picked = jnp.take_along_axis(soft, k[..., None], axis=1)  # [B, T, H]
    return jnp.where(hit[..., None], picked.astype(embeds.dtype), embeds)


def target_token_ce(
    lm: DecoderLM,
    inputs_embeds: jnp.ndarray,
    target_ids: jnp.ndarray,
    attention_mask: jnp.ndarray | None = None,
    *,
    dropout_rng: jax.Array | None = None,
    chunk_size: int = 0,
) -> jnp.ndarray:
    """Per-token CE of the *last* L tokens of each sequence (the target image and its end id).

    The LM head runs only on the L positions that predict them (T - L - 1 .. T - 2), so a long
    prompt (latents, history images) costs no vocabulary-sized logits.

    Args:
      lm: the decoder. inputs_embeds: [B, T, H] the full sequence's input embeddings.
      target_ids: [B, L] LM ids of the sequence's last L tokens.
      attention_mask: [B, T] (None = all real). dropout_rng: LoRA dropout (training).
      chunk_size: > 0 runs the LM head over the L positions chunk by chunk.
    Returns:
      ce [B, L] float32.
    """
    t, n_tgt = inputs_embeds.shape[1], target_ids.shape[1]
    if n_tgt >= t:
        raise ValueError(f"target_token_ce: {n_tgt} target tokens need a longer sequence than {t}")
    h = lm.hidden_states(None, attention_mask, inputs_embeds=inputs_embeds, dropout_rng=dropout_rng)
    h = h[:, t - n_tgt - 1 : t - 1]
    if chunk_size > 0:
        ce, _ = token_cross_entropy_from_hidden(
            h, lm.lm_head_kernel(), target_ids, chunk_size=chunk_size
        )
        return ce
    ce, _ = token_cross_entropy(lm.logits_from_hidden(h), target_ids)
    return ce


def _lavit_folder(path_or_id: str | os.PathLike, subfolder: str, revision: str | None) -> str:
    """The local folder of the LaVIT LLM: `<path>/<subfolder>` when it exists, else `<path>`; a
    hub id downloads only `<subfolder>/*` (not the tokenizer / SDXL decoder weights)."""
    local = os.path.expanduser(os.fspath(path_or_id))
    if not os.path.isdir(local):
        from jaxmethods.hf.pretrained import looks_like_local_path

        if looks_like_local_path(os.fspath(path_or_id)):
            raise FileNotFoundError(f"LaVIT folder {os.fspath(path_or_id)!r} does not exist")
        from huggingface_hub import snapshot_download

        try:
            local = snapshot_download(
                os.fspath(path_or_id), revision=revision, allow_patterns=[f"{subfolder}/*"]
            )
        except Exception as e:  # offline, not found, ...
            raise OSError(
                f"could not fetch {os.fspath(path_or_id)!r}/{subfolder} from the Hugging Face "
                f"hub: {e}"
            ) from e
    sub = os.path.join(local, subfolder)
    return sub if os.path.isfile(os.path.join(sub, "config.json")) else local


def load_lavit_llm(
    path_or_id: str | os.PathLike = LAVIT_REPO,
    *,
    vocab: VisualVocab = VisualVocab(),
    lora: LoRAConfig | None = LAVIT_LORA,
    subfolder: str = LAVIT_LLM_SUBFOLDER,
    revision: str | None = None,
    seed: int = 0,
    **load_kwargs: Any,
) -> DecoderLM:
    """The LaVIT-7B-v2 LLM (Llama-2) from HF safetensors, with Pigeon's LoRA adapters.

    Args:
      path_or_id: the LaVIT folder (holding `language_model/`), the LLM folder itself, or a hub
        id (`rain1011/LaVIT-7B-v2`; only `language_model/*` is downloaded).
      vocab: the id layout; the checkpoint's vocabulary must hold it (>= vocab.vocab_size).
      lora: adapters to add (default r 8, alpha 16, dropout 0.05 on q_proj/v_proj); None = none.
      subfolder: the LLM's subfolder.
      revision: hub revision. seed: LoRA init seed.
      **load_kwargs: `jaxmethods.hf.load_pretrained` arguments (dtype, param_dtype, mesh,
        scan_layers, remat, check_finite, ...).
    Returns:
      DecoderLM with `LoRAParam` factors on the targeted projections.
    """
    from flax import nnx

    from jaxmethods.hf.config import read_config_json
    from jaxmethods.hf.pretrained import load_pretrained

    folder = _lavit_folder(path_or_id, subfolder, revision)
    checkpoint_vocab = int(read_config_json(folder).get("vocab_size", 0))
    if checkpoint_vocab < vocab.vocab_size:  # checked before any weight is read
        raise ValueError(
            f"{folder}/config.json: vocab_size {checkpoint_vocab} cannot hold the visual "
            f"vocabulary ({vocab.text_vocab_size} text + <img>, <emb> + {vocab.codebook_size} "
            f"visual ids = {vocab.vocab_size})"
        )
    model = load_pretrained(folder, head="causal_lm", **load_kwargs)
    if lora is not None and lora.rank > 0:
        apply_lora(
            model, rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout,
            target_modules=lora.targets, rngs=nnx.Rngs(seed),
        )  # fmt: skip
    return model
