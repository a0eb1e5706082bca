"""The D3/BIGRec/IGD instruction prompt, typos included, and its tokenisation.

Text layout (authors' `IGDataset.pre`):

    instruction = "Below is an instruction that describes a task, paired with an input that provides
                   further context. Write a response that appropriately completes the request. \\n\\n
                   ### Instruction:\\nGiven a list of {cat} the user recetenly enjoy, please write a
                   new {cat} that the user may bought\\n"                    -> encoded with BOS
    user input  = "### User Input: \\nThe user has palyed the following {cat}s before: {t1}, {t2}
                   \\n\\n### Response: \\n"                                   -> encoded separately
    target      = "{title}\\n" + EOS                                         -> encoded separately

The three parts are tokenised separately and concatenated, so token boundaries match the
authors' exactly. Labels cover only the target.
"""

from __future__ import annotations

from collections.abc import Sequence

# `category_dict` of the authors' scripts: dataset folder name -> the word used in the prompt.
CATEGORY_NAMES = {
    "Office_Products": "office products",
    "Books": "books",
    "steam": "games",
    "CDs_and_Vinyl": "musics",
    "Toys_and_Games": "toys and games",
    "Video_Games": "video games",
    "Musical_Instruments": "music instruments",
    "Sports_and_Outdoors": "sports and outdoors",
    "Pet_Supplies": "pet supplies",
    "Arts_Crafts_and_Sewing": "arts products",
    "Movies": "movie",
}

INSTRUCTION = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request. \n\n"
    "### Instruction:\n"
    "Given a list of {cat} the user recetenly enjoy, please write a new {cat} that the user may "
    "bought\n"
)
USER_INPUT = "### User Input: \n{input}\n\n### Response: \n"
HISTORY = "The user has {verb} the following {cat}s before: {history}"
# IGD/D3/BIGRec prompts say "palyed"; the authors' CFT dataset spells it "played".
HISTORY_VERB = "palyed"
COUNTERFACTUAL_INPUT = "Unknow"  # CFT's counterfactual history, typo kept


def category_name(category: str) -> str:
    """Maps a dataset category ("Video_Games") to its prompt word ("video games")."""
    if category in CATEGORY_NAMES:
        return CATEGORY_NAMES[category]
    if category in CATEGORY_NAMES.values():
        return category
    raise ValueError(
        f"unknown category {category!r}; expected one of {sorted(CATEGORY_NAMES)} "
        "or a prompt word such as 'video games'"
    )


def instruction_text(cat: str) -> str:
    return INSTRUCTION.format(cat=cat)


def user_input_text(
    history_titles: Sequence[str],
    cat: str,
    *,
    counterfactual: bool = False,
    verb: str = HISTORY_VERB,
) -> str:
    if counterfactual:
        return USER_INPUT.format(input=COUNTERFACTUAL_INPUT)
    history = ", ".join(history_titles)
    return USER_INPUT.format(input=HISTORY.format(verb=verb, cat=cat, history=history))


def prompt_text(history_titles: Sequence[str], cat: str, **kwargs) -> str:
    """The whole prompt as one string (for display; encoding splits it in two parts)."""
    return instruction_text(cat) + user_input_text(history_titles, cat, **kwargs)


def target_text(title: str) -> str:
    """The target before EOS: `title + "\\n"`."""
    return f"{title}\n"


def encode_texts(tokenizer, texts: Sequence[str], *, bos: bool, eos: bool) -> list[list[int]]:
    """The authors' `Tokenizer.encode` on a batch: encode, strip leading BOS / trailing EOS,
    then add them back as requested (BOS only when the tokenizer has one, e.g. not Qwen)."""
    bos_id, eos_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = []
    for ids in tokenizer(list(texts))["input_ids"]:
        ids = list(ids)
        while ids and bos_id is not None and ids[0] == bos_id:
            ids = ids[1:]
        while ids and eos_id is not None and ids[-1] == eos_id:
            ids = ids[:-1]
        if bos and bos_id is not None:
            ids = [bos_id, *ids]
        if eos and eos_id is not None:
            ids = [*ids, eos_id]
        out.append(ids)
    return out


def encode_prompts(
    tokenizer,
    histories: Sequence[Sequence[str]],
    cat: str,
    *,
    counterfactual: bool = False,
    verb: str = HISTORY_VERB,
) -> list[list[int]]:
    """Token ids of instruction (with BOS) + user input, one list per history."""
    head = encode_texts(tokenizer, [instruction_text(cat)], bos=True, eos=False)[0]
    texts = [user_input_text(h, cat, counterfactual=counterfactual, verb=verb) for h in histories]
    return [head + ids for ids in encode_texts(tokenizer, texts, bos=False, eos=False)]


def encode_targets(tokenizer, titles: Sequence[str]) -> list[list[int]]:
    """Token ids of `title + "\\n"` followed by EOS, one list per title."""
    return encode_texts(tokenizer, [target_text(t) for t in titles], bos=False, eos=True)
