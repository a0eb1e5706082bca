"""Answer generation: the generator prompt, answer parsing, and the two generators.

    gen = LLMGenerator(make_client(cfg.generation.llm))      # OpenAI-compatible or local NNX
    gen = template_reader.TemplateGenerator(corpus.companies, indicators)  # demo, tests
    outs = gen(retrieved, tasks)                             # [Generation(answer, text)]

The prompt (paper §3, "Generation": the question, the retrieved entities/relations with their
temporal properties and descriptions, and the raw records; the answer comes with reasoning
steps) asks for "Step k: ..." lines and a last line "Final answer: ...". `parse_answer` takes
the text after the last "Final answer:" (markdown emphasis and a trailing period removed), else
the last non-empty line.

Charts: the paper hands chart images to a multimodal LLM; `LLMGenerator(max_images=N)` attaches
the retrieved charts' PNGs as image parts (a multimodal endpoint), and the prompt always holds
their KG description (the chart summary) and a line naming the image file; see docs/fintmm.md.
The deterministic `TemplateGenerator` lives in `template_reader.py`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence

from jaxmethods.methods.fintmm.context_budget import item_line
from jaxmethods.methods.fintmm.records import Chart
from jaxmethods.methods.fintmm.retrieve import Retrieved, render_record

__all__ = [
    "GENERATOR_PROMPT",
    "Generation",
    "LLMGenerator",
    "build_prompt",
    "parse_answer",
]

GENERATOR_PROMPT = """---Role---
You are a financial analyst. Answer the question using only the retrieved data below: knowledge
graph entities and relations (each with its time and description) and raw records (financial
table values, daily stock prices, news, candlestick charts).

---Question---
{question}

---Knowledge graph (name | time | description)---
{items}

---Raw records---
{raw}

---Instructions---
- Check every date: use only records whose date, week, month, quarter or year matches the
  question. A quarter ends on its last day (2022-03-31 is Q1 2022).
- Round numbers to two decimal places. Answer a yes/no question with Yes or No, and name
  companies as the question names them (ticker symbol or company name).
- Explain your reasoning in numbered steps ("Step 1: ..."), then end with one line:
Final answer: <the short answer only>"""

_FINAL = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]\s*(.+)", re.I)


def build_prompt(
    r: Retrieved,
    *,
    companies: Mapping[str, str] | None = None,
    max_items: int = 150,
    max_raw: int = 150,
    template: str = GENERATOR_PROMPT,
) -> str:
    """The generator prompt for one question's retrieval (at most `max_items` KG items and
    `max_raw` raw records, in retrieval order)."""
    items = "\n".join(item_line(it) for it in r.items[:max_items]) or "(none)"
    raw = "\n".join("- " + render_record(x, companies) for x in r.raw[:max_raw]) or "(none)"
    return template.format(question=r.question, items=items, raw=raw)


def parse_answer(text: str) -> str:
    """The short answer in a generator reply: the text after the last "Final answer:" on its
    line, stripped of markdown emphasis, quotes and a trailing period; else the last non-empty
    line; "" for an empty reply."""
    matches = _FINAL.findall(text)
    if matches:
        ans = matches[-1]
    else:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        ans = lines[-1] if lines else ""
    prev = None
    while prev != ans:
        prev, ans = ans, ans.strip().strip("*_`\"' ")
        if ans.endswith(".") and not re.search(r"\d\.$", ans):
            ans = ans[:-1]
    return ans


@dataclasses.dataclass(frozen=True)
class Generation:
    """One answer: `answer` (short, scored) and `text` (the full reply / reasoning)."""

    answer: str
    text: str


class LLMGenerator:
    """Answers through a `jaxmethods.llm` client (`make_client`: an OpenAI-compatible endpoint
    such as gpt-4o-mini or vLLM, or the in-process NNX decoder of the "local" backend), greedy,
    cached on disk by the client.

    `max_images > 0` attaches the PNGs of up to that many retrieved charts (in retrieval order)
    as image parts after the text prompt, as the paper gives charts to its multimodal LLM; that
    needs a multimodal endpoint (the local backend refuses images). Charts whose file is missing
    are skipped; their KG summary is in the prompt either way."""

    def __init__(self, client, *, companies: Mapping[str, str] | None = None,
                 max_tokens: int = 512, max_items: int = 150, max_raw: int = 150,
                 template: str = GENERATOR_PROMPT, max_images: int = 0):  # fmt: skip
        self.client, self.companies, self.max_tokens = client, companies, max_tokens
        self.max_items, self.max_raw, self.template = max_items, max_raw, template
        self.max_images = max_images

    def prompts(self, retrieved: Sequence[Retrieved]) -> list[str]:
        return [
            build_prompt(r, companies=self.companies, max_items=self.max_items,
                         max_raw=self.max_raw, template=self.template)
            for r in retrieved
        ]  # fmt: skip

    def chart_images(self, r: Retrieved) -> list[bytes]:
        """PNG bytes of the first `max_images` retrieved charts that exist on disk."""
        out: list[bytes] = []
        for rec in r.raw:
            if len(out) >= self.max_images:
                break
            path = getattr(rec, "path", None) if isinstance(rec, Chart) else None
            if path and os.path.exists(path):
                with open(path, "rb") as f:
                    out.append(f.read())
        return out

    def requests(self, retrieved: Sequence[Retrieved]) -> list:
        from jaxmethods.llm import Request
        from jaxmethods.llm.types import image_part

        reqs = []
        for r, prompt in zip(retrieved, self.prompts(retrieved)):
            images = self.chart_images(r) if self.max_images > 0 else []
            if not images:
                reqs.append(Request.from_prompt(prompt, max_tokens=self.max_tokens))
                continue
            parts = [{"type": "text", "text": prompt}, *(image_part(png) for png in images)]
            reqs.append(
                Request(messages=({"role": "user", "content": parts},), max_tokens=self.max_tokens)
            )
        return reqs

    def __call__(
        self, retrieved: Sequence[Retrieved], tasks: Sequence[str] | None = None
    ) -> list[Generation]:
        completions = self.client.complete(self.requests(retrieved))
        return [Generation(parse_answer(c.text), c.text) for c in completions]
