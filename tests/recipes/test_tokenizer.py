"""Tokenizers at three levels: training through the CLI, BPE's round trip on any text, a worked example of
merges, likeme tokenize and its --stats, errors."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import likeme_cli

from likeme.check.tokenstats import stats
from likeme.errors import LikemeError
from likeme.recipes.tokenizer import build_tokenizer

TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer\n" * 20
BPE = build_tokenizer([TEXT], "bpe", 300)


def test_worked_example_of_merges():
    """minbpe's "aaabdaaabac": the pair seen most is merged first, again and again (Sennrich et al. 2016).
    Pairs: aa x4 (overlapping), ab x2, bd, da, ba, ac -> merge 1 a+a. Now aa a b d aa a b a c: (aa, a) and
    (a, b) are seen twice each; the tie goes to a+b -> aa ab d aa ab a c: (aa, ab) twice -> merge 3 aa+ab."""
    tok = build_tokenizer(["aaabdaaabac"], "bpe", 256 + 4 + 3)  # the 256 bytes, 4 specials, 3 merges
    assert json.loads(tok.backend_tokenizer.to_str())["model"]["merges"] == [["a", "a"], ["a", "b"], ["aa", "ab"]]
    assert tok.tokenize("aaabdaaabac") == ["aaab", "d", "aaab", "a", "c"]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_text(text):
    ids = BPE(text, add_special_tokens=False)["input_ids"]
    assert BPE.decode(ids) == text


def test_specials_and_template_in_every_kind():
    for kind in ("bpe", "char", "word"):
        tok = build_tokenizer([TEXT], kind, 300)
        assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
        assert (tok.eos_token, tok.bos_token, tok.pad_token) == ("<|endoftext|>", "<|endoftext|>", "<|pad|>")
        if kind == "word":  # words without the spaces and newlines between them: no chat template renders back
            continue
        ids = tok.apply_chat_template([{"role": "user", "content": "to be"}], add_generation_prompt=True, tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        assert ids[0] == 2 and tok.decode(ids) == "<|im_start|>user\nto be<|im_end|>\n<|im_start|>assistant\n"
    char = build_tokenizer([TEXT], "char", 300)
    assert char.tokenize("to be\n") == ["t", "o", " ", "b", "e", "\n"] and char.decode(char("to be\n")["input_ids"]) == "to be\n"
    assert char.convert_ids_to_tokens(char("to bé")["input_ids"])[-1] == "<|unk|>"  # é was never seen
    word = build_tokenizer([TEXT], "word", 300)
    assert word.tokenize("To be, or not") == ["To", "be", ",", "or", "not"]


def test_stats_by_hand():
    char = build_tokenizer(["ab c"], "char", 100)
    # "ab cd": 5 tokens (d unknown), 5 characters, 2 words
    assert stats(char, "ab cd") == {"characters": 5, "tokens": 5, "words": 2, "chars_per_token": 1.0,
                                    "tokens_per_word": 2.5, "unknown_rate": 0.2, "byte_fallback_rate": 0.0}
    # byte-level BPE spells an unseen emoji in its 4 bytes: 4 tokens, each a piece of one character
    s = stats(BPE, "👋")
    assert (s["tokens"], s["byte_fallback_rate"], s["unknown_rate"]) == (4, 1.0, 0.0)


def test_cli_three_levels_then_tokenize(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    for kind in ("char", "word", "bpe"):
        p = likeme_cli("train", "tokenizer", "--data", tmp_path / "text.txt", "--kind", kind, "--vocab-size", "300",
                       "--out", tmp_path / kind, "-q")
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith(f"{tmp_path / kind}: {kind} tokenizer")
        m = json.loads((tmp_path / kind / "metrics.json").read_text())
        assert m["kind"] == kind and m["heldout_tokens"] > 0
        from transformers import AutoTokenizer
        assert AutoTokenizer.from_pretrained(tmp_path / kind / "model").eos_token == "<|endoftext|>"
    p = likeme_cli("tokenize", tmp_path / "char", "to be")
    assert p.stdout.splitlines()[:2] == ["5 tokens, 5 characters", "'t' 'o' ' ' 'b' 'e'"]
    p = likeme_cli("tokenize", tmp_path / "word", "to be, or")
    assert p.stdout.splitlines()[1] == "'to' 'be' ',' 'or'"
    p = likeme_cli("tokenize", tmp_path / "bpe", "--stats", tmp_path / "text.txt", "--against", "")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "chars per token" in lines[0] and lines[1].startswith(str(tmp_path / "bpe")[-28:])


def test_errors(tmp_path):
    with pytest.raises(LikemeError, match="--vocab-size 100 is below the 256 bytes"):
        build_tokenizer([TEXT], "bpe", 100)
    p = likeme_cli("train", "tokenizer", "--data", tmp_path / "missing.txt", "--out", tmp_path / "a")
    assert p.returncode == 1 and "missing.txt: no such file" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "empty.txt").write_text("\n\n")
    p = likeme_cli("train", "tokenizer", "--data", tmp_path / "empty.txt", "--out", tmp_path / "b")
    assert p.returncode == 1 and "no text to learn a tokenizer from" in p.stderr
    p = likeme_cli("train", "tokenizer", "--data", tmp_path / "empty.txt", "--kind", "sentencepiece")
    assert p.returncode == 2 and "sentencepiece" in p.stderr
    p = likeme_cli("tokenize", "smollm2-135m")
    assert p.returncode == 1 and "give the TEXT to tokenize, or --stats FILE" in p.stderr
