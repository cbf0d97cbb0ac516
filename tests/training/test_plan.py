"""likeme plan: the model's shape counted exactly, the estimates against a measured run of the tiny model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import likeme_cli, three_person_store, tiny_causal_lm

from likeme.training import plan

LIKEME = str(Path(sys.executable).parent / "likeme")


def likeme(tmp_path, *args):
    """The real command in its own process: its peak memory is its own, as a user's would be."""
    return subprocess.run([LIKEME, *map(str, args)], env={**os.environ, "LIKEME_HOME": str(tmp_path / "home")},
                          capture_output=True, text=True)


def test_parameters_counted_from_the_config_are_the_models(tiny_lm):
    from likeme.training import trainable

    shape = plan.Shape.of(str(tiny_lm))
    model = tiny_causal_lm()
    assert shape.params() == sum(p.numel() for p in model.parameters())
    lora = trainable.select(model, "lora", lora=trainable.Lora(8, 16, 0.0))
    assert shape.lora_params(8) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert shape.trained("all") == shape.params()


def test_padded_length_by_hand():
    assert plan.padded_length([10, 10, 10], 2) == 10
    # batches of 2 from [10, 10, 20, 20]: 4 of the 6 pairs hold a 20 -> 10 + 10 * 5/6 on average
    assert plan.padded_length([10, 10, 20, 20], 2, draws=4000) == pytest.approx(10 + 10 * 5 / 6, abs=0.3)


def test_the_largest_batch_sets_the_peak():
    assert plan.largest_batch([10, 20, 30, 40], 2, draws=100, packing=True) == 70  # 30 + 40
    assert plan.largest_batch([10, 20, 30, 40], 2, draws=100, packing=False) == 80  # 2 x 40
    assert plan.largest_batch([10, 20, 30, 40], 2, draws=1, packing=True) <= 70
    # a longer run meets larger batches: never a smaller peak
    lengths = list(range(1, 200))
    assert plan.largest_batch(lengths, 2, draws=4, packing=True) <= plan.largest_batch(lengths, 2, draws=400, packing=True)


def test_a_plan_that_does_not_fit_says_what_to_change(tiny_lm):
    shape = plan.Shape.of(str(tiny_lm))
    small = plan.Machine(cores=2, memory=2 ** 30, available=2 ** 20, device="cpu", gpu=None, bf16_native=False,
                         matmul_flops=1e10)
    e = plan.recommend(shape, [100] * 50, 50, small, method="all")
    assert not e.fits and e.batch == 1 and "will not fit" in e.advice and "--trainable lora" in e.advice
    roomy = plan.Machine(cores=2, memory=2 ** 36, available=2 ** 35, device="cpu", gpu=None, bf16_native=False,
                         matmul_flops=1e10)
    ok = plan.recommend(shape, [100] * 50, 50, roomy)
    assert ok.fits and ok.batch == 8 and ok.method == "lora" and not ok.advice
    # twice the tokens a step, about twice the compute
    long = plan.estimate(shape, [200] * 50, roomy, steps=10)
    short = plan.estimate(shape, [100] * 50, roomy, steps=10)
    assert 1.8 < (long.step_seconds - plan.STEP_OVERHEAD_S) / (short.step_seconds - plan.STEP_OVERHEAD_S) < 2.6
    padded = plan.estimate(shape, [20] * 40 + [200] * 10, roomy, steps=10, packing=False)
    packed = plan.estimate(shape, [20] * 40 + [200] * 10, roomy, steps=10, packing=True)
    assert padded.padded_tokens_per_step > 2 * packed.padded_tokens_per_step  # padding to the longest costs


def test_the_head_on_labels_and_checkpointing_in_the_plan(tiny_lm):
    """Logits only where a token is labelled: fewer logits and head FLOPs; checkpointing: the blocks' activations
    shrink to their inputs plus one block, for a second forward pass through the blocks."""
    shape = plan.Shape.of(str(tiny_lm))
    roomy = plan.Machine(cores=2, memory=2 ** 36, available=2 ** 35, device="cpu", gpu=None, bf16_native=False,
                         matmul_flops=1e10)
    lengths, labelled = [100] * 50, [10] * 50
    whole = plan.estimate(shape, lengths, roomy, steps=10, packing=True)
    head = plan.estimate(shape, lengths, roomy, steps=10, packing=True, labelled=labelled)
    assert head.parts["logits"] * 10 == whole.parts["logits"] and head.step_seconds < whole.step_seconds
    assert head.parts["activations"] == whole.parts["activations"]
    ckpt = plan.estimate(shape, lengths, roomy, steps=10, packing=True, labelled=labelled, checkpointing=True)
    assert ckpt.parts["activations"] < head.parts["activations"] and ckpt.step_seconds > head.step_seconds
    # by hand: 8 x 100 tokens, each block's input (hidden floats) for every layer, one block's ACTIVATION_FLOATS
    assert ckpt.parts["activations"] == 800 * shape.hidden * 4 * (shape.layers + plan.ACTIVATION_FLOATS)


def test_plan_against_a_measured_run(tmp_path, tiny_lm):
    three_person_store(tmp_path / "s.db").close()
    out = likeme(tmp_path, "plan", "--as", "Ana", "--db", tmp_path / "s.db", "--base", tiny_lm, "--json")
    assert out.returncode == 0, out.stderr
    p = json.loads(out.stdout)
    e = p["estimate"]
    assert p["examples"] == 20 and e["method"] == "lora" and e["batch"] == 2 and p["accum"] == 4 and e["fits"]
    text = likeme_cli("plan", "--as", "Ana", "--db", tmp_path / "s.db", "--base", tiny_lm).stdout
    assert "fits" in text and "likeme train voice --as Ana --learn-from me" in text  # what it plans: Ana's replies
    run = likeme(tmp_path, "train", "voice", "--as", "Ana", "--learn-from", "me", "--db", tmp_path / "s.db", "--base", tiny_lm, "--max-steps",
                     e["steps"], "--eval-every", 1000, "--out", tmp_path / "run", "-q")
    assert run.returncode == 0, run.stderr
    got = plan.measured(tmp_path / "run")
    assert got["steps"] == e["steps"]
    # the tiny model's peak is this process's runtime: within a quarter
    assert got["peak_bytes"] == pytest.approx(e["peak_bytes"], rel=0.25)
    # its step is mostly fixed cost (the Trainer's loop, collation, the optimizer's call): within 4x
    assert e["step_seconds"] / 4 < got["step_seconds"] < e["step_seconds"] * 4


def test_unknown_person_is_one_line(tmp_path, tiny_lm):
    three_person_store(tmp_path / "s.db").close()
    out = likeme_cli("plan", "--as", "Nobody", "--db", tmp_path / "s.db", "--base", tiny_lm)
    assert out.returncode == 1 and out.stderr.strip().splitlines()[-1].startswith("Error:")
