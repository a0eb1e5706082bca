"""The three Self-Selection prompts (closed-book, RAG, selection) as config values.

The paper's wording is unknown (spec §4); the defaults below are a reconstruction: short
instructions, numbered passages, numbered responses, and a "Final answer:" cue. Every template is
a `str.format` pattern with named fields:

  closed_book  {question}
  rag          {passages} {question}
  select       {passages} {question} {responses}
  passage      {index} {title} {text}    (one retrieved passage; joined by newlines)
  response     {index} {answer}          (one candidate answer; joined by newlines)

Few-shot prompts prepend `shots` solved examples, each rendered with the same template followed by
its answer (`shot_separator` between them). The model's response is the text after the prompt
(for a chat model, `user_start` / `user_end` wrap the prompt: see `PromptConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jaxmethods.train.config import non_negative

CLOSED_BOOK = "Answer the question with a short answer.\nQuestion: {question}\nAnswer:"
RAG = (
    "Answer the question with a short answer, using the passages.\n{passages}\n"
    "Question: {question}\nAnswer:"
)
SELECT = (
    "Two responses answer the question: one from your own knowledge, one from the passages. "
    "Pick the correct one and give the final answer.\n{passages}\nQuestion: {question}\n"
    "{responses}\nFinal answer:"
)
PASSAGE = "Passage {index}: {title} {text}"
RESPONSE = "Response {index}: {answer}"


@dataclass(frozen=True)
class PromptConfig:
    """The prompt templates (documented defaults above) and their chat wrapping.

    num_shots: solved train examples prepended (0 = zero-shot).
    user_start, user_end: wrap the whole prompt as a user turn (e.g. Llama-2's "[INST] " and
      " [/INST]"); the response follows directly, with a leading space.
    """

    closed_book: str = CLOSED_BOOK
    rag: str = RAG
    select: str = SELECT
    passage: str = PASSAGE
    response: str = RESPONSE
    passage_separator: str = "\n"
    response_separator: str = "\n"
    shot_separator: str = "\n\n"
    num_shots: int = non_negative(0)
    user_start: str = ""
    user_end: str = ""


@dataclass(frozen=True)
class Shot:
    """One solved demonstration: question, passages (title, text), candidate answers, answer."""

    question: str
    answer: str
    passages: tuple[tuple[str, str], ...] = ()
    candidates: tuple[str, ...] = ()


def _squeeze(text: str) -> str:
    """Single spaces (an empty title leaves a double one), no outer spaces."""
    return " ".join(w for w in text.split(" ") if w)


def render_passages(cfg: PromptConfig, passages: Sequence[tuple[str, str]]) -> str:
    """`passages` [(title, text)] -> the numbered block ("" when there are none)."""
    lines = [
        _squeeze(cfg.passage.format(index=i + 1, title=title, text=text))
        for i, (title, text) in enumerate(passages)
    ]
    return cfg.passage_separator.join(lines)


def render_responses(cfg: PromptConfig, answers: Sequence[str]) -> str:
    lines = [cfg.response.format(index=i + 1, answer=a) for i, a in enumerate(answers)]
    return cfg.response_separator.join(lines)


def _body(kind: str, cfg: PromptConfig, question: str, passages, answers) -> str:
    if kind == "closed_book":
        return cfg.closed_book.format(question=question)
    text = render_passages(cfg, passages)
    if kind == "rag":
        return cfg.rag.format(question=question, passages=text)
    if kind == "select":
        return cfg.select.format(
            question=question, passages=text, responses=render_responses(cfg, answers)
        )
    raise ValueError(f"unknown prompt kind {kind!r}; expected closed_book, rag or select")


def render(
    kind: str,
    cfg: PromptConfig,
    question: str,
    passages: Sequence[tuple[str, str]] = (),
    answers: Sequence[str] = (),
    shots: Sequence[Shot] = (),
) -> str:
    """The full prompt of `kind` ("closed_book", "rag", "select") for one question.

    Args:
      passages: [(title, text)] retrieved passages (rag, select); may be empty.
      answers: the candidate answers shown to the selection prompt, in display order.
      shots: demonstrations, rendered with the same template and followed by their answer.
    """
    if kind == "select" and len(answers) < 2:
        raise ValueError(f"the selection prompt needs two candidate answers, got {len(answers)}")
    parts = [_body(kind, cfg, s.question, s.passages, s.candidates) + " " + s.answer for s in shots]
    parts.append(_body(kind, cfg, question, passages, answers))
    return cfg.user_start + cfg.shot_separator.join(parts) + cfg.user_end


def as_response(answer: str) -> str:
    """The response text a prompt is completed with (a leading space, as after "Answer:")."""
    return " " + answer.strip()
