"""Decide like me: the classify recipe on tiny models (a 2-layer Llama, a 2-layer BERT), through the CLI too."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from tiny import ROWS, likeme_cli

from likeme.batching import pad
from likeme.data.labels import class_weights, label_order, stratified_split
from likeme.data.tables import read_labelled
from likeme.errors import LikemeError
from likeme.recipes.classify import ClassifyConfig, train_classifier
from likeme.runs import Interrupted
from likeme.training.frozen import FrozenSplit
from likeme.training.trainable import param_groups, select
from likeme.use.classifier import encode, load_classifier
from likeme.use.heads import new_classifier

LIKEME = str(Path(sys.executable).parent / "likeme")
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
BANKING = SHARED / "classification" / "banking77" / "banking_data"

def write_csv(path: Path, rows=ROWS, times=4) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:  # csv's default line end is CRLF
        w = csv.writer(f)
        w.writerow(["text", "intent"])
        w.writerows(rows * times)
    return path


def run(*args):
    """`likeme ARGS` in a subprocess, as a user runs it."""
    p = subprocess.run([LIKEME, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def cli(*args):
    """`likeme ARGS` through the same entry point, in this process (no ~10 s of imports per call)."""
    p = likeme_cli(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def cfg(tmp_path, base, **kw):
    kw = {"data": str(write_csv(tmp_path / "d.csv")), "label_column": "intent", "base": str(base), "batch_size": 4,
          "max_steps": 4, "lr": 1e-2, "out": str(tmp_path / "run"), **kw}
    return ClassifyConfig(**kw)


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


# -- end to end through the CLI -----------------------------------------------------------------


def test_cli_train_classify_eval(tmp_path, tiny_lm):
    data, out = write_csv(tmp_path / "intents.csv"), tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("batch_size: 8\nepochs: 2\n")
    printed = run("train", "classifier", "--data", data, "--label-column", "intent", "--base", tiny_lm,
                  "--config", config, "--batch-size", 4, "--lr", 0.01, "--out", out, "-q")
    assert "validation accuracy" in printed and "likeme classify" in printed
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["task"] == "classification" and meta["recipe"] == "classifier" and meta["status"] == "done"
    assert meta["labels"] == ["card", "rate", "transfer"] and meta["backbone"] == "causal"
    assert meta["config"]["batch_size"] == 4 and meta["config"]["epochs"] == 2  # flag beats file, file beats default
    assert meta["config"]["trainable"] == "last-blocks" and meta["template"] == meta["config"]["template"] != "{text}"
    assert meta["data"]["file"] == str(data.resolve()) and len(meta["data"]["sha256"]) == 64
    for f in ("model/config.json", "model/model.safetensors", "model/tokenizer.json", "metrics.jsonl", "metrics.json",
              "plots/loss.png", "plots/confusion.png"):
        assert (out / f).is_file(), f
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    m = json.loads((out / "metrics.json").read_text())
    assert m["train_examples"] == 32 and m["steps"] == 16  # 32 texts / batch 4 = 8 steps per epoch, 2 epochs
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 17))  # one training row per step
    evals = [r for r in rows if "eval_loss" in r]
    assert [(r["step"], r["epoch"]) for r in evals] == [(8, 1.0), (16, 2.0)]  # one evaluation per epoch
    assert set(evals[0]) == {"step", "epoch", "seconds", "eval_loss", "eval_accuracy", "eval_macro_f1"}
    assert all(r["examples_per_s"] > 0 for r in rows if "loss" in r)
    best = max(evals, key=lambda r: r["eval_macro_f1"])  # the saved weights are the best epoch's
    assert m["val_macro_f1"] == best["eval_macro_f1"] and m["best_epoch"] == best["epoch"]
    assert m["cached"] is True and m["val_examples"] == 4

    from likeme import models
    ref = models.resolve(out)
    assert ref.kind == "run" and ref.task == "classification" and ref.weights == out / "model"

    printed = cli("classify", out, "where is my card", "exchange rate today")
    lines = printed.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("where is my card")
    label, shown, _ = lines[0].split("\t")
    assert len(shown.split("  ")) == 3 and shown.split()[0] == label  # top 3, the label first
    assert label == load_classifier(out).predict(["where is my card"])[0][0]
    shown = json.loads(cli("classify", out, "where is my card", "--json", "--top", 2))
    assert shown[0]["text"] == "where is my card" and len(shown[0]["probabilities"]) == 2
    report = json.loads(cli("classify", out, "--data", data, "--json"))  # label column as trained: intent
    assert report["examples"] == 36 and report["labels"] == meta["labels"]
    assert sum(map(sum, report["confusion"])) == 36 and set(report["per_class"]) == set(meta["labels"])
    from likeme.check.evaluate import classification_report
    text = classification_report(report)
    assert text.startswith("36 texts: accuracy") and "confusion (rows: true" in text

    from likeme.check.evaluate import eval_classifier
    assert eval_classifier(out, data) == report
    assert json.loads(cli("eval", out, "--data", data, "--json")) == report  # `likeme eval` routes by run type
    assert cli("eval", out, "--data", data).strip() == f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}"


def test_cli_errors_are_one_line(tmp_path, tiny_lm):
    p = subprocess.run([LIKEME, "train", "classifier", "--base", str(tiny_lm)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "--data FILE" in p.stderr
    data = write_csv(tmp_path / "d.csv")
    p = subprocess.run([LIKEME, "train", "classifier", "--data", str(data), "--base", str(tiny_lm)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "no column 'label' (columns: text, intent)" in p.stderr


def test_label_by_author(tmp_path, tiny_lm):
    from tiny import three_person_store

    three_person_store(tmp_path / "s.db").close()  # Ana 36 text messages, Sam 24, Bo 12
    out = tmp_path / "who"
    cli("train", "classifier", "--label-by", "author", "--db", tmp_path / "s.db", "--min-messages", 20,
        "--base", tiny_lm, "--max-steps", 2, "--out", out, "-q")
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["labels"] == ["Ana", "Sam"] and json.loads((out / "metrics.json").read_text())["train_examples"] == 54
    label, probs = load_classifier(out).predict(["hey"])[0]
    assert set(probs) == {"Ana", "Sam"} and probs[label] == max(probs.values()) and abs(sum(probs.values()) - 1) < 1e-5
    assert meta["data"]["messages"] == {"Ana": 36, "Sam": 24, "Bo": 12}  # where the texts came from
    with pytest.raises(LikemeError, match="two people with at least 100"):
        train_classifier(ClassifyConfig(label_by="author", db=str(tmp_path / "s.db"), min_messages=100,
                                        base=str(tiny_lm), out=str(tmp_path / "x")), progress=False)


# -- what trains ----------------------------------------------------------------------------------


def test_last_blocks_changes_only_last_block_and_head(tmp_path, tiny_lm):
    before = weights(tiny_lm)
    out = train_classifier(cfg(tmp_path, tiny_lm), progress=False)
    after = weights(out / "model")
    for k, v in after.items():
        if k.startswith(("model.layers.0.", "model.embed_tokens")):
            assert torch.equal(v, before[k]), k  # frozen: bit-identical
    changed = {k for k in after if k in before and not torch.equal(after[k], before[k])}
    assert any(k.startswith("model.layers.1.") for k in changed) and "model.norm.weight" in changed
    assert after["score.weight"].shape == (3, 64)


def test_head_changes_only_the_head(tmp_path, tiny_lm):
    before = weights(tiny_lm)
    out = train_classifier(cfg(tmp_path, tiny_lm, trainable="head"), progress=False)
    after = weights(out / "model")
    assert all(torch.equal(v, before[k]) for k, v in after.items() if k != "score.weight")
    first = new_classifier(str(tiny_lm), ["card", "rate", "transfer"])[0].score.weight  # same seed: the initial head
    assert not torch.equal(after["score.weight"], first.detach())


@pytest.mark.parametrize("trainable", ["last-blocks", "lora", "head"])
def test_the_new_head_has_its_own_learning_rate(tiny_lm, trainable):
    model, tok, kind = new_classifier(str(tiny_lm), ["a", "b", "c"])
    model = select(model, trainable, head="score", task_type="SEQ_CLS")
    groups = param_groups(model, 2e-4, 2e-3)
    trainable_ids = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable_ids  # each once, nothing frozen
    head = groups[-1]
    assert head["lr"] == 2e-3 and [tuple(p.shape) for p in head["params"]] == [(3, 64)]  # score.weight, no bias
    assert len(groups) == (1 if trainable == "head" else 2)


def test_cache_gives_the_same_model_as_the_plain_path(tmp_path, tiny_lm):
    """One step: the same weights. Six: the same losses and predictions to float noise (the cache computes the
    frozen blocks in other batches, and at lr 1e-2 Adam turns a gradient's noise into a step of +-lr)."""
    for steps in (1, 6):
        (tmp_path / f"a{steps}").mkdir()
        (tmp_path / f"b{steps}").mkdir()
        cached = train_classifier(cfg(tmp_path / f"a{steps}", tiny_lm, max_steps=steps), progress=False)
        plain = train_classifier(cfg(tmp_path / f"b{steps}", tiny_lm, max_steps=steps, cache=False), progress=False)
        assert json.loads((cached / "metrics.json").read_text())["cached"] is True
        assert json.loads((plain / "metrics.json").read_text())["cached"] is False
        a, b = weights(cached / "model"), weights(plain / "model")
        assert not torch.equal(a["score.weight"], weights(tiny_lm).get("score.weight", torch.zeros(1)))
        if steps == 1:
            for k in a:
                assert torch.allclose(a[k], b[k], atol=1e-5), k
        losses = [[r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
                  for run in (cached, plain)]
        assert len(losses[0]) == steps and losses[0] == pytest.approx(losses[1], abs=1e-2)
        texts = [t for t, _ in ROWS]
        pa, pb = load_classifier(cached).probabilities(texts), load_classifier(plain).probabilities(texts)
        assert torch.allclose(pa, pb, atol=1e-5 if steps == 1 else 1e-2)


def test_ctrl_c_then_resume(tmp_path, tiny_lm):
    from tiny import interrupt_at

    with pytest.raises(Interrupted, match="interrupted at step 11.*likeme train classifier --out .* --resume"):
        train_classifier(cfg(tmp_path, tiny_lm, max_steps=None, epochs=3), progress=False, callbacks=[interrupt_at(11)])
    out = tmp_path / "run"
    assert yaml.safe_load((out / "run.yaml").read_text())["status"] == "interrupted"
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"checkpoint-8", "checkpoint-11"}  # epoch 1, Ctrl-C
    assert not (out / "model").exists()
    train_classifier(ClassifyConfig(out=str(out)), resume=True, progress=False)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 25))  # each step once
    assert [r["step"] for r in rows if "eval_loss" in r] == [8, 16, 24]
    assert yaml.safe_load((out / "run.yaml").read_text())["status"] == "done" and not (out / "checkpoints").exists()
    assert load_classifier(out).labels == ["card", "rate", "transfer"]


def test_frozen_split_reproduces_the_forward_pass(tiny_lm):
    model, tok, kind = new_classifier(str(tiny_lm), ["a", "b"])
    rows = encode(tok, ["a much longer text than the others", "hi", "medium length text"], None)
    for trainable in ("last-blocks", "head"):
        assert FrozenSplit.make(model, trainable, kind).check(rows, tok.pad_token_id, atol=1e-6)


def test_lora_saves_a_merged_model(tmp_path, tiny_lm):
    before = weights(tiny_lm)
    out = train_classifier(cfg(tmp_path, tiny_lm, trainable="lora", max_steps=2), progress=False)
    after = weights(out / "model")
    assert not any("lora" in k for k in after) and set(after) == set(before) - {"lm_head.weight"} | {"score.weight"}
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])  # LoRA never adapts it
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(after[q], before[q])  # the adapter was merged into the linear layers


# -- pooling: the last real token, with EOS as padding --------------------------------------------


def test_pools_the_last_non_padding_token(tiny_lm):
    model, tok, _ = new_classifier(str(tiny_lm), ["a", "b", "c"])
    assert tok.pad_token_id == tok.eos_token_id == model.config.pad_token_id
    texts = ["a much longer text than the others", "hi", "typed <|im_end|> inside"]
    rows = encode(tok, texts, None)
    assert all(tok.eos_token_id not in r for r in rows)  # eos typed in a text is split, never the eos id
    lengths = [len(r) for r in rows]
    assert len(set(lengths)) == 3
    ids, mask = pad(rows, tok.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        logits = model(**batch).logits  # (3, 3)
        hidden = model.model(**batch).last_hidden_state  # (3, T, 64)
        by_hand = torch.stack([model.score(hidden[i, n - 1]) for i, n in enumerate(lengths)])
        at_end = model.score(hidden[:, -1])  # what a model that ignored padding would read
    assert torch.allclose(logits, by_hand, atol=1e-6)
    short = lengths.index(min(lengths))
    assert not torch.allclose(logits[short], at_end[short], atol=1e-4)


# -- data -----------------------------------------------------------------------------------------


def test_template_keeps_its_last_words():
    from tiny import tiny_tokenizer

    from likeme.training.classifying import DEFAULT_TEMPLATE

    tok = tiny_tokenizer()
    rows = encode(tok, ["short", "a very long text " * 20], 60, DEFAULT_TEMPLATE)
    assert rows[0] == tok(DEFAULT_TEMPLATE.replace("{text}", "short"))["input_ids"]
    end = tok(DEFAULT_TEMPLATE.split("{text}")[1], add_special_tokens=False)["input_ids"]
    assert len(rows[1]) == 60 and rows[1][-len(end):] == end  # the text is cut, the prompt's end is not


def test_read_labelled_formats(tmp_path):
    (tmp_path / "a.csv").write_bytes(b'text,label\r\n"two\r\nlines, and a comma",x\r\nplain,y\r\n,z\r\n')
    assert read_labelled(tmp_path / "a.csv") == (["two\r\nlines, and a comma", "plain"], ["x", "y"])
    (tmp_path / "b.tsv").write_text("label\ttext\nx\thello, world\n", "utf-8")
    assert read_labelled(tmp_path / "b.tsv") == (["hello, world"], ["x"])
    (tmp_path / "c.jsonl").write_text('{"text": "hi", "label": 1}\n\n{"text": "yo", "label": 2}\n', "utf-8")
    assert read_labelled(tmp_path / "c.jsonl") == (["hi", "yo"], ["1", "2"])
    assert read_labelled(tmp_path / "c.jsonl", label_column="nope", need_labels=False) == (["hi", "yo"], None)
    with pytest.raises(LikemeError, match="no column 'category'.*--label-column"):
        read_labelled(tmp_path / "a.csv", label_column="category")
    (tmp_path / "d.jsonl").write_text('{"text": "hi"}\n{oops\n', "utf-8")
    with pytest.raises(LikemeError, match="line 2: invalid JSON"):
        read_labelled(tmp_path / "d.jsonl", need_labels=False)


def test_label_order():
    assert label_order(["b", "10", "a", "2", "b"]) == ["2", "10", "a", "b"]


def test_stratified_split_keeps_every_label_in_train():
    labels = ["a"] * 8 + ["b"] * 8 + ["c"] * 2 + ["d"]
    train, val = stratified_split(labels, 0.25, seed=0)
    assert sorted(train + val) == list(range(len(labels))) and not set(train) & set(val)
    assert {labels[i] for i in train} == {"a", "b", "c", "d"}  # d (one example) stays in train
    assert [labels[i] for i in val].count("a") == [labels[i] for i in val].count("b") == 2
    # fewer validation places than labels: sklearn cannot stratify, still every label in train
    labels = [c for c in "abcdefghij" for _ in range(2)]
    train, val = stratified_split(labels, 0.1, seed=0)
    assert len(val) >= 1 and {labels[i] for i in train} == set("abcdefghij")
    assert stratified_split(["a", "b"], 0.0) == ([0, 1], [])


def test_class_weights_and_loss():
    w = class_weights([0, 0, 0, 1], 2)
    assert w == pytest.approx([4 / 6, 2.0])
    assert class_weights([0, 0], 3) == [pytest.approx(1 / 3), 0.0, 0.0]  # 2 / (3 * 2); an absent label: 0
    from likeme.training.losses import WeightedCrossEntropy
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    loss = WeightedCrossEntropy(w)({"logits": logits}, labels)
    nll = -logits.log_softmax(-1)[torch.arange(3), labels]
    weight = torch.tensor(w)[labels]
    assert loss.item() == pytest.approx(float((weight * nll).sum() / weight.sum()))


@pytest.mark.skipif(not (BANKING / "train.csv").is_file(), reason="../shared/data banking77 is absent")
def test_banking77_rows():
    texts, labels = read_labelled(BANKING / "train.csv", "text", "category")
    assert len(texts) == 10003 and len(set(labels)) == 77


# -- an encoder: mean pooling ---------------------------------------------------------------------


def test_encoder_mean_pooling(tmp_path, tiny_bert):
    base = tiny_bert
    out = train_classifier(cfg(tmp_path, base, max_steps=6, lr=1e-3), progress=False)
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["backbone"] == "encoder" and meta["pooling"] == "mean" and meta["config"]["trainable"] == "all"
    assert meta["template"] == "{text}"
    assert (out / "model" / "head.safetensors").is_file() and (out / "model" / "config.json").is_file()
    clf = load_classifier(out)
    # mean pooling: padding does not change a text's prediction
    alone = clf.probabilities(["card"])
    with_long = clf.probabilities(["card", "a much longer sentence about the exchange rate"])[:1]
    assert torch.allclose(alone, with_long, atol=1e-5)
    model, tok = clf.model, clf.tokenizer
    ids, mask = pad(encode(tok, ["card", "send money now"], None), tok.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask}
    with torch.no_grad():
        h = model.encoder(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        by_hand = model.head((h * m).sum(1) / m.sum(1))
        assert torch.allclose(model(**batch).logits, by_hand, atol=1e-6)
    # head only: the cached pooled features, the encoder untouched
    (tmp_path / "h").mkdir()
    out = train_classifier(cfg(tmp_path / "h", base, trainable="head"), progress=False)
    assert json.loads((out / "metrics.json").read_text())["cached"] is True
    assert all(torch.equal(v, weights(base)[k]) for k, v in weights(out / "model").items())
