"""The voice recipe end to end on a tiny model: run folder, what trains, Ctrl-C and --resume."""
import json

import pytest
import torch
import yaml
from tiny import interrupt_at, three_person_store

from likeme.errors import LikemeError
from likeme.recipes.voice import VoiceConfig, train_voice
from likeme.runs import Interrupted


@pytest.fixture
def setup(tmp_path, tiny_lm):
    three_person_store(tmp_path / "s.db").close()
    return tmp_path, tiny_lm


def cfg(tmp_path, base, **kw):
    kw = {"name": "Ana", "db": str(tmp_path / "s.db"), "base": str(base), "batch_size": 4, "grad_accum": 1, "eval_every": 2,
          "out": str(tmp_path / "run"), "learn_from": "me", **kw}  # one plain run unless a test asks for everyone
    return VoiceConfig(**kw)


def weights(folder):
    from safetensors.torch import load_file
    return load_file(str(folder / "model.safetensors"))


def test_lora_run_folder(setup):
    tmp, base = setup
    run = train_voice(cfg(tmp, base, max_steps=4, score_max=3), progress=False)
    meta = yaml.safe_load((run / "run.yaml").read_text())
    assert meta["as"] == "Ana" and meta["status"] == "done" and meta["config"]["max_steps"] == 4
    assert meta["recipe"] == "voice" and meta["task"] == "causal-lm" and meta["base"] == str(base)
    assert meta["data"]["messages"] == {"Ana": 36, "Sam": 24, "Bo": 12} and meta["data"]["store"] == str(tmp / "s.db")
    assert {"python", "torch", "transformers", "peft"} <= set(meta["versions"])
    # one layout: the weights (here the adapter) with their tokenizer and chat template beside them
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja"} \
        <= {p.name for p in (run / "model").iterdir()}
    assert (run / "plots" / "loss.png").stat().st_size > 1000
    assert not (run / "checkpoints").exists()
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert all(r["tokens_per_s"] > 0 for r in rows if "loss" in r)
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 4]
    samples = [r for r in rows if "samples" in r]  # two held-out contexts answered at each evaluation
    assert [r["step"] for r in samples] == [2, 4] and all(len(r["samples"]) == 2 and r["loops"] in (0, 1, 2) for r in samples)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["heldout_replies"] == 4 and metrics["scored_replies"] == 3  # an even sample
    assert metrics["base_ppl"] == meta["baseline"]["ppl"] and metrics["ppl"] < metrics["base_ppl"]
    # LoRA trained something: B matrices start at zero and are not zero any more
    from safetensors.torch import load_file
    adapter = load_file(str(run / "model" / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())


def test_last_blocks_trains_only_the_last_block(setup):
    tmp, base = setup
    before = weights(base)
    run = train_voice(cfg(tmp, base, max_steps=3, trainable="last-blocks", last_blocks=1, lr=1e-2), progress=False)
    after = weights(run / "model")
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed)
    assert all((before[k] == after[k]).all() for k in before if k.startswith(("model.layers.0.", "model.embed")))


def test_full_changes_every_trained_weight(setup):
    tmp, base = setup
    before = weights(base)
    run = train_voice(cfg(tmp, base, max_steps=2, trainable="all", lr=1e-3), progress=False)
    after = weights(run / "model")
    assert not (before["model.layers.0.self_attn.q_proj.weight"] == after["model.layers.0.self_attn.q_proj.weight"]).all()


def test_interrupt_then_resume_ends_as_an_uninterrupted_run(setup):
    """Ctrl-C at step 3 of 8, then --resume: the same adapter as 8 steps in one go (optimizer, schedule, data
    order and dropout's random state all come back from the checkpoint), and each step logged once."""
    tmp, base = setup
    straight = train_voice(cfg(tmp, base, max_steps=8, out=str(tmp / "straight")), progress=False)
    with pytest.raises(Interrupted, match="interrupted at step 3.*likeme train voice --out .* --resume"):
        train_voice(cfg(tmp, base, max_steps=8), progress=False, callbacks=[interrupt_at(3)])
    run = tmp / "run"
    assert (run / "checkpoints" / "checkpoint-3").is_dir() and not (run / "model").exists()
    assert yaml.safe_load((run / "run.yaml").read_text())["status"] == "interrupted"
    steps_before = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps_before) == 3
    train_voice(VoiceConfig(out=str(run)), resume=True, progress=False)
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))  # kept 1-3, added 4-8, no repeats
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 4, 6, 8]
    assert json.loads((run / "metrics.json").read_text())["steps"] == 8
    from safetensors.torch import load_file
    a = load_file(str(straight / "model" / "adapter_model.safetensors"))
    b = load_file(str(run / "model" / "adapter_model.safetensors"))
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # not trivially equal: both trained
    straight_rows = [json.loads(l) for l in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows if "loss" in r] == pytest.approx([r["loss"] for r in straight_rows if "loss" in r],
                                                                     abs=1e-4)


def test_resume_needs_the_same_data(setup):
    tmp, base = setup
    with pytest.raises(Interrupted):
        train_voice(cfg(tmp, base, max_steps=4), progress=False, callbacks=[interrupt_at(2)])
    from datetime import datetime

    from likeme.data.ingest import Message
    from likeme.data.store import Store

    with Store(tmp / "s.db") as store:  # a later message by Ana: the sessions, and so the examples, change
        store.add_messages([Message("t", "group", "Ana", datetime(2030, 1, 1), "new message")], path="later")
    with pytest.raises(LikemeError, match="the data changed since this run started"):
        train_voice(VoiceConfig(out=str(tmp / "run")), resume=True, progress=False)
    with pytest.raises(LikemeError, match="no run to resume"):
        train_voice(VoiceConfig(out=str(tmp / "nothing")), resume=True, progress=False)


def test_existing_run_is_not_overwritten(setup):
    tmp, base = setup
    (tmp / "run").mkdir()
    (tmp / "run" / "keep.txt").write_text("mine")
    with pytest.raises(LikemeError, match="already exists"):
        train_voice(cfg(tmp, base, max_steps=1), progress=False)
    assert (tmp / "run" / "keep.txt").read_text() == "mine"


def test_a_time_budget_fits_the_steps_and_the_schedule(setup):
    """--max-minutes: the pace of the first steps sets the last step, and the cosine schedule ends there."""
    tmp, base = setup
    run = train_voice(cfg(tmp, base, max_minutes=0.05, eval_every=1000), progress=False)  # 3 seconds
    rows = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    steps = json.loads((run / "metrics.json").read_text())["steps"]
    assert 3 < steps < 100 * 5 and [r["step"] for r in rows] == list(range(1, steps + 1))
    assert rows[-1]["seconds"] < 3 * 4  # stopped near the budget, not after 100 passes
    assert rows[-1]["lr"] < 0.1 * max(r["lr"] for r in rows)  # the schedule reached its end with the last step


def test_small_data_guard(setup, capsys):
    """Left unset, the steps and evaluation interval come from the data's size; too many passes warn."""
    from likeme.training.trainer import Plan, plan

    assert plan(120, 8) == Plan(steps_per_epoch=15, planned=45, total=45, eval_every=9, warning=None)  # 3 passes
    assert (plan(1000, 8).planned, plan(1000, 8).eval_every) == (125, 20)  # one pass; evaluations 20 steps apart
    assert plan(50, 8, max_steps=100).warning.startswith("50 training examples for 100 steps of 8: 16 passes")
    assert plan(50, 8, max_minutes=5).warning is None and plan(50, 8, max_steps=30).warning is None
    tmp, base = setup
    run = train_voice(cfg(tmp, base, eval_every=None, max_steps=60), progress=False)
    err = capsys.readouterr().err
    assert "warning: 20 training examples for 60 steps of 4: 12 passes" in err, err[-400:]
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval_loss" in r][:2] == [12, 24]  # 60 // 5


def _state(run):
    from likeme import models
    return {k: v.detach().clone() for k, v in models.load_causal_lm(run)[0].state_dict().items()}


def test_blend_is_the_contrast_voice_and_the_own_voice_summed(setup):
    """--blend 0.4: a contrast voice and a register voice (everyone's turns, no contrast) trained as runs in
    RUN/parts/ on 0.6 and 0.4 of --max-steps, and RUN's weights the base plus 0.6 and 0.4 of their updates,
    scored as any voice is."""
    tmp, base = setup
    run = train_voice(cfg(tmp, base, learn_from="everyone", contrast=1.0, contrast_slots=2, min_turns=5, blend=0.4, max_steps=4,
                          lr=5e-3, score_max=3), progress=False)
    contrast, own = run / "parts" / "contrast", run / "parts" / "register"
    cm, om, meta = (yaml.safe_load((r / "run.yaml").read_text()) for r in (contrast, own, run))
    assert cm["status"] == om["status"] == meta["status"] == "done"
    assert cm["config"]["learn_from"] == "everyone" and cm["config"]["contrast"] == 1.0 and cm["config"]["blend"] == 0
    assert om["config"]["learn_from"] == "everyone" and om["config"]["contrast"] == 0 and om["config"]["own_weight"] == 1
    assert meta["merged_from"] == [{"run": "parts/contrast", "weight": 0.6}, {"run": "parts/register", "weight": 0.4}]
    assert meta["speakers"] == cm["speakers"] and set(meta["speakers"]) >= {"Ana", "Sam"}  # speaks as either
    b, c, o, blended = _state(base), _state(contrast), _state(own), _state(run)
    moved = [k for k in b if (c[k] - b[k]).abs().max() > 1e-6 and (o[k] - b[k]).abs().max() > 1e-6]
    assert moved  # both parts changed some weights, so the check below can fail
    for k in b:
        assert torch.allclose(blended[k], b[k] + 0.6 * (c[k] - b[k]) + 0.4 * (o[k] - b[k]), atol=1e-6), k
    m = json.loads((run / "metrics.json").read_text())
    assert m["contrast"]["steps"] == m["register"]["steps"] == 2 and m["steps"] == 4
    assert m["base_ppl"] == om["baseline"]["ppl"] and m["scored_replies"] == 3  # NAME's replies, as the parts score them
    assert m["ppl"] != m["register"]["ppl"] and "specificity" in m and "specificity" in m["register"]
    assert (run / "model" / "chat_template.jinja").is_file()
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]  # the parts' rows, one after the other
    trained = [(r["part"], r["step"], r["max_steps"]) for r in rows if "loss" in r]
    assert trained == [("contrast", 1, 4), ("contrast", 2, 4), ("register", 3, 4), ("register", 4, 4)]
    assert [r["seconds"] for r in rows] == sorted(r["seconds"] for r in rows)
    assert (run / "plots" / "loss.png").stat().st_size > 1000


def test_blend_resumes_in_the_part_it_stopped_in(setup):
    """Ctrl-C in the contrast part, then --resume on RUN: the part continues, the register voice trains, the
    same blend as in one go."""
    tmp, base = setup
    kw = {"learn_from": "everyone", "contrast": 1.0, "contrast_slots": 2, "min_turns": 5, "blend": 0.5, "max_steps": 8, "lr": 5e-3}
    straight = train_voice(cfg(tmp, base, out=str(tmp / "straight"), **kw), progress=False)
    with pytest.raises(Interrupted):
        train_voice(cfg(tmp, base, **kw), progress=False, callbacks=[interrupt_at(3)])
    run = tmp / "run"
    assert yaml.safe_load((run / "run.yaml").read_text())["status"] == "interrupted"
    assert not (run / "parts" / "register").exists() and not (run / "model").exists()
    train_voice(VoiceConfig(out=str(run)), resume=True, progress=False)
    steps = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == list(range(1, 9))  # each step once in RUN's rows too
    a, b = _state(straight), _state(run)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert not torch.allclose(a["model.layers.0.self_attn.q_proj.weight"], _state(base)["model.layers.0.self_attn.q_proj.weight"])


def test_person_settings_fall_away_where_they_cannot_apply(setup, capsys):
    """The defaults learn from everyone with the contrast and a blend; what a default cannot do falls away, with
    a note; what a flag asks for that cannot be is refused before anything is written."""
    from likeme.data.store import Store
    from likeme.training.person import settings

    tmp, base = setup
    with Store(tmp / "s.db") as store:
        default = VoiceConfig(name="Ana", min_turns=5)
        assert (default.learn_from, default.contrast, default.contrast_slots, default.own_weight, default.blend) == \
            ("everyone", None, 2, 3, None)
        filled, note = settings(default, store)  # Ana and Sam have 5 training turns or more
        assert (filled.learn_from, filled.contrast, filled.blend, note) == ("everyone", 2.0, 0.3, None)
        few, note = settings(VoiceConfig(name="Ana", min_turns=1000), store)
        assert (few.learn_from, few.contrast, few.blend) == ("me", 0, 0) and "without the person contrast" in note
        me, note = settings(VoiceConfig(name="Ana", learn_from="me"), store)
        assert (me.contrast, me.blend, note) == (0, 0, None)
        tr, note = settings(VoiceConfig(name="Ana", format="transcript"), store)
        assert (tr.learn_from, tr.contrast, tr.blend, note) == ("me", 0, 0, None)
        full, note = settings(VoiceConfig(name="Ana", min_turns=5, trainable="all"), store)
        assert (full.learn_from, full.contrast, full.blend) == ("everyone", 0, 0) and "LoRA" in note
        plain, note = settings(VoiceConfig(name="Ana", min_turns=5, contrast=0.0), store)
        assert (plain.learn_from, plain.contrast, plain.blend, note) == ("everyone", 0, 0, None)
        sharp, _ = settings(VoiceConfig(name="Ana", min_turns=5, blend=0.0), store)
        assert (sharp.contrast, sharp.blend) == (2.0, 0)
        recall, note = settings(VoiceConfig(name="Ana", min_turns=5, recall=2), store)
        assert (recall.learn_from, recall.contrast, recall.blend) == ("me", 0, 0) and "--recall" in note
        for bad, flag in ((dict(learn_from="me", contrast=1.0), "--learn-from everyone"),
                          (dict(blend=0.3, contrast=0.0), "--contrast C"), (dict(blend=1.0), "--blend 1"),
                          (dict(blend=0.3, trainable="all"), "LoRA")):
            with pytest.raises(LikemeError, match=flag):
                settings(VoiceConfig(name="Ana", min_turns=5, **bad), store)
    run = train_voice(VoiceConfig(name="Ana", db=str(tmp / "s.db"), base=str(base), min_turns=1000, max_steps=1,
                                  batch_size=4, grad_accum=1, out=str(tmp / "few")), progress=False)
    assert "note: learning without the person contrast" in capsys.readouterr().err
    assert yaml.safe_load((run / "run.yaml").read_text())["config"]["blend"] == 0 and not (run / "parts").exists()
    with pytest.raises(LikemeError, match="--blend 1"):
        train_voice(cfg(tmp, base, learn_from="everyone", contrast=1.0, blend=1.0), progress=False)
    assert not (tmp / "run").exists()
