"""PERM end to end: the configs convert, the judge through a real `jaxmethods.serve` server, and
(slow) `tiny` trained, exported and resumed; `tiny` with per-user weights in the reward."""

import os

import numpy as np
import pytest

from configs.perm import VARIANTS, get_config
from jaxmethods.methods.perm.config import from_config_dict
from jaxmethods.train.metrics import read_jsonl

KINDS = ("resonation", "expression", "reception", "standby")


def test_every_variant_converts():
    for v in VARIANTS:
        extra = ",train=t.jsonl" if v.startswith("perm_") else ""
        extra += ",user_weights.path=pairs.jsonl" if v == "perm_mrm" else ""
        cfg = from_config_dict(get_config(v + extra))
        assert cfg.reward.kinds == KINDS
    paper = from_config_dict(get_config("perm_qwen7b,train=t.jsonl"))
    g, o = paper.grpo, paper.optim
    # grpo_train.sh: 4 GPUs x per-device 4 x grad-accum 4 = 64 completions = 8 prompts x 8.
    assert (g.group_size, g.prompts_per_step, g.micro_batch_size) == (8, 8, 16)
    assert (g.max_prompt_length, g.max_new_tokens, g.kl_coef, g.num_iterations) == (1024, 1024,
                                                                                     0.01, 1)  # fmt: skip
    assert (o.lr, o.warmup_ratio, paper.seed, paper.loop.checkpoint_every) == (1e-6, 0.1, 42, 200)
    assert paper.model.source == "Qwen/Qwen2.5-7B-Instruct" and paper.model.lora.rank == 0
    assert paper.data.num_train_samples == 3000 and paper.judge.llm.model == "gpt-4o-mini"
    assert paper.grpo.export_every == 200 and not paper.grpo.overlap_rewards
    assert (paper.judge.temperature, paper.judge.top_p, paper.judge.max_tokens) == (0.3, 0.9, 1024)
    assert (paper.judge.llm.max_retries, paper.judge.llm.max_concurrency) == (5, 64)
    r = paper.reward
    assert (r.mode, r.length_limit, r.length_coef, r.standby_coef) == ("harmonic", 768, 0.001, 0.5)
    lora = from_config_dict(get_config("perm_qwen7b,lora=16,train=t.jsonl"))
    assert (lora.model.lora.rank, lora.model.lora.alpha, lora.model.lora.dropout) == (16, 32, 0.1)
    assert lora.grpo.reference == "lora_base"


@pytest.mark.slow
def test_tiny_end_to_end_then_resume(tmp_path):
    from jaxmethods.methods.perm.run import run

    workdir = str(tmp_path / "tiny")
    summary = run(get_config("tiny"), workdir)
    rows = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3]
    for k in KINDS:
        assert f"scores/{k}" in rows[0]
    assert np.isfinite(summary["reward/first"]) and summary["grpo/steps"] == 3
    assert os.path.exists(os.path.join(workdir, "hf_export", "model.safetensors"))
    again = run(get_config("tiny"), workdir)  # resumes from the final checkpoint: no new step
    assert again["grpo/steps"] == 3
    assert len(read_jsonl(os.path.join(workdir, "metrics.jsonl"))) == 3


@pytest.mark.slow
def test_tiny_with_per_user_weights_in_the_reward(tmp_path):
    from jaxmethods.methods.perm.run import run

    over = ("tiny,user_weights.enabled=true,user_weights.num_users=4,"
            "user_weights.pairs_per_user=8,user_weights.meta_steps=3,warm_start.steps=0")  # fmt: skip
    summary = run(get_config(over), str(tmp_path / "mrm"))
    assert "user_weights/acc/adapted" in summary and "user_weights/acc/harmonic" in summary
    assert "user_weights" in summary["tables"] and summary["grpo/steps"] == 3


@pytest.mark.slow
def test_judge_round_trip_through_a_real_local_server():
    """PERMJudge -> openai client -> uvicorn + `jaxmethods.serve.create_app` -> a tiny random
    judge LM: each reply equals the in-process engine's greedy answer to the same request, and a
    batch without any score fails quoting the server's reply."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jaxmethods.llm import GenerationEngine, LocalClient, make_client
    from jaxmethods.methods.perm.judges import JudgeError, PERMJudge
    from jaxmethods.methods.perm.server_judge import judge_tokenizer, serve_in_thread
    from jaxmethods.models.decoder import DecoderConfig, DecoderLM

    record = {"persona": "a nurse", "scenario": "night shift", "query": "I am fine."}
    completions = ["# Analysis\nShe feels tired.\n# Response\nI hear you.", "no headers"]
    tok = judge_tokenizer(["a nurse night shift I am fine. She feels tired. I hear you."], 128)
    config = DecoderConfig.tiny(vocab_size=len(tok), max_position_embeddings=256,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id)  # fmt: skip
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: DecoderLM(config, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(0)
    draw = lambda path, leaf: (jnp.ones(leaf.shape, leaf.dtype) if "norm" in
                               jax.tree_util.keystr(path) else
                               jnp.asarray(rng.normal(0, 0.2, leaf.shape).astype(leaf.dtype)))  # fmt: skip
    model = nnx.merge(graphdef, jax.tree_util.tree_map_with_path(draw, abstract))
    engine = GenerationEngine(model, tok, name="tiny-judge", batch_buckets=(2,),
                              prompt_buckets=(128,), new_token_buckets=(16,))  # fmt: skip
    settings = dict(kinds=("expression",), temperature=0.0, top_p=1.0, max_tokens=12)
    with serve_in_thread(engine) as url:
        llm = {"backend": "openai", "model": "tiny-judge", "base_url": url, "api_key_env": ""}
        judge = PERMJudge(make_client(llm), endpoint=url, **settings)
        scores, raw = judge.raw_scores([record] * 2, completions)
        local = PERMJudge(LocalClient(engine), **settings)
        assert raw == local.raw_scores([record] * 2, completions)[1]
        if all(s is None for s in scores["expression"]):  # a random LM writes no "Score:"
            with pytest.raises(JudgeError, match="first reply"):
                judge.score_matrix([record] * 2, completions)


def test_records_get_their_users_row_of_the_weight_table():
    from jaxmethods.methods.perm.run import user_rows

    users = ("0", "1", "alice")  # the pairs reader's ids (strings)
    rows = user_rows([{"user": "alice", "query": "q"}, {"user": 1}], users)
    assert [(r["user"], r["user_id"]) for r in rows] == [(2, "alice"), (1, 1)]
    with pytest.raises(ValueError, match=r"training record 1: user 'bob'"):
        user_rows([{"user": 0}, {"user": "bob"}], users)


def test_pieces_of_a_tiny_step_without_the_model():
    """records -> tokenizer -> chat-templated prompts -> the trainer's prompt stream -> the rule
    judge's [B, 4] scores -> PERM's composed rewards (what `tiny` runs, minus the policy)."""
    import jax

    from jaxmethods.methods.perm.judges import make_judge
    from jaxmethods.methods.perm.prompts import prompt_records
    from jaxmethods.methods.perm.rewards import make_compose
    from jaxmethods.methods.perm.run import load_records, load_tokenizer
    from jaxmethods.methods.perm.synthetic import synthetic_completions
    from jaxmethods.train.grpo import prompt_stream

    cfg = from_config_dict(get_config("tiny"))
    records = load_records(cfg)
    tok = load_tokenizer(cfg, records)
    prompts = prompt_records(records, tok)
    ids = tok(prompts[0]["prompt"], add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == prompts[0]["prompt"] and len(ids) <= cfg.grpo.max_prompt_length
    batch = next(prompt_stream(prompts, prompts_per_step=2, seed=0))
    g = cfg.grpo.group_size
    rows = [r for r in batch for _ in range(g)]
    texts = synthetic_completions(len(rows), seed=3)
    scores = make_judge(cfg.judge, cfg.reward.kinds)(rows, texts)
    compose = jax.jit(make_compose(cfg.reward, cfg.reward.kinds))
    rewards = np.asarray(compose(scores, np.full(len(rows), 20, np.int32), {}))
    assert scores.shape == (2 * g, 4) and rewards.shape == (2 * g,)
    headerless = [i for i, t in enumerate(texts) if "# Analysis" not in t]
    # no headers: every rubric 1, bystander 0 -> 3 / 15 - 0.5
    np.testing.assert_allclose(rewards[headerless], 0.2 - 0.5, atol=1e-6)
