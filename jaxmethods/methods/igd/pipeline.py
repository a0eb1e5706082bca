"""Data preparation for an IGD run: splits -> item frequencies -> tokenizer -> trie -> examples."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os

import numpy as np

from jaxmethods.data import amazon2018
from jaxmethods.data.amazon2018 import Sample
from jaxmethods.data.synthetic_catalog import synthetic_amazon
from jaxmethods.methods.igd.config import DataConfig, IGDConfig
from jaxmethods.methods.igd.dataset import TokenizedExamples, tokenize_samples
from jaxmethods.methods.igd.prompt import (
    category_name,
    encode_prompts,
    instruction_text,
    user_input_text,
)
from jaxmethods.methods.igd.trie import ItemTrie
from jaxmethods.models.backbone import BackboneConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Splits:
    train: list[Sample]
    valid: list[Sample]
    test: list[Sample]
    frequency: dict[str, float]  # title -> train frequency (the item_frequency JSON)
    catalog: list[str]  # every item title (info file), for the tokenizer alphabet and stats


@dataclasses.dataclass
class PreparedData:
    tokenizer: object
    cat: str
    trie: ItemTrie
    train: TokenizedExamples
    valid: TokenizedExamples
    test_prompts: list[list[int]]
    test_titles: list[str]
    stats: dict


def _subsample(samples: list[Sample], limit: int, seed: int) -> list[Sample]:
    if limit < 0 or limit >= len(samples):
        return samples
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), limit, replace=False))
    return [samples[i] for i in keep]


def resolve_path(pattern: str, field: str) -> str:
    """A path, or a glob pattern with exactly one match (the authors' `ls ...*11.csv`)."""
    if not any(ch in pattern for ch in "*?["):
        if not os.path.exists(pattern):
            raise FileNotFoundError(f"config.data.{field}: {pattern} does not exist")
        return pattern
    matches = sorted(glob.glob(pattern))
    if len(matches) != 1:
        raise FileNotFoundError(
            f"config.data.{field}: pattern {pattern!r} must match exactly one file, got {matches}"
        )
    return matches[0]


def load_splits(cfg: DataConfig, workdir: str) -> Splits:
    """The three splits and the train item frequencies, from `cfg.source`."""
    if cfg.source == "csv":
        train = amazon2018.read_samples_csv(resolve_path(cfg.train_file, "train_file"))
        valid = amazon2018.read_samples_csv(resolve_path(cfg.valid_file, "valid_file"))
        test = amazon2018.read_samples_csv(resolve_path(cfg.test_file, "test_file"))
        info = []
        if cfg.info_file:
            info = amazon2018.read_info_file(resolve_path(cfg.info_file, "info_file"))
        if cfg.item_frequency_file:
            path = resolve_path(cfg.item_frequency_file, "item_frequency_file")
            freq = amazon2018.read_item_frequency(path)
        else:
            freq = amazon2018.item_frequency(train, info)
        catalog = [t for t, _ in info] or list(freq)
    else:
        if cfg.source == "raw":
            paths = amazon2018.process_category(
                cfg.category,
                cfg.raw_dir,
                os.path.join(workdir, "data"),
                min_items=cfg.min_items,
                history_len=cfg.history_len,
            )
            log.info("processed %s into %s", cfg.category, os.path.dirname(paths["train"]))
            splits = amazon2018.ProcessedSplits(
                amazon2018.read_samples_csv(paths["train"]),
                amazon2018.read_samples_csv(paths["valid"]),
                amazon2018.read_samples_csv(paths["test"]),
                amazon2018.read_info_file(paths["info"]),
                (0, 0),
                (0, 0),
            )
        else:
            reviews, meta = synthetic_amazon(
                num_franchises=cfg.num_franchises,
                items_per_franchise=cfg.items_per_franchise,
                num_users=cfg.num_users,
                events_per_user=tuple(cfg.events_per_user),
                loyalty=cfg.loyalty,
                zipf_a=cfg.zipf_a,
                seed=cfg.seed,
            )
            splits = amazon2018.process_reviews(
                reviews, meta, min_items=1, history_len=cfg.history_len
            )
        train, valid, test = splits.train, splits.valid, splits.test
        freq = amazon2018.item_frequency(train, splits.info)
        catalog = [t for t, _ in splits.info]
    for name, rows in (("train", train), ("valid", valid), ("test", test)):
        if not rows:
            raise ValueError(f"config.data: the {name} split is empty")
    return Splits(
        _subsample(train, cfg.max_train, cfg.seed),
        _subsample(valid, cfg.max_valid, cfg.seed + 1),
        _subsample(test, cfg.max_test, cfg.seed + 2),
        freq,
        catalog,
    )


def build_tokenizer(cfg: BackboneConfig, splits: Splits, cat: str):
    """The backbone's tokenizer, or a tiny BPE trained on the prompt template and all titles."""
    if not cfg.is_tiny:
        from jaxmethods.hf import load_tokenizer

        return load_tokenizer(cfg.tokenizer_path)
    from jaxmethods.data.tokenizer import build_tiny_tokenizer

    history = [s.history_item_title for s in splits.train[:200]]
    texts = [instruction_text(cat), *(user_input_text(h, cat) for h in history)]
    texts += [f"{t}\n" for t in (*splits.catalog, *splits.frequency)]
    return build_tiny_tokenizer(texts, vocab_size=cfg.vocab_size)


def prepare(cfg: IGDConfig, workdir: str) -> PreparedData:
    """Loads the splits, builds the tokenizer and the trie, tokenises every split.

    Train and valid examples carry IG but unit weights; `dataset.reweighted` sets the weights
    for a given weighting and beta.
    """
    splits = load_splits(cfg.data, workdir)
    cat = category_name(cfg.data.category)
    tokenizer = build_tokenizer(cfg.model, splits, cat)
    total = cfg.data.total_frequency or None
    trie, _ = ItemTrie.from_titles(splits.frequency, tokenizer, total_frequency=total)
    cft = cfg.tuning.cft_alpha > 0
    verb = "played" if cft else None  # the authors' CFT dataset spells it correctly
    kwargs = dict(trie=trie, weighting="none", counterfactual=cft, verb=verb)
    train = tokenize_samples(splits.train, tokenizer, cat, **kwargs)
    valid = tokenize_samples(splits.valid, tokenizer, cat, **kwargs)
    test_prompts = encode_prompts(tokenizer, [s.history_item_title for s in splits.test], cat)
    stats = {
        "num_items_in_trie": trie.num_items,
        "num_catalog_items": len(splits.catalog),
        "num_train": len(train),
        "num_valid": len(valid),
        "num_test": len(test_prompts),
        "total_frequency": trie.total_frequency,
        "trie_nodes": trie.num_nodes,
        "zero_ig_share_train_targets": train.zero_ig_fraction(),
        "zero_ig_share_catalog": trie.zero_ig_fraction(),
    }
    log.info("data: %s", stats)
    return PreparedData(
        tokenizer=tokenizer,
        cat=cat,
        trie=trie,
        train=train,
        valid=valid,
        test_prompts=test_prompts,
        test_titles=[str(s.item_title) for s in splits.test],
        stats=stats,
    )
