"""The voice recipe end to end on a tiny model: run folder, what trains, Ctrl-C and --resume."""
import json
import os
import signal

import pytest
import yaml

from likeme.errors import LikemeError
from likeme.recipes.voice import Interrupted, VoiceConfig, train_voice
from test_datasets import three_person_store
from tiny import save_tiny_causal_lm


@pytest.fixture
def setup(tmp_path):
    three_person_store(tmp_path / "s.db").close()
    base = save_tiny_causal_lm(tmp_path / "tiny")
    return tmp_path, base


def cfg(tmp_path, base, **kw):
    return VoiceConfig(name="Ana", db=str(tmp_path / "s.db"), base=str(base), batch_size=4, eval_every=2,
                       out=str(tmp_path / "run"), **kw)


def weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def test_lora_run_folder(setup):
    tmp, base = setup
    run = train_voice(cfg(tmp, base, max_steps=4), progress=False)
    meta = yaml.safe_load((run / "run.yaml").read_text())
    assert meta["as"] == "Ana" and meta["status"] == "done" and meta["config"]["max_steps"] == 4
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "tokenizer.json").is_file() and (run / "chat_template.jinja").is_file()
    assert (run / "plots" / "loss.png").stat().st_size > 1000
    assert not (run / "checkpoints").exists()
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert all(r["tokens_per_s"] > 0 for r in rows if "loss" in r)
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 4]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["heldout_replies"] == 4 and metrics["base_ppl"] > 1
    # LoRA trained something: B matrices start at zero and are not zero any more
    from safetensors.torch import load_file
    adapter = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())


def test_last_layers_trains_only_the_last_block(setup):
    tmp, base = setup
    before = weights(base)
    run = train_voice(cfg(tmp, base, max_steps=3, method="last-layers", last_layers=1, lr=1e-2), progress=False)
    after = weights(run / "model")
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed)
    assert all((before[k] == after[k]).all() for k in before if k.startswith(("model.layers.0.", "model.embed")))


def test_full_changes_every_trained_weight(setup):
    tmp, base = setup
    before = weights(base)
    run = train_voice(cfg(tmp, base, max_steps=2, method="full", lr=1e-3), progress=False)
    after = weights(run / "model")
    assert not (before["model.layers.0.self_attn.q_proj.weight"] == after["model.layers.0.self_attn.q_proj.weight"]).all()


class InterruptAt:
    """Sends a real SIGINT to this process while step `step` runs, as Ctrl-C would."""

    def __init__(self, step):
        from transformers import TrainerCallback
        self.step = step
        self.__class__ = type("InterruptAtCb", (InterruptAt, TrainerCallback), {})

    def on_step_begin(self, args, state, control, **kw):
        if state.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupt_then_resume(setup):
    tmp, base = setup
    with pytest.raises(Interrupted, match="interrupted at step 3.*--resume"):
        train_voice(cfg(tmp, base, max_steps=8), progress=False, callbacks=[InterruptAt(3)])
    run = tmp / "run"
    assert (run / "checkpoints" / "checkpoint-3").is_dir()
    assert yaml.safe_load((run / "run.yaml").read_text())["status"] == "training"
    steps_before = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps_before) == 3
    train_voice(VoiceConfig(out=str(run)), resume=True, progress=False)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))  # kept 1-3, added 4-8, no repeats
    assert json.loads((run / "metrics.json").read_text())["steps"] == 8


def test_existing_run_is_not_overwritten(setup):
    tmp, base = setup
    (tmp / "run").mkdir()
    (tmp / "run" / "keep.txt").write_text("mine")
    with pytest.raises(LikemeError, match="already exists"):
        train_voice(cfg(tmp, base, max_steps=1), progress=False)
    assert (tmp / "run" / "keep.txt").read_text() == "mine"
