"""configs/igd.py: defaults from `IGDConfig`, the authors' per-variant settings, overrides."""

import dataclasses

import pytest

from configs.common import OverrideError
from configs.igd import PAPER, VARIANTS, get_config
from jaxmethods.methods.igd.config import IGDConfig, from_config_dict
from jaxmethods.train.config import ConfigError


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_converts(variant):
    cfg = from_config_dict(get_config(variant))
    assert cfg.name == f"igd_{variant}"


def test_paper_variants_follow_the_authors_scripts():
    betas = {k: from_config_dict(get_config(k)).tuning.betas for k in PAPER}
    # ig_monitor.sh runs Video_Games with beta 0.1 although its comment says 0.2
    assert betas == {"books": (0.1,), "video_games": (0.1,), "toys": (0.5,), "cds": (0.1,)}
    cfg = from_config_dict(get_config("video_games"))
    assert cfg.decode.alphas == (0.0, 0.1, 0.2)  # evaluate.sh runs 0.1
    assert cfg.decode.length_penalty == 0.0
    assert from_config_dict(get_config("video_games_bigrec")).decode.length_penalty == 1.0
    assert cfg.model.source == "Qwen/Qwen2.5-1.5B" and cfg.model.lora.rank == 0
    o = cfg.optim
    assert (o.optimizer, o.lr, o.schedule, o.warmup_steps, o.grad_accum, o.max_grad_norm) == (
        "adamw", 1e-4, "linear", 20, 8, 1.0,
    )  # fmt: skip
    t = cfg.tuning
    assert (t.micro_batch_size, t.epochs, t.patience, t.drop_last) == (16, 3, 1, False)
    assert cfg.data.total_frequency == 195559.0
    # 7B+ models: LoRA r 32, alpha 64, dropout 0.05 with one override
    lora = from_config_dict(get_config("books,lora_rank=32")).model.lora
    assert (lora.rank, lora.alpha, lora.dropout) == (32, 64.0, 0.05)


def test_config_file_states_only_differences():
    plain = get_config("demo").to_dict()
    defaults = dataclasses.asdict(IGDConfig())
    assert set(plain) == set(defaults)  # same sections, nothing added by hand
    assert plain["model"]["lora"] == defaults["model"]["lora"]


def test_overrides_in_order_and_errors_name_the_key():
    cfg = from_config_dict(get_config("video_games,param_dtype=bfloat16,betas=0.1+0.2,lr=5e-5"))
    assert cfg.model.param_dtype == "bfloat16"
    assert cfg.tuning.betas == (0.1, 0.2) and cfg.optim.lr == 5e-5
    with pytest.raises(OverrideError, match=r"'bettas'.*did you mean 'betas'"):
        get_config("demo,bettas=0.1")
    with pytest.raises(OverrideError, match="unknown variant 'videogames'"):
        get_config("videogames")
    c = get_config("tiny")
    c.tuning.epochs = -1
    with pytest.raises(ConfigError, match=r"config\.tuning\.epochs"):
        from_config_dict(c)
