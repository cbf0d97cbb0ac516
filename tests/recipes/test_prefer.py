"""likeme train prefer with each loss (dpo, ipo, orpo, simpo, kto), and the good / bad marks KTO learns from
(/good and /bad in likeme chat)."""
import gc
import json
import shutil

import pytest
import yaml
from tiny import likeme_cli

from likeme.prompts import Turn, chat_messages
from likeme.training import marks, pairs


def pairs_file(path, n=8):
    """n pairs over n prompts: chosen Ana's "ok then", rejected "yo yo yo yo"."""
    pairs.append(path, [pairs.pair(chat_messages([Turn("Sam", f"hi {i}")], "Ana", False), "ok then", "yo yo yo yo")
                        for i in range(n)])
    return path


def logged(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def adapter_moved(run) -> bool:
    """Whether any LoRA B matrix of the run's new adapter is non-zero (PEFT starts them at zero)."""
    from safetensors.torch import load_file

    weights = load_file(str(run / "model" / "adapter_model.safetensors"))
    return any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)


# the first step's loss, by hand: the new adapter is zero, so the tuned voice is the voice it starts from
FIRST_STEP = {
    "dpo": lambda r: pytest.approx(0.6931, abs=1e-3),  # -log sigmoid(beta * 0) = log 2
    "ipo": lambda r: pytest.approx(25.0, abs=1e-2),  # (0 - 1 / (2 beta))^2, beta 0.1
    # the chosen reply's negative log-likelihood minus beta (0.1) x the mean log-sigmoid of the log odds ratio
    "orpo": lambda r: pytest.approx(r["nll_loss"] - 0.1 * r["log_odds_ratio"], abs=1e-3),
    # -log sigmoid(beta (mean log p chosen - mean log p rejected) - gamma), beta 2, gamma 0.5 (every prompt scores
    # the two replies alike to a few hundredths, so the batch mean's loss is the loss of the batch means)
    "simpo": lambda r: pytest.approx(-__import__("math").log(1 / (1 + __import__("math").exp(
        -(2.0 * (r["logps_chosen"] - r["logps_rejected"]) - 0.5)))), abs=2e-2),
    "kto": lambda r: pytest.approx(0.5, abs=1e-3),  # 1 - sigmoid(beta * (0 - 0)) for good and bad alike
}


@pytest.mark.parametrize("loss", ["dpo", "ipo", "orpo", "simpo", "kto"])
def test_each_loss_trains_through_the_cli(loss, tiny_voice_run, tmp_path):
    out = tmp_path / loss
    p = likeme_cli("train", "prefer", "--from", tiny_voice_run, "--pairs", pairs_file(tmp_path / "p.jsonl"),
                   "--loss", loss, "--max-steps", 2, "--batch-size", 2, "--grad-accum", 1, "--lr", 1e-3,
                   "--val-fraction", 0.25, "--eval-every", 2, "--out", out, "-q")
    assert p.returncode == 0, p.stderr
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["loss"] == loss and meta["config"]["loss"] == loss and meta["recipe"] == "prefer"
    assert meta["config"]["beta"] == {"simpo": 2.0}.get(loss, 0.1)  # the paper's default, as used
    m = json.loads((out / "metrics.json").read_text())
    rows = logged(out)
    assert m["steps"] == 2 and [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert rows[0]["loss"] == FIRST_STEP[loss](rows[0])
    if loss == "simpo":  # no behaviour-cloning term (cpo_alpha 0), rewards beta x the mean log-probability
        assert rows[0]["nll_loss"] == 0 and rows[0]["rewards_chosen"] == pytest.approx(2.0 * rows[0]["logps_chosen"], abs=1e-3)
    if loss == "kto":  # each pair is a good and a bad mark: 16 marks, the 4 of 2 held-out prompts aside
        assert (m["pairs"], m["train_pairs"], m["val_pairs"]) == (16, 12, 4) and "val_reward_margin" in m
        assert "held-out marks" in p.stdout
    else:
        assert (m["pairs"], m["val_pairs"]) == (8, 2) and 0 <= m["val_reward_accuracy"] <= 1
        assert "held-out pairs the tuned voice prefers the chosen reply" in p.stdout
    assert adapter_moved(out)


class LiveModels:
    """A Trainer callback that counts the language models (transformers models with a head that generates)
    alive in this process at each step."""

    def __new__(cls):
        from transformers import GenerationMixin, TrainerCallback

        class Counter(TrainerCallback):
            seen: list = []

            @staticmethod
            def count():
                gc.collect()
                return sum(1 for o in gc.get_objects() if isinstance(o, GenerationMixin))

            def on_step_end(self, args, state, control, **kw):
                self.seen.append(self.count())

        return Counter()


@pytest.mark.parametrize("loss", ["orpo", "simpo"])
def test_no_reference_model_is_loaded(loss, tiny_voice_run, tmp_path):
    """ORPO and SimPO tune one model: while they train, one more language model is alive than before (the voice
    with its new adapter; no copy of it as a reference), and nothing of a reference is logged."""
    from likeme.recipes.prefer import PreferConfig, train_prefer

    counter = LiveModels()
    before = counter.count()
    run = train_prefer(PreferConfig(from_run=str(tiny_voice_run), pairs=str(pairs_file(tmp_path / "p.jsonl")), loss=loss,
                                    max_steps=2, batch_size=2, grad_accum=1, val_fraction=0, out=str(tmp_path / "r")),
                       progress=False, callbacks=[counter])
    assert counter.seen and set(counter.seen) == {before + 1}
    assert not any("ref" in k for r in logged(run) for k in r)


@pytest.fixture
def voice_copy(tiny_voice_run, tmp_path):
    """The session's voice run, copied: marks are written into the run folder."""
    return shutil.copytree(tiny_voice_run, tmp_path / "ana")


def test_good_and_bad_in_the_chat_write_marks_and_kto_learns_them(voice_copy, tmp_path):
    p = likeme_cli("chat", voice_copy, "--seed", 1, "--max-new-tokens", 6,
                   input="/good\nhi\n/good\n/good\nhello there\n/bad\n/reset\n/bad\n")
    assert p.returncode == 0, p.stderr
    path = voice_copy / "marks.jsonl"
    replies = [m["completion"][0]["content"] for m in marks.read(path)]
    assert p.stdout.count("Ana> ") == 2 and len(replies) == 2 and all(r.strip() for r in replies)
    assert p.stdout.index(f"Ana> {replies[0]}\n") < p.stdout.index(f"Ana> {replies[1]}\n")  # the replies shown
    assert p.stderr.count(f"(marked good: {path})") == 1 and p.stderr.count(f"(marked bad: {path})") == 1
    # before any reply, twice on one reply, after /reset: nothing to mark
    assert p.stderr.count("Error: nothing to mark: /good marks Ana's last reply, once") == 2
    assert p.stderr.count("Error: nothing to mark: /bad") == 1
    system = chat_messages([], "Ana", False)[0]
    assert marks.read(path) == [
        marks.mark([system, {"role": "user", "content": "hi"}], replies[0], True),
        marks.mark([system, {"role": "user", "content": "hi"}, {"role": "assistant", "content": replies[0]},
                    {"role": "user", "content": "hello there"}], replies[1], False)]
    out = tmp_path / "kto"
    p = likeme_cli("train", "prefer", "--from", voice_copy, "--data", path, "--loss", "kto", "--max-steps", 2,
                   "--batch-size", 2, "--grad-accum", 1, "--val-fraction", 0, "--out", out, "-q")
    assert p.returncode == 0, p.stderr
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["loss"] == "kto" and meta["data"]["file"] == str(path.resolve())
    assert json.loads((out / "metrics.json").read_text())["pairs"] == 2 and adapter_moved(out)


def test_bad_marks_and_losses_are_one_line_errors(tiny_voice_run, tmp_path):
    prompt = chat_messages([Turn("Sam", "hi")], "Ana", False)
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    pairs.append(good, [marks.mark(prompt, "ok then", True)] * 3)
    pairs.append(bad, [marks.mark(prompt, "yo", False)])
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "label.jsonl").write_text(json.dumps({"prompt": "hi", "completion": "yo", "label": 1}) + "\n")
    train = ["train", "prefer", "--from", tiny_voice_run, "--max-steps", 1, "--out", tmp_path / "never"]
    expected = {
        (good, "kto"): f"{good}: all 3 marks are good: KTO needs good and bad ones; mark some replies /bad in "
                       "likeme chat, or add --pairs FILE",
        (bad, "kto"): f"{bad}: all 1 marks are bad: KTO needs good and bad ones; mark some replies /good in "
                      "likeme chat, or add --pairs FILE",
        (tmp_path / "empty.jsonl", "kto"): f"{tmp_path / 'empty.jsonl'}: no marks in it: mark replies with /good "
                                           "and /bad in likeme chat",
        (tmp_path / "label.jsonl", "kto"): f"{tmp_path / 'label.jsonl'}: line 1: label must be true or false",
        (good, "orpo"): "--data takes good / bad marks, which --loss kto learns from; orpo learns from pairs: "
                        "--pairs FILE (likeme pairs, likeme compare)",
    }
    for (data, loss), message in expected.items():
        p = likeme_cli(*train, "--data", data, "--loss", loss)
        assert (p.returncode, p.stderr) == (1, f"Error: {message}\n")
    p = likeme_cli(*train, "--data", good, "--pairs", pairs_file(tmp_path / "p.jsonl"), "--loss", "kto",
                   "--batch-size", 1)
    assert (p.returncode, p.stderr.count("\n")) == (1, 1) and "--loss kto needs --batch-size 2 or more" in p.stderr
    p = likeme_cli(*train, "--pairs", tmp_path / "p.jsonl", "--loss", "sft")
    assert p.returncode == 2 and "'sft' is not one of 'dpo', 'ipo', 'orpo', 'simpo', 'kto'" in p.stderr
    assert not (tmp_path / "never").exists()


def test_kto_weights_balance_good_and_bad():
    from likeme.recipes.prefer import kto_weights

    assert kto_weights([True, False, False, False]) == {"desirable_weight": 3.0, "undesirable_weight": 1.0}
    assert kto_weights([True, True, False]) == {"desirable_weight": 1.0, "undesirable_weight": 2.0}
    assert kto_weights([True, False]) == {"desirable_weight": 1.0, "undesirable_weight": 1.0}
    assert marks.unpaired([pairs.pair([{"role": "user", "content": "hi"}], "a", "b")]) == [
        marks.mark([{"role": "user", "content": "hi"}], "a", True), marks.mark([{"role": "user", "content": "hi"}], "b", False)]
