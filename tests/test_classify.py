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

from likeme.errors import LikemeError
from likeme.recipes.classify import (ClassifyConfig, FrozenSplit, class_weights, encode, label_order, load_backbone,
                                     load_classifier, make_trainable, pad_batch, param_groups, read_table,
                                     stratified_split, train_classifier)
from tiny import save_tiny_causal_lm

LIKEME = str(Path(sys.executable).parent / "likeme")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BANKING = SHARED / "classification" / "banking77" / "banking_data"

ROWS = [("where is my card", "card"), ("my card never came", "card"), ("card not here yet", "card"),
        ("send money to my friend", "transfer"), ("the transfer failed", "transfer"), ("transfer cash now", "transfer"),
        ("what is the euro rate", "rate"), ("rate for dollars?", "rate"), ("exchange rate today", "rate")]


def write_csv(path: Path, rows=ROWS, times=4) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:  # csv's default line end is CRLF
        w = csv.writer(f)
        w.writerow(["text", "intent"])
        w.writerows(rows * times)
    return path


def run(*args):
    p = subprocess.run([LIKEME, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "lm")


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
    assert meta["task"] == "classification" and meta["recipe"] == "classify" and meta["status"] == "done"
    assert meta["labels"] == ["card", "rate", "transfer"] and meta["backbone"] == "causal"
    assert meta["config"]["batch_size"] == 4 and meta["config"]["epochs"] == 2  # flag beats file, file beats default
    assert meta["config"]["trainable"] == "last-block" and meta["template"] == meta["config"]["template"] != "{text}"
    for f in ("model/config.json", "model/model.safetensors", "model/tokenizer.json", "metrics.jsonl", "metrics.json",
              "plots/loss.png", "plots/confusion.png"):
        assert (out / f).is_file(), f
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "val_macro_f1", "examples_seen", "seconds"}
    assert rows[1]["examples_seen"] == 2 * json.loads((out / "metrics.json").read_text())["train_examples"]
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["val_accuracy"] <= 1 and m["cached"] is True and m["val_examples"] == 4

    from likeme import models
    ref = models.resolve(out)
    assert ref.kind == "run" and ref.task == "classification" and ref.weights == out / "model"

    printed = run("classify", out, "where is my card", "exchange rate today")
    lines = printed.strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in meta["labels"] and lines[0].endswith("where is my card")
    assert len(lines[0].split("\t")[1].split("  ")) == 3  # top 3
    shown = json.loads(run("classify", out, "where is my card", "--json", "--top", 2))
    assert shown[0]["text"] == "where is my card" and len(shown[0]["probabilities"]) == 2
    report = json.loads(run("classify", out, "--data", data, "--json"))  # label column as trained: intent
    assert report["examples"] == 36 and report["labels"] == meta["labels"]
    assert sum(map(sum, report["confusion"])) == 36 and set(report["per_class"]) == set(meta["labels"])
    from likeme.cli import _classification_report
    text = _classification_report(report)
    assert text.startswith("36 texts: accuracy") and "confusion (rows: true" in text

    from likeme.evaluate import eval_classifier
    assert eval_classifier(out, data) == report
    assert json.loads(run("eval", out, "--data", data, "--json")) == report  # `likeme eval` routes by run type
    assert run("eval", out, "--data", data).strip() == f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}"


def test_cli_errors_are_one_line(tmp_path, tiny_lm):
    p = subprocess.run([LIKEME, "train", "classifier", "--base", str(tiny_lm)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "--data FILE" in p.stderr
    data = write_csv(tmp_path / "d.csv")
    p = subprocess.run([LIKEME, "train", "classifier", "--data", str(data), "--base", str(tiny_lm)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "no column 'label' (columns: text, intent)" in p.stderr


def test_label_by_author(tmp_path, tiny_lm):
    from test_datasets import three_person_store

    three_person_store(tmp_path / "s.db").close()  # Ana 36 text messages, Sam 24, Bo 12
    out = tmp_path / "who"
    run("train", "classifier", "--label-by", "author", "--db", tmp_path / "s.db", "--min-messages", 20,
        "--base", tiny_lm, "--max-steps", 2, "--out", out, "-q")
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["labels"] == ["Ana", "Sam"] and json.loads((out / "metrics.json").read_text())["train_examples"] == 54
    label, probs = load_classifier(out).predict(["hey"])[0]
    assert label in ("Ana", "Sam") and abs(sum(probs.values()) - 1) < 1e-5
    with pytest.raises(LikemeError, match="two people with at least 100"):
        train_classifier(ClassifyConfig(label_by="author", db=str(tmp_path / "s.db"), min_messages=100,
                                        base=str(tiny_lm), out=str(tmp_path / "x")), progress=False)


# -- what trains ----------------------------------------------------------------------------------


def test_last_block_changes_only_last_block_and_head(tmp_path, tiny_lm):
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
    first = load_backbone(str(tiny_lm), ["card", "rate", "transfer"])[0].score.weight  # same seed: the initial head
    assert not torch.equal(after["score.weight"], first.detach())


@pytest.mark.parametrize("trainable", ["last-block", "lora", "head"])
def test_the_new_head_has_its_own_learning_rate(tiny_lm, trainable):
    model, tok, kind = load_backbone(str(tiny_lm), ["a", "b", "c"])
    model = make_trainable(model, trainable, ClassifyConfig(), kind)
    groups = param_groups(model, 2e-4, 2e-3)
    trainable_ids = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for g in groups for p in g["params"]} == trainable_ids  # each once, nothing frozen
    head = groups[-1]
    assert head["lr"] == 2e-3 and [tuple(p.shape) for p in head["params"]] == [(3, 64)]  # score.weight, no bias
    assert len(groups) == (1 if trainable == "head" else 2)


def test_cache_gives_the_same_model_as_the_plain_path(tmp_path, tiny_lm):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cached = train_classifier(cfg(tmp_path / "a", tiny_lm, max_steps=6), progress=False)
    plain = train_classifier(cfg(tmp_path / "b", tiny_lm, max_steps=6, cache=False), progress=False)
    assert json.loads((cached / "metrics.json").read_text())["cached"] is True
    assert json.loads((plain / "metrics.json").read_text())["cached"] is False
    a, b = weights(cached / "model"), weights(plain / "model")
    assert not torch.equal(a["score.weight"], weights(tiny_lm).get("score.weight", torch.zeros(1)))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    texts = [t for t, _ in ROWS]
    pa, pb = load_classifier(cached).probabilities(texts), load_classifier(plain).probabilities(texts)
    assert torch.allclose(pa, pb, atol=1e-5)


def test_ctrl_c_saves_the_best_epoch_so_far(tmp_path, tiny_lm):
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):  # what a SIGINT in the middle of epoch 3 raises
        def on_step_begin(self, args, state, control, **kw):
            if state.epoch and state.epoch >= 2.5:
                raise KeyboardInterrupt

    out = train_classifier(cfg(tmp_path, tiny_lm, max_steps=None, epochs=6), progress=False, callbacks=[CtrlC()])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["best_epoch"] in (1.0, 2.0) and metrics["epochs"] < 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1.0, 2.0]
    best = max(rows, key=lambda r: r["val_macro_f1"])  # the saved weights are that epoch's: same validation score
    assert metrics["val_macro_f1"] == best["val_macro_f1"]
    assert yaml.safe_load((out / "run.yaml").read_text())["status"] == "done"
    assert load_classifier(out).predict(["where is my card"])[0][0] in ("card", "rate", "transfer")


def test_frozen_split_reproduces_the_forward_pass(tiny_lm):
    model, tok, kind = load_backbone(str(tiny_lm), ["a", "b"])
    rows = encode(tok, ["a much longer text than the others", "hi", "medium length text"], None)
    for trainable in ("last-block", "head"):
        assert FrozenSplit.make(model, trainable, kind).check(rows, tok.pad_token_id, atol=1e-6)


def test_lora_saves_a_merged_model(tmp_path, tiny_lm):
    out = train_classifier(cfg(tmp_path, tiny_lm, trainable="lora", max_steps=2), progress=False)
    assert not (out / "adapter").exists() and not any("lora" in k for k in weights(out / "model"))
    assert load_classifier(out).predict(["where is my card"])[0][0] in ("card", "rate", "transfer")


# -- pooling: the last real token, with EOS as padding --------------------------------------------


def test_pools_the_last_non_padding_token(tiny_lm):
    model, tok, _ = load_backbone(str(tiny_lm), ["a", "b", "c"])
    assert tok.pad_token_id == tok.eos_token_id == model.config.pad_token_id
    texts = ["a much longer text than the others", "hi", "typed <|im_end|> inside"]
    rows = encode(tok, texts, None)
    assert all(tok.eos_token_id not in r for r in rows)  # eos typed in a text is split, never the eos id
    lengths = [len(r) for r in rows]
    assert len(set(lengths)) == 3
    batch = pad_batch(rows, tok.pad_token_id)
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
    from likeme.recipes.classify import DEFAULT_TEMPLATE
    from tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    rows = encode(tok, ["short", "a very long text " * 20], 60, DEFAULT_TEMPLATE)
    assert rows[0] == tok(DEFAULT_TEMPLATE.replace("{text}", "short"))["input_ids"]
    end = tok(DEFAULT_TEMPLATE.split("{text}")[1], add_special_tokens=False)["input_ids"]
    assert len(rows[1]) == 60 and rows[1][-len(end):] == end  # the text is cut, the prompt's end is not


def test_read_table_formats(tmp_path):
    (tmp_path / "a.csv").write_bytes(b'text,label\r\n"two\r\nlines, and a comma",x\r\nplain,y\r\n,z\r\n')
    assert read_table(tmp_path / "a.csv") == (["two\r\nlines, and a comma", "plain"], ["x", "y"])
    (tmp_path / "b.tsv").write_text("label\ttext\nx\thello, world\n", "utf-8")
    assert read_table(tmp_path / "b.tsv") == (["hello, world"], ["x"])
    (tmp_path / "c.jsonl").write_text('{"text": "hi", "label": 1}\n\n{"text": "yo", "label": 2}\n', "utf-8")
    assert read_table(tmp_path / "c.jsonl") == (["hi", "yo"], ["1", "2"])
    assert read_table(tmp_path / "c.jsonl", label_column="nope", need_labels=False) == (["hi", "yo"], None)
    with pytest.raises(LikemeError, match="no column 'category'.*--label-column"):
        read_table(tmp_path / "a.csv", label_column="category")
    (tmp_path / "d.jsonl").write_text('{"text": "hi"}\n{oops\n', "utf-8")
    with pytest.raises(LikemeError, match="line 2: invalid JSON"):
        read_table(tmp_path / "d.jsonl", need_labels=False)


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
    from likeme.recipes.classify import _parts
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    loss = _parts().WeightedCrossEntropy(w)({"logits": logits}, labels)
    nll = -logits.log_softmax(-1)[torch.arange(3), labels]
    weight = torch.tensor(w)[labels]
    assert loss.item() == pytest.approx(float((weight * nll).sum() / weight.sum()))


@pytest.mark.skipif(not (BANKING / "train.csv").is_file(), reason="../shared/data banking77 is absent")
def test_banking77_rows():
    texts, labels = read_table(BANKING / "train.csv", "text", "category")
    assert len(texts) == 10003 and len(set(labels)) == 77


# -- an encoder: mean pooling ---------------------------------------------------------------------


def save_tiny_bert(folder: Path) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer trained in memory, saved like any model folder."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator([t for t, _ in ROWS] * 3, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                                                              show_progress=False))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", wp.token_to_id("[CLS]")), ("[SEP]", wp.token_to_id("[SEP]"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_encoder_mean_pooling(tmp_path):
    base = save_tiny_bert(tmp_path / "bert")
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
    batch = pad_batch(encode(tok, ["card", "send money now"], None), tok.pad_token_id)
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
