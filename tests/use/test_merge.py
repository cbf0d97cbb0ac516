"""Merging LoRA voices: the merged run's weights are the base plus the weighted sum of the runs' updates."""
import json

import pytest
import torch
from tiny import likeme_cli, three_person_store

from likeme import models, runs
from likeme.errors import LikemeError
from likeme.use.merge import merge, parse_weights


@pytest.fixture(scope="module")
def two_runs(tiny_voice_run, tmp_path_factory):
    """Ana's voice (the session's tiny run) and one learnt from everyone, tuned from the same tiny model."""
    from likeme.recipes.voice import VoiceConfig, train_voice

    tmp = tmp_path_factory.mktemp("merge")
    three_person_store(tmp / "s.db").close()
    other = train_voice(VoiceConfig(name="Ana", db=str(tmp / "s.db"), base=runs.base_of(tiny_voice_run),
                                    learn_from="everyone", min_turns=5, contrast=0.0, max_steps=2, batch_size=4, grad_accum=1, eval_every=2,
                                    lr=5e-3, out=str(tmp / "everyone")), progress=False)
    return tiny_voice_run, other


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_merged_weights_are_the_weighted_sum_of_the_updates(two_runs, tmp_path):
    first, second = two_runs
    out = merge([second, first], [0.7, 0.3], tmp_path / "merged")
    base = _weights(models.load_causal_lm(runs.base_of(first))[0])
    a, b = (_weights(models.load_causal_lm(r)[0]) for r in (second, first))
    merged = _weights(models.load_causal_lm(out)[0])
    moved = [k for k in base if (a[k] - base[k]).abs().max() > 1e-6 and (b[k] - base[k]).abs().max() > 1e-6]
    assert moved  # both runs changed some weights, so the check below can fail
    for k in base:
        expected = base[k] + 0.7 * (a[k] - base[k]) + 0.3 * (b[k] - base[k])
        assert torch.allclose(merged[k], expected, atol=1e-6), k
    meta = runs.read_meta(out)
    assert meta["merged_from"] == [{"run": str(second), "weight": 0.7}, {"run": str(first), "weight": 0.3}]
    assert meta["speakers"] == runs.read_meta(second)["speakers"]  # it prompts as the first run named
    card = json.loads((out / "provenance.json").read_text())
    assert [m["weight"] for m in card["merged_from"]] == [0.7, 0.3]
    assert set(card["data"]["messages"]) >= {"Ana"}


def test_merge_through_the_cli_then_chat_as_two_people(two_runs, tmp_path):
    first, second = two_runs
    p = likeme_cli("merge", second, first, "--out", tmp_path / "m")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(tmp_path / "m")
    assert [m["weight"] for m in runs.read_meta(tmp_path / "m")["merged_from"]] == [0.5, 0.5]  # equal by default
    for name in list(runs.read_meta(second)["speakers"])[:2]:  # the people of the first run named
        p = likeme_cli("chat", tmp_path / "m", "--as", name, "-m", "hi", "--max-new-tokens", 4, "--seed", 1,
                       "--backend", "torch")
        assert p.returncode == 0 and p.stdout.strip(), p.stderr
    p = likeme_cli("merge", second, first, "--weights", "1", "--out", tmp_path / "n")
    assert p.returncode == 1 and "one per run" in p.stderr and not (tmp_path / "n").exists()


def test_merge_refuses_what_it_cannot_merge(two_runs, tiny_lm, tmp_path):
    first, second = two_runs
    with pytest.raises(LikemeError, match="two runs or more"):
        merge([first], [1.0], tmp_path / "a")
    with pytest.raises(LikemeError, match="not a LoRA run"):
        merge([first, tiny_lm], [0.5, 0.5], tmp_path / "b")
    with pytest.raises(LikemeError, match="exists"):
        merge([first, second], [0.5, 0.5], first)
    with pytest.raises(LikemeError, match="one number per run|one per run"):
        parse_weights("0.5", 2)
    with pytest.raises(LikemeError, match="comma-separated"):
        parse_weights("half,half", 2)
    assert parse_weights(None, 4) == [0.25] * 4
