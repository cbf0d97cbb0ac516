"""Smaller and faster: the distillation loss on literal logits, and `likeme train distill` end to end on tiny
models (a classifier teacher into a 2-layer BERT, a voice teacher into another tiny Llama), through the CLI."""
import csv
import json
import math

import pytest
import torch
import yaml
from tiny import ROWS, likeme_cli, save_tiny_causal_lm
from torch.nn import functional as F

from likeme.training.losses import DistillationLoss
from likeme.use.classifier import load_classifier


def cli(*args, input=None):
    p = likeme_cli(*args, input=input)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def write_csv(path, rows=ROWS, times=4):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "intent"])
        w.writerows(rows * times)
    return path


# -- the loss ---------------------------------------------------------------------------------------


def test_loss_hand_computed():
    # teacher [2 log 3, 0] at T=2 -> p = [0.75, 0.25]; student [0, 0] -> q = [0.5, 0.5] at any T
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # 0.1308
    ce = math.log(2)  # the student's CE at T=1 on label 0
    loss = DistillationLoss(temperature=2.0, alpha=0.25)(
        torch.tensor([[0.0, 0.0]]), torch.tensor([[2 * math.log(3), 0.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(0.25 * ce + 0.75 * 4 * kl, abs=1e-6)  # 0.5657
    assert loss.item() == pytest.approx(0.5657, abs=1e-4)
    same = DistillationLoss(1.0, 0.0)(torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([[1.0, -2.0, 0.5]]), torch.tensor([2]))
    assert same.item() == pytest.approx(0.0, abs=1e-6)  # a student that is the teacher: no KL


def test_alpha_one_is_cross_entropy_and_unlabelled_rows_add_kl_only():
    torch.manual_seed(0)
    s, t = torch.randn(5, 4), torch.randn(5, 4)
    labels = torch.tensor([0, 3, -100, 1, -100])
    assert DistillationLoss(3.0, 1.0)(s, t, labels).item() == pytest.approx(
        F.cross_entropy(s[[0, 1, 3]], labels[[0, 1, 3]]).item(), abs=1e-6)
    T, a = 2.0, 0.4
    kl_rows = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="none").sum(-1)
    want = a * F.cross_entropy(s[[0, 1, 3]], labels[[0, 1, 3]]) + (1 - a) * T ** 2 * kl_rows.mean()
    assert DistillationLoss(T, a)(s, t, labels).item() == pytest.approx(want.item(), abs=1e-6)
    only_unlabelled = DistillationLoss(T, a)(s[[2, 4]], t[[2, 4]], labels[[2, 4]])
    assert only_unlabelled.item() == pytest.approx(((1 - a) * T ** 2 * kl_rows[[2, 4]].mean()).item(), abs=1e-6)
    # the teacher's top-k form: with k = V (all ids, in another order) it is the dense loss
    values, ids = t.topk(4, dim=-1)
    assert DistillationLoss(T, a)(s, values, labels, ids).item() == pytest.approx(want.item(), abs=1e-6)


def test_top_k_is_the_truncated_teacher():
    s = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    t_top, ids = torch.tensor([[math.log(3), 0.0]]), torch.tensor([[2, 0]])  # the teacher's mass: 0.75 on 2, 0.25 on 0
    want = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.25)  # q = 1/4 on each id
    assert DistillationLoss(1.0, 0.0)(s, t_top, torch.tensor([-100]), ids).item() == pytest.approx(want, abs=1e-6)


# -- a classifier teacher ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_classifier(tmp_path_factory):
    """A causal classifier (the tiny Llama, last block trained) on the three intents."""
    from likeme.recipes.classify import ClassifyConfig, train_classifier

    tmp = tmp_path_factory.mktemp("teacher")
    data = write_csv(tmp / "intents.csv")
    run = train_classifier(ClassifyConfig(data=str(data), label_column="intent", base=str(save_tiny_causal_lm(tmp / "lm")),
                                          batch_size=4, max_steps=4, lr=1e-2, out=str(tmp / "teacher")), progress=False)
    return run, data


def test_cli_distil_a_classifier(tmp_path, tiny_bert, teacher_classifier):
    teacher, data = teacher_classifier
    more = tmp_path / "more.txt"
    more.write_text("card please\nhow much is the rate\n\nsend it now\n", "utf-8")
    out = tmp_path / "student"
    printed = cli("train", "distill", "--teacher", teacher, "--student", tiny_bert, "--data", data, "--unlabelled", more,
                  "--temperature", 3, "--alpha", 0.3, "--batch-size", 4, "--epochs", 2, "--lr", 1e-3, "--out", out, "-q")
    assert "validation accuracy" in printed and "likeme classify" in printed
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["recipe"] == "distill" and meta["task"] == "classification" and meta["status"] == "done"
    assert meta["teacher"] == str(teacher.resolve()) and meta["temperature"] == 3.0 and meta["alpha"] == 0.3
    assert meta["labels"] == ["card", "rate", "transfer"] and meta["backbone"] == "encoder"
    assert meta["label_column"] == "intent" and meta["base"] == str(tiny_bert)  # the teacher's column by default
    for f in ("model/config.json", "model/model.safetensors", "model/head.safetensors", "model/tokenizer.json",
              "metrics.jsonl", "metrics.json", "plots/loss.png", "plots/confusion.png"):
        assert (out / f).is_file(), f
    assert not (out / "checkpoints").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert (m["train_examples"], m["unlabelled_examples"], m["val_examples"]) == (32, 3, 4)
    assert m["steps"] == 18 and "teacher_val_accuracy" in m  # (32 + 3) texts / batch 4 = 9 steps an epoch
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_macro_f1" in r] == [9, 18]

    from safetensors.torch import load_file
    before, after = load_file(str(tiny_bert / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the student trained

    lines = cli("classify", out, "where is my card", "exchange rate today").strip().splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] in meta["labels"]
    assert load_classifier(out).predict(["where is my card"])[0][0] == lines[0].split("\t")[0]
    report = json.loads(cli("eval", out, "--data", data, "--json"))
    assert report["examples"] == 36 and report["labels"] == meta["labels"]


def test_distil_errors_are_one_line(tmp_path, tiny_lm, tiny_bert, teacher_classifier, tiny_voice_run):
    teacher, data = teacher_classifier
    cases = [
        (["--teacher", tiny_lm, "--data", data], "neither a classifier run nor a voice run"),
        (["--teacher", teacher, "--data", write_csv(tmp_path / "x.csv", ROWS + [("hello there", "greeting")])],
         "labels differ"),
        (["--teacher", teacher], "--data FILE"),
        (["--teacher", tiny_voice_run, "--student", tiny_bert], "do not share a tokenizer"),
        (["--teacher", tiny_voice_run], "--student MODEL"),
    ]
    for i, (args, said) in enumerate(cases):
        p = likeme_cli("train", "distill", *args, "--out", tmp_path / f"out{i}", "-q")
        assert p.returncode == 1 and said in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


# -- a voice teacher --------------------------------------------------------------------------------


def test_cli_distil_a_voice_and_chat(tmp_path, tiny_voice_run):
    student = save_tiny_causal_lm(tmp_path / "small", seed=1)  # same tokenizer, other weights
    out = tmp_path / "ana-small"
    printed = cli("train", "distill", "--teacher", tiny_voice_run, "--student", student, "--top-k", 8, "--max-steps", 3,
                  "--batch-size", 4, "--eval-every", 3, "--lr", 1e-3, "--out", out, "-q")
    assert "held-out perplexity" in printed and "likeme chat" in printed
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["recipe"] == "distill" and meta["task"] == "causal-lm" and meta["status"] == "done"
    assert meta["as"] == "Ana" and meta["teacher"] == str(tiny_voice_run.resolve()) and meta["top_k"] == 8
    assert meta["voice_config"]["format"] == "persona"  # prompts built as the teacher's were
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 3 and m["teacher_tokens"] > 0 and all(math.isfinite(m[k]) for k in ("ppl", "base_ppl", "teacher_ppl"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3] and any("eval_loss" in r for r in rows)

    from safetensors.torch import load_file
    before, after = load_file(str(student / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)

    p = likeme_cli("chat", out, "--message", "hi", "--seed", "1", "--max-new-tokens", "4")
    assert p.returncode == 0, p.stderr
    from likeme.use.generate import load
    assert load(out).name == "Ana"


def test_teacher_top_k_rows_follow_the_labelled_tokens(tiny_lm):
    from likeme.models import load_causal_lm
    from likeme.training.soft_targets import collate, top_k

    model, tok = load_causal_lm(tiny_lm)
    ex = [{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}, {"input_ids": [9, 10], "labels": [-100, 10]}]
    got = top_k(model, ex, tok.pad_token_id, k=4, batch_size=2)
    assert [tuple(e["teacher"].shape) for e in got] == [(2, 4), (1, 4)]  # positions 1, 2 predict 7, 8; position 0 predicts 10
    with torch.no_grad():
        full = model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits[0]  # (T, V)
    assert torch.allclose(got[0]["teacher"], full[1:3].topk(4, dim=-1).values, atol=1e-5)
    batch = collate(got, tok.pad_token_id)
    assert batch["teacher"].shape == (3, 4) and batch["teacher_indices"].dtype == torch.int32
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 10, -100, -100]]
