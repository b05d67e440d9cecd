"""The encoding rule: chat template vs plain concatenation, response start, truncation, bad rows."""

from __future__ import annotations

import datasets
import pandas as pd
import pytest
from eval_tiny import ROWS, tiny_tokenizer

from core.eval.encoding import encode_completion, encode_pairs, pad_sequences

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


def test_plain_concatenation_without_a_template():
    tok = tiny_tokenizer()
    enc = encode_pairs([MSG_ROW], tok)
    assert _text(tok, enc.chosen[0], "prompt") == "Hi\n"
    assert _text(tok, enc.chosen[0], "response") == "Hello<eos>"
    seq = encode_completion(tok, "Q: ", "A<eos>")  # EOS not doubled
    assert tok.decode(list(seq.ids), skip_special_tokens=False) == "Q: A<eos>" and seq.start == 3
    seq = encode_completion(tok, "Q: ", "A", add_eos=False)
    assert tok.decode(list(seq.ids)) == "Q: A"


def test_truncation_modes():
    tok = tiny_tokenizer()
    keep_end = encode_completion(tok, "abcdef", "XY", max_length=5)
    assert tok.decode(list(keep_end.ids), skip_special_tokens=False) == "efXY<eos>"
    assert keep_end.start == 2 and keep_end.truncated
    keep_start = encode_completion(tok, "abc", "XYZ", max_length=5, truncation="keep_start")
    assert tok.decode(list(keep_start.ids)) == "abcXY" and keep_start.start == 3
    with pytest.raises(ValueError, match="removed every completion token"):
        encode_completion(tok, "abcdef", "XY", max_length=5, truncation="keep_start")


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
