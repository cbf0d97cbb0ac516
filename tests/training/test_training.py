"""The training components on tiny real models: which parameters train, perplexity, a LoRA run's base,
and a training process killed with SIGKILL then resumed."""
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from tiny import whatsapp_export

from likeme.training.trainable import blocks_of, select

LIKEME = str(Path(sys.executable).parent / "likeme")


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_last_blocks_of_a_causal_lm(tiny_lm):
    from transformers import AutoModelForCausalLM

    model = select(AutoModelForCausalLM.from_pretrained(tiny_lm), "last-blocks", last_blocks=1)
    names = trainable_names(model)
    assert names and all(n.startswith(("model.layers.1.", "model.norm.")) for n in names)
    assert "model.norm.weight" in names and not any(n.startswith("lm_head") for n in names)  # tied to the embedding
    model = select(model, "last-blocks", last_blocks=2)
    assert any(n.startswith("model.layers.0.") for n in trainable_names(model))
    with pytest.raises(Exception, match="--last-blocks must be between 1 and 2"):
        select(model, "last-blocks", last_blocks=3)


def test_voice_and_instruct_lora_draw_no_dropout_masks_by_default(tiny_lm):
    """LoRA dropout is 0 by default (drawing its masks was a third of a CPU step): the adapters built from the
    voice and instruct recipes' defaults hold no Dropout module, and the same model in train mode is
    deterministic; asked for, dropout is there again."""
    from transformers import AutoModelForCausalLM

    from likeme.recipes.instruct import InstructConfig
    from likeme.recipes.voice import VoiceConfig
    from likeme.training.trainable import Lora

    for cfg in (VoiceConfig(name="Ana"), InstructConfig()):
        model = select(AutoModelForCausalLM.from_pretrained(tiny_lm), "lora",
                       lora=Lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
        assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
        model.train()
        ids = torch.tensor([[1, 2, 3, 4, 5]])
        assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
    model = select(AutoModelForCausalLM.from_pretrained(tiny_lm), "lora", lora=Lora(8, 16, 0.05))
    assert any(isinstance(m, torch.nn.Dropout) for m in model.modules())


def test_what_trains_in_an_encoder_classifier(tiny_bert):
    from likeme.use.heads import new_classifier

    model, _, kind = new_classifier(str(tiny_bert), ["a", "b"])
    assert kind == "encoder" and len(blocks_of(model)) == 2
    names = trainable_names(select(model, "last-blocks", head="head"))
    assert names == {n for n, _ in model.named_parameters() if n.startswith(("encoder.encoder.layer.1.", "head."))}
    assert trainable_names(select(model, "head", head="head")) == {"head.weight", "head.bias"}
    assert trainable_names(select(model, "all")) == {n for n, _ in model.named_parameters()}
    lora = select(model, "lora", head="head")
    names = trainable_names(lora)
    assert names and all("lora_" in n or ".head." in n for n in names)  # adapters, and the head in full
    assert {n for n in names if "modules_to_save" in n} == {"base_model.model.head.modules_to_save.default.weight",
                                                        "base_model.model.head.modules_to_save.default.bias"}


def test_perplexity_does_not_depend_on_the_batch_size(tiny_lm):
    from likeme.check.evaluate import perplexity
    from likeme.models import load_causal_lm
    from likeme.prompts import IGNORE

    model, tok = load_causal_lm(tiny_lm)
    texts = ["hey, are you coming tonight?", "ok", "chocolate, obviously. see you soon and bring the cake please",
             "no, I was working late", "sure"]
    examples = []
    for t in texts:
        ids = tok(t)["input_ids"]
        examples.append({"input_ids": ids, "labels": [IGNORE] + ids[1:]})  # the first token is never predicted
    ppls = [perplexity(model, examples, tok.pad_token_id, batch_size=b) for b in (1, 2, 3, 5)]
    assert ppls == pytest.approx([ppls[0]] * 4, rel=1e-5)
    with torch.no_grad():  # by hand: the mean negative log-likelihood over every labelled token
        nll, n = 0.0, 0
        for e in examples:
            logits = model(torch.tensor([e["input_ids"]])).logits[0, :-1]  # (T-1, V)
            target = torch.tensor(e["labels"][1:])
            keep = target != IGNORE
            nll += -logits.log_softmax(-1)[keep].gather(1, target[keep, None]).sum().item()
            n += int(keep.sum())
    assert ppls[0] == pytest.approx(float(torch.exp(torch.tensor(nll / n))), rel=1e-5)


def test_a_lora_run_leaves_the_base_weights_bit_identical(tmp_path, tiny_lm):
    from safetensors.torch import load_file
    from tiny import three_person_store

    from likeme.models import load_causal_lm
    from likeme.recipes.voice import VoiceConfig, train_voice

    three_person_store(tmp_path / "s.db").close()
    before = (tiny_lm / "model.safetensors").read_bytes()
    run = train_voice(VoiceConfig(name="Ana", db=str(tmp_path / "s.db"), base=str(tiny_lm), batch_size=4, grad_accum=1,
                                  max_steps=3, eval_every=3, lr=1e-2, out=str(tmp_path / "run")), progress=False)
    assert (tiny_lm / "model.safetensors").read_bytes() == before  # the file on disk
    peft_model, _ = load_causal_lm(run, merge=False)
    base = load_file(str(tiny_lm / "model.safetensors"))
    inner = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
             for n, p in peft_model.named_parameters() if "lora_" not in n}
    assert set(base) <= set(inner) and all(torch.equal(inner[k], base[k]) for k in base)  # and in the run
    adapter = load_file(str(run / "model" / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())  # while the adapter learned


def test_a_killed_training_resumes_with_each_step_once(tmp_path, tiny_lm):
    """kill -9 in the middle of a run (no Ctrl-C handler runs), then --resume: the run finishes, metrics.jsonl
    has every step once (the rows after the last checkpoint are logged again, not twice)."""
    chat = whatsapp_export(tmp_path / "WhatsApp Chat with Pizza Club.txt", 30, datetime(2024, 1, 1, 18), lambda s: [
        ("Sam", f"plans for day {s}?"), ("Ana", "pizza obviously"), ("Bo", "again?"), ("Ana", "always")])
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    db, out = tmp_path / "s.db", tmp_path / "run"
    subprocess.run([LIKEME, "ingest", str(chat), "--db", str(db)], check=True, capture_output=True, env=env)
    train = [LIKEME, "train", "voice", "--as", "Ana", "--db", str(db), "--base", str(tiny_lm), "--batch-size", "2", "--grad-accum", "1",
             "--max-steps", "40", "--eval-every", "4", "--patience", "100", "--out", str(out), "-q"]
    p = subprocess.Popen(train, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and p.poll() is None:  # until step 10 is logged: then kill it
            rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()[:-1]] \
                if (out / "metrics.jsonl").is_file() else []
            if rows and rows[-1]["step"] >= 10:
                break
            time.sleep(0.05)
        assert p.poll() is None, "training ended before it could be killed"
        p.send_signal(signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    logged = max(json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()[:-1])
    assert 10 <= logged < 40
    assert "status: training" in (out / "run.yaml").read_text()  # nothing ran to mark it: it was killed
    resumed = subprocess.run([LIKEME, "train", "voice", "--out", str(out), "--resume", "-q"], capture_output=True,
                             text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 41))
    assert [r["step"] for r in rows if "eval_loss" in r] == list(range(4, 41, 4))
    assert all(b["seconds"] >= a["seconds"] for a, b in zip(rows, rows[1:]))  # training time counts on
    assert "status: done" in (out / "run.yaml").read_text() and (out / "model" / "adapter_model.safetensors").is_file()


def test_perplexity_of_a_lora_model_is_its_merged_models(tiny_lm):
    """The fast path (the LM head at labelled positions only) runs through a PEFT wrapper's LoRA layers."""
    import peft

    from likeme.check.evaluate import perplexity
    from likeme.models import load_causal_lm
    from likeme.prompts import IGNORE

    model, tok = load_causal_lm(tiny_lm)
    torch.manual_seed(1)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    ids = tok("hey, are you coming tonight? see you soon")["input_ids"]
    examples = [{"input_ids": ids, "labels": [IGNORE] * 4 + ids[4:]}]
    with_lora = perplexity(lora, examples, tok.pad_token_id)
    merged = perplexity(lora.merge_and_unload(), examples, tok.pad_token_id)
    assert with_lora == pytest.approx(merged, rel=1e-5)
    assert with_lora != pytest.approx(perplexity(load_causal_lm(tiny_lm)[0], examples, tok.pad_token_id), rel=1e-3)


def test_steps_worked_example():
    from likeme.training.trainer import steps

    assert steps(100, 8, 1.5) == (13, 20)  # 13 steps an epoch (the last one short), 19.5 rounded up
    assert steps(100, 8, 1.5, max_steps=5) == (13, 5)
    assert steps(96, 8, 1.0) == (12, 12) and steps(3, 8, 0.1) == (1, 1)
