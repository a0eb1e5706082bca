"""Public exports: every package's `__all__` resolves, the documented imports work, and importing
the packages does not pull in transformers / rouge-score / scipy / grain until a name needs them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ("losses", "models", "hf", "generate", "eval", "data", "retrieval", "llm", "serve")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(f"jaxmethods.{package}")
    names = module.__all__
    # Plain sorted (lazy exports) or ruff's RUF022 order: CONSTANTS, Classes, then functions.
    isort_key = lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)
    unique = set(names)
    assert names in (sorted(unique), sorted(unique, key=isort_key)), "keep __all__ sorted, unique"
    for name in names:
        assert getattr(module, name) is not None, f"jaxmethods.{package}.{name}"
    assert set(names) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'not_a_public_name'"):
        module.not_a_public_name  # noqa: B018


def test_documented_imports():
    from flax import nnx

    from jaxmethods.eval import evaluate_muse, evaluate_tofu, full_sort_metrics, rouge_l
    from jaxmethods.generate import beam_search, generate
    from jaxmethods.hf import load_pretrained, load_tokenizer, save_pretrained
    from jaxmethods.models import DecoderConfig, DecoderLM, LoRAParam, apply_lora, lora
    from jaxmethods.models.lora import apply_lora as apply_lora_from_module

    assert apply_lora is apply_lora_from_module and LoRAParam is nnx.LoRAParam
    assert lora.__name__ == "jaxmethods.models.lora"  # submodules stay importable by name
    assert DecoderLM.__module__ == "jaxmethods.models.decoder"
    assert DecoderConfig.tiny().dtype == "float32"
    for fn in (evaluate_muse, evaluate_tofu, full_sort_metrics, rouge_l, beam_search, generate,
               load_pretrained, load_tokenizer, save_pretrained):  # fmt: skip
        assert callable(fn)


def test_package_imports_stay_light():
    code = (
        "import sys, jaxmethods.models, jaxmethods.eval, jaxmethods.data, jaxmethods.losses, "
        "jaxmethods.generate, jaxmethods.hf, jaxmethods.retrieval, jaxmethods.llm, "
        "jaxmethods.serve; "
        "print(sorted(m for m in ('transformers', 'torch', 'rouge_score', 'nltk', 'scipy', "
        "'grain', 'tokenizers', 'openai', 'fastapi', 'uvicorn', 'bm25s') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
