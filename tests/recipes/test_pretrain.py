"""Pretraining from scratch and continued pretraining on tiny data: packed blocks, the run folder, a sample
at each evaluation, Ctrl-C and --resume, and a voice trained on top of the from-scratch model."""

import json

import pytest
import torch
import yaml
from tiny import interrupt_at, likeme_cli

from likeme import batching
from likeme.data.text import blocks, store_documents, token_stream
from likeme.errors import LikemeError
from likeme.recipes.pretrain import PretrainConfig, train_pretrain
from likeme.runs import Interrupted

TEXT = ("ok see you at the cafe then. sure, see you soon! hi there, how are you doing today? "
        "i am fine thanks, and you? cake or pie? chocolate cake please. ") * 12


def test_packed_blocks_against_literal_tensors():
    """Documents joined with <|endoftext|> (id 0 here) into one stream, cut into blocks with no padding."""
    stream = token_stream([[5, 6], [7, 8, 9, 4], [3]], eos_id=0)
    assert stream == [5, 6, 0, 7, 8, 9, 4, 0, 3, 0]
    batch = batching.collate(blocks(stream, 3), pad_id=1)
    assert torch.equal(batch["input_ids"], torch.tensor([[5, 6, 0], [7, 8, 9], [4, 0, 3]]))
    assert torch.equal(batch["labels"], batch["input_ids"]) and batch["attention_mask"].all()


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def config(text, tok, out, **kw):
    return PretrainConfig(data=[str(text)], tokenizer=str(tok), layers=2, heads=2, dim=32, block_size=16,
                          batch_size=4, eval_every=2, eval_max=8, sample_tokens=8, out=str(out), **kw)


def test_from_scratch_through_the_cli_then_generate_and_a_voice_on_top(text, tmp_path):
    from tiny import three_person_store

    run = tmp_path / "gpt"
    p = likeme_cli("train", "tokenizer", "--data", text, "--kind", "char", "--out", tmp_path / "chars", "-q")
    assert p.returncode == 0, p.stderr
    p = likeme_cli("train", "pretrain", "--data", text, "--tokenizer", tmp_path / "chars", "--layers", "2", "--heads", "2",
                   "--dim", "32", "--block-size", "16", "--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--sample-tokens", "8",
                   "--out", run, "-q")
    assert p.returncode == 0, p.stderr
    assert "validation loss" in p.stdout and f"likeme generate {run}" in p.stdout
    meta = yaml.safe_load((run / "run.yaml").read_text())
    assert (meta["recipe"], meta["task"], meta["base"], meta["status"]) == ("pretrain", "causal-lm", None, "done")
    config_json = json.loads((run / "model" / "config.json").read_text())
    assert (config_json["num_hidden_layers"], config_json["hidden_size"], config_json["max_position_embeddings"]) == (2, 32, 16)
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 6 and m["train_tokens"] == 6 * 4 * 16 and m["val_loss"] > 0
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r] == [3, 6]
    assert [r["step"] for r in rows if "samples" in r] == [3, 6]
    assert all(len(r["samples"]) == 1 and isinstance(r["samples"][0], str) for r in rows if "samples" in r)
    p = likeme_cli("generate", run, "hi", "--max-new-tokens", "5", "--backend", "torch", "--seed", "1")
    assert p.returncode == 0 and p.stdout.startswith("hi"), p.stderr
    # a voice on top: the from-scratch model is a base like any other
    three_person_store(tmp_path / "s.db").close()
    p = likeme_cli("train", "voice", "--as", "Ana", "--db", tmp_path / "s.db", "--base", run, "--max-steps", "2",
                   "--eval-every", "2", "--batch-size", "4", "--grad-accum", "1", "--out", tmp_path / "ana", "-q")
    assert p.returncode == 0, p.stderr
    p = likeme_cli("chat", tmp_path / "ana", "-m", "hi", "--max-new-tokens", "4", "--backend", "torch", "--seed", "1")
    assert p.returncode == 1 and "longer than the model's 16-token context" in p.stderr  # ChatML alone is longer
    p = likeme_cli("train", "voice", "--as", "Ana", "--db", tmp_path / "s.db", "--base", run, "--max-steps", "2",
                   "--format", "transcript", "--block-size", "16", "--eval-every", "2", "--batch-size", "4", "--grad-accum", "1",
                   "--out", tmp_path / "ana-lines", "-q")
    assert p.returncode == 0, p.stderr
    p = likeme_cli("chat", tmp_path / "ana-lines", "-m", "hi", "--max-new-tokens", "2", "--backend", "torch", "--seed", "1")
    assert p.returncode == 0, p.stderr


def test_continued_pretraining_changes_the_base_weights(text, tiny_lm, tmp_path):
    from likeme import models

    run = train_pretrain(PretrainConfig(data=[str(text)], base=str(tiny_lm), block_size=16, batch_size=4,
                                        max_steps=3, eval_every=3, sample_tokens=0, lr=1e-3, out=str(tmp_path / "more")),
                         progress=False)
    assert yaml.safe_load((run / "run.yaml").read_text())["base"] == str(tiny_lm)
    before, after = models.load_causal_lm(tiny_lm)[0].state_dict(), models.load_causal_lm(run)[0].state_dict()
    name = "model.layers.0.mlp.down_proj.weight"
    assert before[name].shape == after[name].shape and not torch.equal(before[name], after[name])


def test_ctrl_c_then_resume_ends_as_an_uninterrupted_run(text, tiny_lm, tmp_path):
    straight = train_pretrain(config(text, tiny_lm, tmp_path / "straight", max_steps=6), progress=False)
    with pytest.raises(Interrupted, match="interrupted at step 3.*likeme train pretrain --out .* --resume"):
        train_pretrain(config(text, tiny_lm, tmp_path / "run", max_steps=6), progress=False, callbacks=[interrupt_at(3)])
    run = tmp_path / "run"
    assert yaml.safe_load((run / "run.yaml").read_text())["status"] == "interrupted"
    train_pretrain(PretrainConfig(out=str(run)), resume=True, progress=False)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6]  # a row every 2 steps, none twice
    from safetensors.torch import load_file
    a, b = load_file(str(straight / "model" / "model.safetensors")), load_file(str(run / "model" / "model.safetensors"))
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    straight_rows = [json.loads(l) for l in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows if "samples" in r] == [r["samples"] for r in straight_rows if "samples" in r]


def test_errors(text, tmp_path, tiny_lm):
    p = likeme_cli("train", "pretrain", "--data", text, "--out", tmp_path / "a")
    assert p.returncode == 1 and "needs a tokenizer: --tokenizer RUN" in p.stderr and "Traceback" not in p.stderr
    p = likeme_cli("train", "pretrain", "--data", tmp_path / "missing.txt", "--tokenizer", tiny_lm, "--out", tmp_path / "b")
    assert p.returncode == 1 and "missing.txt: no such file" in p.stderr
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 50)
    p = likeme_cli("train", "pretrain", "--data", tmp_path / "latin1.txt", "--tokenizer", tiny_lm, "--out", tmp_path / "c")
    assert p.returncode == 1 and "is not UTF-8 text" in p.stderr and "iconv" in p.stderr
    (tmp_path / "short.txt").write_text("hi")
    p = likeme_cli("train", "pretrain", "--data", tmp_path / "short.txt", "--tokenizer", tiny_lm, "--out", tmp_path / "d")
    assert p.returncode == 1 and "too little text" in p.stderr
    p = likeme_cli("train", "pretrain", "--data", text, "--tokenizer", tiny_lm, "--dim", "30", "--heads", "4",
                   "--out", tmp_path / "e")
    assert p.returncode == 1 and "--dim 30 does not divide into --heads 4" in p.stderr


def test_documents_from_the_store(tmp_path, tiny_lm):
    from tiny import three_person_store

    from likeme.data.store import Store

    three_person_store(tmp_path / "s.db", sessions=2).close()
    with Store(tmp_path / "s.db") as store:
        everyone, ana = store_documents(store), store_documents(store, "Ana")
    assert everyone[0] == "Sam: hi 0\nAna: hey\nAna: what's up\nBo: yo\nAna: ok\nSam: pic" and len(everyone) == 2
    assert ana == ["hey\nwhat's up\nok"] * 2
    with pytest.raises(LikemeError, match="Zed"):
        with Store(tmp_path / "s.db") as store:
            store_documents(store, "Zed")
