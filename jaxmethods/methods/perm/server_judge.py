"""The judge layer through the real OpenAI-compatible server, offline: `jaxmethods.serve`'s
`create_app` under uvicorn in a thread, the judge talking to it with the `openai` client.

A tiny random LM does not write "Score: k", so the demo first fine-tunes a tiny judge LM on the
rule judge's verdicts (the same PERM judge prompts, replies cut to the score line), serves it,
and scores completions through `PERMJudge`; it reports the parse rate and the agreement with the
rule judge (and the agreement of always answering the rule judge's most common score).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from jaxmethods.llm import make_client
from jaxmethods.methods.perm import rubrics
from jaxmethods.methods.perm.finetune import finetune
from jaxmethods.methods.perm.judges import PERMJudge, judge_messages
from jaxmethods.methods.perm.prompts import parse_completion
from jaxmethods.methods.perm.rule_judge import rule_scores
from jaxmethods.methods.perm.tiny_tokenizer import block_tokenizer, template_blocks
from jaxmethods.models.backbone import BackboneConfig, build_backbone

JUDGE_NAME = "perm-tiny-judge"


@contextlib.contextmanager
def serve_in_thread(engine: Any, *, max_wait_ms: float = 20.0) -> Iterator[str]:
    """Runs `jaxmethods.serve.create_app(engine)` under uvicorn on a free local port in a
    daemon thread; yields the base URL (`http://127.0.0.1:PORT/v1`); shuts down gracefully."""
    import uvicorn

    from jaxmethods.serve import create_app

    app = create_app(engine, max_wait_ms=max_wait_ms)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name="perm-judge-server")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the local judge server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def verdict(kind: str, score: int) -> str:
    """The short reply the tiny judge learns (parsed by the same parsers as a full reply)."""
    return f"Total Score: {score}/100" if kind == "standby" else f"Score: {score}"


def judge_examples(
    records: Sequence[dict], completions: Sequence[str], kinds: Sequence[str]
) -> list[tuple[list[dict], str, int]]:
    """(judge messages, the rule verdict, the rule score) per (record, completion, kind)."""
    out = []
    for rec, comp in zip(records, completions):
        analysis, response = parse_completion(comp)
        for kind in kinds:
            score = rule_scores(kind, analysis if kind == "resonation" else response)
            out.append((judge_messages(kind, rec, analysis, response), verdict(kind, score), score))
    return out


def judge_tokenizer(texts: Sequence[str], vocab_size: int):
    """A tiny tokenizer in which every constant block of the judge prompts (each rubric, both
    system prompts, the templates' text between placeholders) is one token (`block_tokenizer`)."""
    blocks = [rubrics.RESONATION_CRITERIA, rubrics.EXPRESSION_CRITERIA, rubrics.RECEPTION_CRITERIA,
              rubrics.JUDGE_SYSTEM_PROMPT, rubrics.STANDBY_SYSTEM_PROMPT,
              *template_blocks(rubrics.ANALYSIS_PROMPT, rubrics.RESPONSE_PROMPT,
                               rubrics.STANDBY_USER_PROMPT)]  # fmt: skip
    return block_tokenizer(texts, blocks, vocab_size)


def build_judge_lm(cfg: Any, examples: list, mesh: Any, workdir: str, seed: int):
    """(engine, sft loss): a tiny judge LM fine-tuned on `examples` (`judge_examples`)."""
    from jaxmethods.llm import GenerationEngine

    texts = [m["content"] for msgs, _, _ in examples for m in msgs] + [v for _, v, _ in examples]
    tok = judge_tokenizer(texts, cfg.vocab_size)
    prompts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
               for m, _, _ in examples]  # fmt: skip
    longest = max(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    bucket = 1 << max(6, (longest - 1).bit_length())
    new_tokens = 1 << max(4, (cfg.max_tokens - 1).bit_length())
    mcfg = BackboneConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                          num_kv_heads=2, head_dim=16, max_position_embeddings=bucket + new_tokens)  # fmt: skip
    model = build_backbone(mcfg, tok, seed=seed)
    pairs = [(p, v) for p, (_, v, _) in zip(prompts, examples)]
    model, loss = finetune(
        model, mcfg, tok, pairs, steps=cfg.sft_steps, batch_size=cfg.batch_size, lr=cfg.lr,
        max_length=bucket + new_tokens, mesh=mesh, workdir=os.path.join(workdir, "judge_sft"),
        seed=seed,
    )  # fmt: skip
    engine = GenerationEngine(model, tok, name=JUDGE_NAME, batch_buckets=(16,),
                              prompt_buckets=(bucket,), new_token_buckets=(new_tokens,))  # fmt: skip
    return engine, loss


def server_judge_pass(
    cfg: Any,
    train: tuple[Sequence[dict], Sequence[str]],
    test: tuple[Sequence[dict], Sequence[str]],
    kinds: Sequence[str],
    mesh: Any,
    workdir: str,
    seed: int,
) -> dict[str, float]:
    """Fine-tunes the tiny judge on `train` (records, completions), serves it, scores `test`
    through `PERMJudge` + the OpenAI client; returns flat `server_judge/...` metrics."""
    examples = judge_examples(*train, kinds)
    t0 = time.perf_counter()
    engine, loss = build_judge_lm(cfg, examples, mesh, workdir, seed)
    sft_seconds = time.perf_counter() - t0
    records, completions = test
    rule = np.array([s for _, _, s in judge_examples(records, completions, kinds)], np.float32)
    rule = rule.reshape(len(completions), len(kinds))
    t0 = time.perf_counter()
    with serve_in_thread(engine) as url:
        llm = {"backend": "openai", "model": JUDGE_NAME, "base_url": url, "api_key_env": "",
               "max_concurrency": 16, "max_retries": 2}  # fmt: skip
        judge = PERMJudge(make_client(llm), kinds=kinds, temperature=0.0, top_p=1.0,
                          max_tokens=cfg.max_tokens, endpoint=url)  # fmt: skip
        raw, _ = judge.raw_scores(records, completions)
    seconds = time.perf_counter() - t0
    got = np.array([[np.nan if raw[k][i] is None else raw[k][i] for k in kinds]
                    for i in range(len(completions))], np.float32)  # fmt: skip
    parsed = ~np.isnan(got)
    agree = np.where(parsed, got == rule, False)
    majority = np.mean([np.mean(rule[:, j] == np.bincount(rule[:, j].astype(int)).argmax())
                        for j in range(len(kinds))])  # fmt: skip
    return {
        "server_judge/sft_loss": loss,
        "server_judge/requests": float(rule.size),
        "server_judge/seconds": seconds,
        "server_judge/sft_seconds": sft_seconds,
        "server_judge/parse_rate": float(parsed.mean()),
        "server_judge/agreement": float(agree.mean()),
        "server_judge/majority_agreement": float(majority),
    }
