"""The generator's context budget: how many retrieved lines fit a stated number of tokens.

A real generator cannot read everything a retriever returns; LightRAG (the paper's graph
baseline and the source of TMMHybridRAG's keyword step) cuts its context by tokens, in
retrieval order: in the release contemporary with the paper (early 2025, `QueryParam`)
`max_token_for_local_context` = 4000 tokens of entity descriptions,
`max_token_for_global_context` = 4000 of relation descriptions and `max_token_for_text_unit`
= 4000 of raw text (`ContextBudget()`, the defaults here). Lines are the ones the generator
prompt shows (`item_line`, `retrieve.render_record`).

    budget = ContextBudget(entity_tokens=4000, relation_tokens=4000, raw_tokens=4000)
    items = budget.items(items)                     # entities and relations, each a prefix
    raw = budget.raw(records, render)               # a prefix of the raw records

Tokens are counted with `count_tokens`: the pieces of the cl100k_base pre-tokenizer pattern
(text-embedding-3-small's tokenizer; gpt-4o-mini's o200k_base cuts numbers the same way;
tiktoken's regex with letters written `[^\\W\\d_]`): words with their leading space or
punctuation, digit groups of at most three, punctuation runs, whitespace. Every piece is at
least one BPE token, so this is a lower bound, close for these lines (numbers, hex uuids and
common words are mostly one token a piece); an exact tokenizer would fit somewhat fewer
lines.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from jaxmethods.methods.fintmm.kg_types import Entity, Relation

__all__ = ["ContextBudget", "count_tokens", "item_line", "token_prefix"]

T = TypeVar("T")

# tiktoken's cl100k_base pattern with \p{L} = [^\W\d_] (letters) and \p{N} = \d; "_" is neither.
_PIECES = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d{1,3}"
    r"| ?(?:[^\s\w]|_)+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def count_tokens(text: str) -> int:
    """Pre-tokenizer pieces of `text` (cl100k_base pattern): a lower bound of its BPE tokens.
    "AAPL 2022-03-15: Close = 123.45 USD" is 16: AAPL | ␣ | 202 | 2 | - | 03 | - | 15 | : |
    ␣Close | ␣= | ␣ | 123 | . | 45 | ␣USD."""
    return len(_PIECES.findall(text))


def item_line(it: Entity | Relation) -> str:
    """A KG item as the generator prompt shows it: `- name | time | description`."""
    time = it.time.label() if it.time is not None else "undated"
    name = it.name if isinstance(it, Entity) else it.key
    return f"- {name} | {time} | {it.description}"


def token_prefix(lines: Iterable[T], render: Callable[[T], str], budget: int) -> list[T]:
    """The longest prefix of `lines` whose rendered token counts sum to at most `budget`
    (LightRAG's `truncate_list_by_token_size`: the first line that does not fit ends it);
    `budget` <= 0 keeps everything."""
    out: list[T] = []
    used = 0
    for x in lines:
        if budget > 0:
            used += count_tokens(render(x))
            if used > budget:
                break
        out.append(x)
    return out


@dataclasses.dataclass(frozen=True)
class ContextBudget:
    """Token budgets of the generator context (0 = unlimited): KG entities, KG relations
    (each its own prefix of the retrieval order, as LightRAG cuts them) and raw records."""

    entity_tokens: int = 4000
    relation_tokens: int = 4000
    raw_tokens: int = 4000

    def items(self, items: Sequence[Entity | Relation]) -> list[Entity | Relation]:
        """`items` (retrieval order) keeping the entities and the relations that fit their
        budgets; the relative order is kept."""
        ents = token_prefix([x for x in items if isinstance(x, Entity)], item_line,
                            self.entity_tokens)  # fmt: skip
        rels = token_prefix([x for x in items if not isinstance(x, Entity)], item_line,
                            self.relation_tokens)  # fmt: skip
        keep = {id(x) for x in (*ents, *rels)}
        return [x for x in items if id(x) in keep]

    def raw(self, records: Sequence[T], render: Callable[[T], str]) -> list[T]:
        """The prefix of `records` that fits `raw_tokens` (`render`: record -> prompt line)."""
        return token_prefix(records, render, self.raw_tokens)
