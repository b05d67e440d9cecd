"""The encoding rule: chat template vs separated plain text, merged turns, response start, truncation,
bad rows, and training rows that trl tokenises to the same ids."""

from __future__ import annotations

import datasets
import pandas as pd
import pytest
from eval_tiny import ROWS, tiny_tokenizer

from core.eval import encode_example
from core.eval.encoding import (
    MERGE_JOINER,
    Batching,
    chat_conversation,
    encode_completion,
    encode_pairs,
    encode_prompt,
    length_sorted_batches,
    pad_sequences,
    training_rows,
)

#: a strict-alternation template like gemma's: raises on two consecutive turns of one role
STRICT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "<{{ m['role'] }}>{{ m['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)

MSG_ROW = {
    "id": "m",
    "prompt": [{"role": "user", "content": "Hi"}],
    "chosen": [{"role": "assistant", "content": "Hello"}],
    "rejected": [{"role": "assistant", "content": "Go"}],
}


def _text(tok, seq, part):
    ids = seq.ids[seq.start :] if part == "response" else seq.ids[: seq.start]
    return tok.decode(list(ids), skip_special_tokens=False)


def test_messages_use_the_chat_template_when_there_is_one():
    tok = tiny_tokenizer(chat_template=True)
    enc = encode_pairs([MSG_ROW], tok)
    assert _text(tok, enc.chosen[0], "prompt") == "user: Hi\nassistant: "
    assert _text(tok, enc.chosen[0], "response") == "Hello\n"  # the template's text, no EOS added
    # a string prompt becomes one user message
    seq = encode_completion(tok, "Hi", [{"role": "assistant", "content": "Go"}])
    assert tok.decode(list(seq.ids)) == "user: Hi\nassistant: Go\n" and seq.start == len("user: Hi\nassistant: ")


def test_plain_text_without_a_template_separates_prompt_and_completion():
    tok = tiny_tokenizer()
    enc = encode_pairs([MSG_ROW], tok)
    assert _text(tok, enc.chosen[0], "prompt") == "Hi\n"  # a rendered message list already ends in "\n"
    assert _text(tok, enc.chosen[0], "response") == "Hello<eos>"
    seq = encode_completion(tok, "Q: ", "A<eos>")  # EOS not doubled, no separator after whitespace
    assert tok.decode(list(seq.ids), skip_special_tokens=False) == "Q: A<eos>" and seq.start == 3
    seq = encode_completion(tok, "Q: ", "A", add_eos=False)
    assert tok.decode(list(seq.ids)) == "Q: A"
    # texts that do not meet at whitespace get one space, counted as a response token
    seq = encode_completion(tok, "a small woman?", "Sorry")
    assert tok.decode(list(seq.ids), skip_special_tokens=False) == "a small woman? Sorry<eos>"
    assert _text(tok, seq, "response") == " Sorry<eos>"
    assert tok.decode(encode_example(tok, "Human: x\n\nAssistant:", " Sure")) == "Human: x\n\nAssistant: Sure<eos>"
    assert tok.decode(encode_prompt(tok, "a small woman?")) == "a small woman? "  # samples continue after it


def test_string_rows_go_through_the_chat_template_token_for_token():
    tok = tiny_tokenizer(chat_template=True)
    messages = [{"role": "user", "content": "a small woman?"}, {"role": "assistant", "content": "Sorry"}]
    expected = tok.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    assert encode_example(tok, "a small woman?", "Sorry") == list(expected)
    seq = encode_completion(tok, "a small woman?", "Sorry")
    assert list(seq.ids) == list(expected) and _text(tok, seq, "response") == "Sorry\n"
    assert encode_example(tok, messages[:1], messages[1:]) == list(expected)  # message lists: same rule
    assert tok.decode(encode_prompt(tok, "a small woman?")) == "user: a small woman?\nassistant: "


def test_consecutive_same_role_turns_are_merged_and_counted():
    tok = tiny_tokenizer()
    tok.chat_template = STRICT_TEMPLATE
    two_assistants = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "assistant", "content": "Anything else?"},
    ]
    with pytest.raises(Exception, match="must alternate"):  # the template itself refuses
        tok.apply_chat_template(two_assistants + [{"role": "user", "content": "No"}], tokenize=False)
    row = {"id": "x", "prompt": two_assistants, "chosen": "Bye", "rejected": "No"}
    enc = encode_pairs([row], tok)
    assert enc.n_merged_turns == 4 and enc.chosen[0].merged_turns == 2  # prompt run + boundary, per side
    merged = "Hello." + MERGE_JOINER + "Anything else?" + MERGE_JOINER + "Bye"
    assert tok.decode(list(enc.chosen[0].ids), skip_special_tokens=False) == (
        f"<bos><user>Hi<eos>\n<assistant>{merged}<eos>\n"
    )
    assert _text(tok, enc.chosen[0], "prompt") == "<bos><user>Hi<eos>\n<assistant>"
    prompt, completion, n = chat_conversation(two_assistants, "Bye")
    assert prompt == two_assistants[:1] and completion == [{"role": "assistant", "content": merged}] and n == 2


@pytest.mark.parametrize("template", [True, False])
def test_trl_tokenises_training_rows_to_the_evaluation_ids(template, tmp_path):
    from types import SimpleNamespace

    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    tok = tiny_tokenizer(chat_template=template)
    rows = [
        {"prompt": "a small woman?", "chosen": "Sorry", "rejected": "Sure"},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hey", "rejected": "Go"},
    ][: 2 if template else 1]
    for row in rows:
        ds = training_rows(datasets.Dataset.from_list([row]), tok)
        common = {"output_dir": str(tmp_path), "report_to": "none", "bf16": False, "use_cpu": True}
        rm = RewardTrainer._prepare_dataset(None, ds, tok, RewardConfig(**common, max_length=None), "train")[0]
        dpo_self = SimpleNamespace(_tokenizer=tok)
        dpo = DPOTrainer._prepare_dataset(dpo_self, ds, tok, DPOConfig(**common), "train")[0]
        for key in ("chosen", "rejected"):
            expected = encode_example(tok, row["prompt"], row[key])
            assert list(rm[f"{key}_ids"]) == expected
            assert list(dpo["prompt_ids"]) + list(dpo[f"{key}_ids"]) == expected
            seq = encode_completion(tok, row["prompt"], row[key])
            assert seq.start == len(dpo["prompt_ids"])  # the same response tokens


def test_truncation_modes():
    tok = tiny_tokenizer()
    keep_end = encode_completion(tok, "abcde ", "XY", max_length=5)
    assert tok.decode(list(keep_end.ids), skip_special_tokens=False) == "e XY<eos>"
    assert keep_end.start == 2 and keep_end.truncated
    keep_start = encode_completion(tok, "ab ", "XYZ", max_length=5, truncation="keep_start")
    assert tok.decode(list(keep_start.ids)) == "ab XY" and keep_start.start == 3
    with pytest.raises(ValueError, match="removed every completion token"):
        encode_completion(tok, "abcde ", "XY", max_length=5, truncation="keep_start")


def test_bad_rows_name_row_and_key():
    tok = tiny_tokenizer()
    bad = [dict(ROWS[0]), {"id": "x", "prompt": "p", "chosen": "c"}]
    with pytest.raises(ValueError, match=r"eval\.jsonl: row 1 \(id='x'\), key 'rejected': missing"):
        encode_pairs(bad, tok, source="eval.jsonl")
    with pytest.raises(ValueError, match=r"row 0 \(id='a'\), key 'chosen': empty text"):
        encode_pairs([{**ROWS[0], "chosen": ""}], tok)
    with pytest.raises(ValueError, match="message 0 must be a mapping"):
        encode_pairs([{**MSG_ROW, "chosen": [{"role": "assistant"}]}], tok)
    with pytest.raises(ValueError, match="expected a string or a list"):
        encode_pairs([{**ROWS[0], "rejected": 3}], tok)


def test_dataset_dataframe_and_list_inputs_agree():
    tok = tiny_tokenizer(chat_template=True)
    rows = [MSG_ROW, {**MSG_ROW, "id": "n"}]
    a = encode_pairs(rows, tok)
    b = encode_pairs(datasets.Dataset.from_list(rows), tok)
    c = encode_pairs(pd.DataFrame(rows), tok)
    assert a.chosen == b.chosen == c.chosen and a.rejected == b.rejected == c.rejected
    assert [m["id"] for m in c.meta] == ["m", "n"]


def test_padding_sides():
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_id=0, side="left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_ppo_prompt_rows_encode_as_generation_prompts():
    from core.trainers.ppo import tokenize_prompts

    tok = tiny_tokenizer()
    tok.chat_template = STRICT_TEMPLATE
    prompts = ["a small woman?", [{"role": "user", "content": "Hi"}, {"role": "user", "content": "there"}]]
    rows = training_rows(datasets.Dataset.from_dict({"prompt": [prompts[0]]}), tok, completions=())
    rows2 = training_rows(datasets.Dataset.from_list([{"prompt": prompts[1]}]), tok, completions=())
    for p, ds in zip(prompts, (rows, rows2), strict=True):
        assert tokenize_prompts(ds, tok)["input_ids"] == [encode_prompt(tok, p)]


def test_a_turn_ends_at_eos_or_the_templates_end_of_turn_token_and_generation_stops_there():
    """gemma-it ends a turn with <end_of_turn>, ChatML with <|im_end|>: stop_token_ids finds the
    first special token the template writes after an assistant message (eos first), and sampling
    (core.eval.generation) stops at either; without such a token (or a template) eos alone."""
    from eval_tiny import tiny_lm

    from core.eval.encoding import stop_token_ids
    from core.eval.generation import GenerationSettings, generate_completions

    plain, templated = tiny_tokenizer(), tiny_tokenizer(chat_template=True)
    assert stop_token_ids(plain) == stop_token_ids(templated) == [plain.eos_token_id]
    chatml = tiny_tokenizer()
    chatml.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    chatml.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")  # fmt: skip
    end = chatml.convert_tokens_to_ids("<|im_end|>")
    assert stop_token_ids(chatml) == [chatml.eos_token_id, end]
    model, seen = tiny_lm(0), []
    model.resize_token_embeddings(len(chatml))
    real = model.generate
    model.generate = lambda **kw: seen.append(kw["generation_config"].eos_token_id) or real(**kw)
    generate_completions(model, chatml, ["hi"], GenerationSettings(max_new_tokens=3))
    generate_completions(model, plain, ["hi"], GenerationSettings(max_new_tokens=3))
    assert seen == [[plain.eos_token_id, end], plain.eos_token_id]


def test_batches_bounded_by_rows_and_padded_tokens():
    lengths = [5, 40, 12, 40, 7, 30, 3, 12]
    assert length_sorted_batches(lengths, 3) == [[1, 3, 5], [2, 7, 4], [0, 6]]  # rows only, longest first
    batches = length_sorted_batches(lengths, Batching(rows=3, tokens=80))
    assert sorted(i for b in batches for i in b) == list(range(8))  # every row once
    assert all(len(b) * max(lengths[i] for i in b) <= 80 and len(b) <= 3 for b in batches)
    assert batches == [[1, 3], [5, 2], [7, 4, 0], [6]]
    assert length_sorted_batches([100, 2], Batching(rows=4, tokens=10)) == [[0], [1]]  # too long: alone
    assert Batching.of({"batch_size": 16, "max_batch_tokens": 4096}, rows=8) == Batching(8, 4096)
    assert Batching.of({"batch_size": 16}) == Batching(16, None)
    with pytest.raises(ValueError, match="rows >= 1"):
        Batching(0)
