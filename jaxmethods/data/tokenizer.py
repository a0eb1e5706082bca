"""A tiny, real Hugging Face fast tokenizer trained in code, for offline demos and tests.

`build_tiny_tokenizer` trains a SentencePiece-style BPE (Metaspace pre-tokenizer, so decoding
restores spaces exactly) on the given texts with the `tokenizers` library and wraps it in a
`transformers.PreTrainedTokenizerFast` with pad/bos/eos/unk and a chat template. The result
behaves like a hub tokenizer: `save_pretrained(dir)` then `AutoTokenizer.from_pretrained(dir)`
gives the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 in this order
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")  # ids 4, 5, 6: chat-turn markers

# A minimal role-tagged template (BOS, then one block per turn ending in EOS). With
# `add_generation_prompt=True` it ends with "<|assistant|>\n" so generation continues the reply.
DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def build_tiny_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 256,
    chat_template: str | None = None,
    add_bos: bool = True,
    padding_side: str = "right",
    model_max_length: int = 2048,
) -> PreTrainedTokenizerFast:
    """Trains a small BPE tokenizer on `texts` and returns it as an HF fast tokenizer.

    Args:
      texts: training corpus; every character that appears becomes part of the alphabet, so any
        text over the same characters encodes without `<unk>` and decodes back exactly.
      vocab_size: upper bound on the vocabulary (special tokens + alphabet + merges). The actual
        size is `len(tokenizer)` and can be smaller when the corpus is small.
      chat_template: a Jinja chat template; None uses `DEFAULT_CHAT_TEMPLATE`.
      add_bos: prepend `<s>` when `add_special_tokens=True` (Llama-style).
      padding_side: "right" (HF default) or "left" (for batched generation prompts).
      model_max_length: stored on the tokenizer for truncation.

    Returns:
      A `PreTrainedTokenizerFast` with pad=0, bos=1, eos=2, unk=3 and the chat-role markers
      `<|system|>`, `<|user|>`, `<|assistant|>` as special tokens 4, 5, 6.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("build_tiny_tokenizer: `texts` is empty; give at least one training text")
    if padding_side not in ("left", "right"):
        raise ValueError(
            f"build_tiny_tokenizer: padding_side must be 'left' or 'right', got {padding_side!r}"
        )
    alphabet = sorted({ch for t in texts for ch in t.replace(" ", "\u2581")} | {"\u2581", "\n"})
    special = [*SPECIAL_TOKENS, *ROLE_TOKENS]
    min_size = len(special) + len(alphabet)
    if vocab_size < min_size:
        raise ValueError(
            f"build_tiny_tokenizer: vocab_size={vocab_size} is smaller than the special tokens plus "
            f"the {len(alphabet)} distinct characters of the corpus ({min_size})"
        )

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A",
            pair=f"{BOS} $A {BOS} $B",
            special_tokens=[(BOS, tok.token_to_id(BOS))],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        chat_template=chat_template if chat_template is not None else DEFAULT_CHAT_TEMPLATE,
        padding_side=padding_side,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
