"""Tiny offline models and a character-level tokenizer for the core.eval tests (built in-test)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(i) for i in range(32, 127)] + ["\n"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def tiny_tokenizer(chat_template: bool = False) -> PreTrainedTokenizerFast:
    """One token per character (100 ids); ``<pad>``=0, ``<bos>``=1, ``<eos>``=2."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_config(**kw) -> LlamaConfig:
    defaults = dict(vocab_size=len(SPECIALS) + len(CHARS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0,
                    bos_token_id=1, eos_token_id=2)  # fmt: skip
    return LlamaConfig(**{**defaults, **kw})


def tiny_lm(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config()).eval()


def tiny_rm(seed: int = 0) -> LlamaForSequenceClassification:
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(tiny_config(num_labels=1)).eval()


ROWS = [
    {"id": "a", "subset": "chat/easy", "prompt": "Say hi.", "chosen": "Hi there!", "rejected": "No."},
    {"id": "b", "subset": "chat/easy", "prompt": "2+2?", "chosen": "4", "rejected": "It is five, I think."},
    {"id": "c", "subset": "safety", "prompt": "", "chosen": "A plain answer with no prompt.", "rejected": "x"},
    {
        "id": "d",
        "subset": "safety",
        "prompt": "Name a colour, please, and be brief about it.",
        "chosen": "Blue.",
        "rejected": "Green, because it is the colour of grass.",
    },
    {"id": "e", "subset": "reasoning", "prompt": "Count: a b c", "chosen": "3", "rejected": "4"},
]
