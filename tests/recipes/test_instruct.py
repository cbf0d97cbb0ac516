"""Instruction tuning on tiny data: the three file kinds, loss on answers only (ChatML and Alpaca), the
run answering through likeme chat, errors."""

import json

import pytest
import yaml
from tiny import RECORDS, likeme_cli, tiny_tokenizer

from likeme import prompts
from likeme.data import examples
from likeme.errors import LikemeError
from likeme.recipes.instruct import read_conversations


def test_three_file_kinds(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(RECORDS[:2]))
    assert read_conversations(tmp_path / "a.json") == [
        [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}, {"role": "assistant", "content": "5"}],
        [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi there"}]]
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"}]
    (tmp_path / "b.jsonl").write_text(json.dumps({"messages": chat}) + "\n")
    assert read_conversations(tmp_path / "b.jsonl") == [chat]
    (tmp_path / "c.txt").write_text("Question: 2+2?\nAnswer: 4\n\nQuestion: capital of France?\nAnswer: Paris.\n")
    assert read_conversations(tmp_path / "c.txt") == [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "capital of France?"}, {"role": "assistant", "content": "Paris."}]]
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(LikemeError, match="d.jsonl, line 1: a record needs instruction and output"):
        read_conversations(tmp_path / "d.jsonl")


def test_loss_on_the_answers_only_chatml():
    tok = tiny_tokenizer()
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "cake?"}, {"role": "assistant", "content": "see you"}]
    ex = examples.instruct_example(tok, msgs)
    assert ex["input_ids"] == prompts.render_instruct(tok, msgs, generation_prompt=False)[: len(ex["input_ids"])]
    learned = tok.decode([i for i, l in zip(ex["input_ids"], ex["labels"]) if l != prompts.IGNORE])
    assert learned == "ok<|im_end|>see you<|im_end|>"


def test_alpaca_prompt_for_a_model_without_a_template():
    tok = tiny_tokenizer()
    tok.chat_template = None
    msgs = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi there"}]
    ex = examples.instruct_example(tok, msgs)
    text = tok.decode(ex["input_ids"])
    assert text.startswith("Below is an instruction that describes a task. Write a response")
    assert "### Instruction:\nSay hi.\n\n### Response:\nhi there" in text
    learned = tok.decode([i for i, l in zip(ex["input_ids"], ex["labels"]) if l != prompts.IGNORE])
    assert learned == "hi there" + tok.eos_token


def test_train_then_chat(tmp_path, tiny_lm):
    (tmp_path / "alpaca.json").write_text(json.dumps(RECORDS))
    run = tmp_path / "inst"
    p = likeme_cli("train", "instruct", "--data", tmp_path / "alpaca.json", "--base", tiny_lm, "--max-steps", "3",
                   "--eval-every", "3", "--batch-size", "4", "--out", run, "-q")
    assert p.returncode == 0, p.stderr
    assert "held-out perplexity of the answers" in p.stdout
    meta = yaml.safe_load((run / "run.yaml").read_text())
    assert (meta["recipe"], meta["task"], meta["voice_config"], meta["status"]) == \
        ("instruct", "causal-lm", {"format": "instruct"}, "done")
    m = json.loads((run / "metrics.json").read_text())
    assert (m["train_examples"], m["heldout_examples"], m["steps"]) == (11, 1, 3)
    import likeme

    voice = likeme.load(run)
    assert voice.format == "instruct" and voice.name == "Assistant"
    ids = voice.prompt_ids(["Say hi."])
    assert voice.tokenizer.decode(ids).endswith("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n")
    p = likeme_cli("chat", run, "-m", "Say hi.", "--max-new-tokens", "4", "--backend", "torch", "--seed", "1")
    assert p.returncode == 0, p.stderr


def test_errors(tmp_path, tiny_lm):
    p = likeme_cli("train", "instruct", "--base", tiny_lm, "--out", tmp_path / "a")
    assert p.returncode == 1 and "--data FILE" in p.stderr
    (tmp_path / "faq.txt").write_text("no pairs here")
    p = likeme_cli("train", "instruct", "--data", tmp_path / "faq.txt", "--base", tiny_lm, "--out", tmp_path / "b")
    assert p.returncode == 1 and "no 'Question: ... Answer: ...' pairs" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "one.json").write_text(json.dumps(RECORDS[:1]))
    p = likeme_cli("train", "instruct", "--data", tmp_path / "one.json", "--base", tiny_lm, "--out", tmp_path / "c")
    assert p.returncode == 1 and "needs at least 2" in p.stderr
