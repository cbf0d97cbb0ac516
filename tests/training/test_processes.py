"""Training in several processes (likeme.processes) and in low precision (--precision), on the CPU."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tiny import likeme_cli, three_person_store

from likeme import processes
from likeme.errors import LikemeError

LIKEME = str(Path(sys.executable).parent / "likeme")


@pytest.fixture
def store(tmp_path, tiny_lm):
    three_person_store(tmp_path / "s.db").close()
    return tmp_path, tiny_lm


def train_args(tmp, base, out, *extra):
    return ["train", "voice", "--as", "Ana", "--db", tmp / "s.db", "--base", base, "--trainable", "all",
            "--eval-every", "2", "--learn-from", "me", "--out", tmp / out, "-q", *extra]


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_as_one_with_the_same_global_batch(store):
    tmp, base = store
    one = likeme_cli(*train_args(tmp, base, "one", "--batch-size", "8", "--grad-accum", "1", "--max-steps", "2"))
    two = subprocess.run([LIKEME, *map(str, train_args(tmp, base, "two", "--batch-size", "4", "--grad-accum", "1", "--max-steps", "2",
                                                       "--processes", "2"))],
                         env={**os.environ, "LIKEME_HOME": str(tmp / "home")}, capture_output=True, text=True)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    # the same data order, split between the two, and gradients averaged: the same steps
    losses = {r: [(x["step"], x["loss"], x["grad_norm"]) for x in rows(tmp / r) if "loss" in x] for r in ("one", "two")}
    assert [s for s, _, _ in losses["two"]] == [1, 2]  # each step logged once: only the main process writes
    for (_, l1, g1), (_, l2, g2) in zip(losses["one"], losses["two"]):
        assert l2 == pytest.approx(l1, rel=1e-4) and g2 == pytest.approx(g1, rel=1e-3)
    from safetensors.torch import load_file
    w1, w2 = (load_file(str(tmp / r / "model" / "model.safetensors")) for r in ("one", "two"))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4)
    # one run folder, finished, written once; the result said once
    meta = yaml.safe_load((tmp / "two" / "run.yaml").read_text())
    assert meta["status"] == "done" and not (tmp / "two" / "checkpoints").exists()
    m1, m2 = (json.loads((tmp / r / "metrics.json").read_text()) for r in ("one", "two"))
    assert m2["ppl"] == pytest.approx(m1["ppl"], rel=1e-3) and m2["train_tokens"] == m1["train_tokens"]
    assert two.stdout.count("held-out perplexity") == 1 and not two.stderr.strip()  # the others say nothing


def test_ctrl_c_in_two_processes_saves_a_checkpoint_that_resumes(store):
    tmp, base = store
    env = {**os.environ, "LIKEME_HOME": str(tmp / "home")}
    run = tmp / "run"
    p = subprocess.Popen([LIKEME, *map(str, train_args(tmp, base, "run", "--batch-size", "4", "--grad-accum", "1", "--max-steps", "40",
                                                        "--processes", "2"))],
                         env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (run / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists() and time.time() < deadline \
            and p.poll() is None:
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C at the terminal: every process of the group gets it
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Stopped: interrupted at step" in err and err.count("Stopping after this step") == 1
    meta = yaml.safe_load((run / "run.yaml").read_text())
    stopped = max(r["step"] for r in rows(run))
    assert meta["status"] == "interrupted" and (run / "checkpoints" / f"checkpoint-{stopped}").is_dir()
    resumed = likeme_cli("train", "voice", "--out", run, "--resume", "-q", "--processes", "2")
    assert resumed.returncode == 0, resumed.stderr
    steps = [r["step"] for r in rows(run) if "loss" in r]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] > stopped  # each step once, on from the checkpoint
    assert yaml.safe_load((run / "run.yaml").read_text())["status"] == "done"


def test_launch_lines_and_errors():
    line = processes.launch_command(["train", "voice", "--as", "Ana"], 4, gpus=4)
    assert line[1:] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4", "--num_machines",
                        "1", "-m", "likeme", "train", "voice", "--as", "Ana"]
    fsdp = processes.launch_command(["train", "voice"], 8, "fsdp", gpus=8)
    config = Path(fsdp[fsdp.index("--config_file") + 1])
    assert config.is_file() and yaml.safe_load(config.read_text())["distributed_type"] == "FSDP"
    assert yaml.safe_load((processes.CONFIGS / "deepspeed.yaml").read_text())["deepspeed_config"]["zero_stage"] == 2
    assert processes.without_flags(["train", "voice", "--processes", "2", "--strategy=fsdp", "--as", "Ana"],
                                   ("--processes", "--strategy")) == ["train", "voice", "--as", "Ana"]
    with pytest.raises(LikemeError, match="has none: use --strategy ddp"):
        processes.relaunch(["train", "voice"], 2, "fsdp", gpus=0)
    with pytest.raises(LikemeError, match="one process per GPU"):
        processes.relaunch(["train", "voice"], 4, gpus=2)


def test_precision_is_chosen_recorded_and_checked(store):
    tmp, base = store
    bf16 = likeme_cli(*train_args(tmp, base, "bf16", "--batch-size", "4", "--grad-accum", "1", "--max-steps", "2", "--precision", "bf16"))
    assert bf16.returncode == 0, bf16.stderr
    assert yaml.safe_load((tmp / "bf16" / "run.yaml").read_text())["precision"] == {"name": "bf16"}
    auto = likeme_cli(*train_args(tmp, base, "auto", "--batch-size", "4", "--grad-accum", "1", "--max-steps", "2"))
    chosen = yaml.safe_load((tmp / "auto" / "run.yaml").read_text())["precision"]
    assert auto.returncode == 0 and chosen["name"] in ("fp32", "bf16") and chosen["why"]
    # bf16 autocast changed the numbers: the two runs' first losses differ, a little
    first = {r: next(x["loss"] for x in rows(tmp / r) if "loss" in x) for r in ("bf16", "auto")}
    if chosen["name"] == "fp32":
        assert first["bf16"] != first["auto"] and first["bf16"] == pytest.approx(first["auto"], rel=1e-2)
    fp16 = likeme_cli(*train_args(tmp, base, "fp16", "--max-steps", "2", "--precision", "fp16"))
    if not torch.cuda.is_available():
        assert fp16.returncode == 1 and fp16.stderr.strip().splitlines()[-1].startswith("Error: fp16 training")
        assert not (tmp / "fp16").exists()  # refused before anything was loaded or written


def test_quantize_is_refused_where_it_cannot_run(store):
    tmp, base = store
    whole = likeme_cli(*train_args(tmp, base, "q", "--quantize", "4bit"))  # --trainable all
    assert whole.returncode == 1 and "use --trainable lora" in whole.stderr.strip().splitlines()[-1]
    if not torch.cuda.is_available():
        lora = likeme_cli("train", "voice", "--as", "Ana", "--db", tmp / "s.db", "--base", base, "--quantize", "4bit",
                          "--out", tmp / "q", "-q")
        assert lora.returncode == 1 and "needs a CUDA GPU" in lora.stderr.strip().splitlines()[-1]
    assert not (tmp / "q").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA GPU")
def test_qlora_trains_adapters_on_a_4bit_base(store):
    pytest.importorskip("bitsandbytes")
    tmp, base = store
    out = likeme_cli("train", "voice", "--as", "Ana", "--db", tmp / "s.db", "--base", base, "--quantize", "4bit",
                     "--max-steps", "2", "--batch-size", "4", "--grad-accum", "1", "--out", tmp / "q", "-q")
    assert out.returncode == 0, out.stderr
    assert (tmp / "q" / "model" / "adapter_model.safetensors").is_file()


def test_packing_trains_the_same_steps_without_padding(store):
    tmp, base = store
    padded = likeme_cli(*train_args(tmp, base, "padded", "--batch-size", "4", "--grad-accum", "1", "--max-steps", "2"))
    packed = likeme_cli(*train_args(tmp, base, "packed", "--batch-size", "4", "--grad-accum", "1", "--max-steps", "2", "--packing"))
    assert padded.returncode == 0 and packed.returncode == 0, packed.stderr
    a, b = ([x for x in rows(tmp / r) if "loss" in x] for r in ("padded", "packed"))
    for x, y in zip(a, b):  # the same examples, the same loss: padding was never part of it
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4) and y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-3)


def _recipe_args(recipe, tmp, tiny_lm, tiny_st, tiny_voice_run):
    """A few steps of each recipe on its tiny inputs."""
    import csv

    from tiny import RECORDS, ROWS

    if recipe == "classifier":
        with open(tmp / "intents.csv", "w", newline="") as f:
            csv.writer(f).writerows([["text", "intent"], *ROWS * 4])
        return ["--data", tmp / "intents.csv", "--label-column", "intent", "--base", tiny_lm, "--epochs", "1"]
    if recipe == "pretrain":
        (tmp / "text.txt").write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 40)
        assert likeme_cli("train", "tokenizer", "--data", tmp / "text.txt", "--kind", "char", "--out", tmp / "chars",
                          "-q").returncode == 0
        return ["--data", tmp / "text.txt", "--tokenizer", tmp / "chars", "--layers", "2", "--heads", "2", "--dim", "32",
                "--block-size", "16", "--max-steps", "4", "--eval-every", "2"]
    if recipe == "embedder":
        return ["--as", "Ana", "--db", tmp / "s.db", "--base", tiny_st, "--max-steps", "4"]
    if recipe == "instruct":
        (tmp / "alpaca.json").write_text(json.dumps(RECORDS))
        return ["--data", tmp / "alpaca.json", "--base", tiny_lm, "--max-steps", "4", "--eval-every", "2"]
    (tmp / "pairs.jsonl").write_text("".join(json.dumps({"prompt": f"Sam: hi {i}", "chosen": "ok see you there",
                                                         "rejected": "I AM A ROBOT"}) + "\n" for i in range(24)))
    if recipe == "reward":
        return ["--pairs", tmp / "pairs.jsonl", "--base", tiny_lm, "--max-steps", "4"]
    return ["--from", tiny_voice_run, "--pairs", tmp / "pairs.jsonl", "--max-steps", "4"]  # prefer


@pytest.mark.parametrize("recipe", ["classifier", "pretrain", "embedder", "instruct", "reward", "prefer"])
def test_every_recipe_trains_in_two_processes(recipe, store, tiny_st, tiny_voice_run):
    tmp, base = store
    args = _recipe_args(recipe, tmp, base, tiny_st, tiny_voice_run)
    p = subprocess.run([LIKEME, "train", recipe, *map(str, args), "--batch-size", "4", "--out", str(tmp / "run"), "-q",
                        "--processes", "2"], env={**os.environ, "LIKEME_HOME": str(tmp / "home")},
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert yaml.safe_load((tmp / "run" / "run.yaml").read_text())["status"] == "done"
    steps = [r["step"] for r in rows(tmp / "run") if "loss" in r]
    assert steps and steps == sorted(set(steps))  # each step logged once
    assert len(p.stdout.strip().splitlines()) <= 3 and "likeme" in p.stdout  # said once, by the main process
