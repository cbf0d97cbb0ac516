"""Like its person, or like everyone in the chat: specificity, attribution, learning from everyone, `likeme who`."""
import json
import math

import pytest
import torch
import yaml
from tiny import likeme_cli, three_person_store

from likeme import models
from likeme.check.likeness import attribution, specificity
from likeme.data.examples import persona_example, reply_sessions
from likeme.data.slots import by_person, everyone_dataset
from likeme.prompts import IGNORE, Turn
from likeme.use.likelihood import RunAndBase


def hand_nll(model, example):
    """Summed NLL of an example's labelled tokens and their count, from the full logits, one example at a time."""
    ids = torch.tensor([example["input_ids"]])
    labels = torch.tensor(example["labels"][1:])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    keep = labels != IGNORE
    return -logp[keep].gather(1, labels[keep][:, None]).sum().item(), int(keep.sum())


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """The three-person store's sessions: Sam opens each ("hi N"), Ana answers twice, Bo once."""
    store = three_person_store(tmp_path_factory.mktemp("likeness") / "s.db")
    sessions, _, _ = reply_sessions(store, "Ana", heldout=0.0)
    store.close()
    return by_person(sessions)


def test_specificity_against_hand_computed_values(tiny_voice_run, held):
    scorer = RunAndBase(tiny_voice_run)
    run_model = models.load_causal_lm(tiny_voice_run)[0]  # merged: the same function as adapter on
    base_model = models.load_causal_lm(models.resolve(tiny_voice_run).base.weights)[0]
    tok = scorer.tokenizer
    figures = {}
    for person, found in held.items():
        made = [persona_example(tok, r.context, Turn("Ana", r.reply.text), "Ana", prefix_names=r.prefix_names)
                for r in found]
        run = [hand_nll(run_model, e) for e in made]
        base = [hand_nll(base_model, e) for e in made]
        figures[person] = (run, base)

    def ppl(losses):
        return math.exp(sum(s for s, _ in losses) / sum(n for _, n in losses))

    got = specificity(scorer, held, "Ana")
    assert set(got["by_person"]) == {"Ana", "Sam", "Bo"}
    for person, (run, base) in figures.items():
        assert got["by_person"][person]["turns"] == len(run)
        assert got["by_person"][person]["ppl"] == pytest.approx(ppl(run), rel=1e-4)
        assert got["by_person"][person]["base_ppl"] == pytest.approx(ppl(base), rel=1e-4)
    own = 1 - ppl(figures["Ana"][0]) / ppl(figures["Ana"][1])
    others = 1 - ppl(figures["Sam"][0] + figures["Bo"][0]) / ppl(figures["Sam"][1] + figures["Bo"][1])
    assert got["own_drop"] == pytest.approx(own, abs=1e-4)
    assert got["others_drop"] == pytest.approx(others, abs=1e-4)
    assert got["specificity"] == pytest.approx(100 * (own - others), abs=0.02)
    assert 0 <= got["likelihood_auc"] <= 1


def test_attribution_against_hand_computed_values(tiny_voice_run, held):
    scorer = RunAndBase(tiny_voice_run)
    run_model = models.load_causal_lm(tiny_voice_run)[0]
    base_model = models.load_causal_lm(models.resolve(tiny_voice_run).base.weights)[0]
    tok = scorer.tokenizer
    people = ["Ana", "Sam", "Bo"]
    right = {"run": 0, "base": 0}
    total = 0
    for person in people:
        for r in held[person]:
            per_token = {}
            for slot in people:
                e = persona_example(tok, r.context, Turn(slot, r.reply.text), slot, prefix_names=r.prefix_names)
                (rs, n), (bs, _) = hand_nll(run_model, e), hand_nll(base_model, e)
                per_token[slot] = (rs / n, bs / n)
            right["run"] += min(people, key=lambda s: per_token[s][0]) == person
            right["base"] += min(people, key=lambda s: per_token[s][1]) == person
            total += 1
    got = attribution(scorer, held, people)
    assert got["turns"] == total == len(held["Ana"]) + len(held["Sam"]) + len(held["Bo"])
    assert got["accuracy"] == pytest.approx(right["run"] / total, abs=1e-4)
    assert got["base_accuracy"] == pytest.approx(right["base"] / total, abs=1e-4)
    assert sum(sum(row.values()) for row in got["confusion"].values()) == total
    assert got["chance"] == pytest.approx(1 / 3, abs=1e-4)


def test_everyone_learns_only_from_sessions_before_the_held_out_ones(tmp_path, tiny_lm):
    store = three_person_store(tmp_path / "s.db")
    tok = models.load_tokenizer(tiny_lm)
    data = everyone_dataset(store, "Ana", tok, min_turns=5)
    assert list(data.speakers)[0] == "Ana"  # NAME first: --own-weight repeats the first speakers["Ana"] examples
    assert set(data.speakers) == {"Ana", "Sam", "Bo"} and sum(data.speakers.values()) == len(data.train)
    texts = [tok.decode(e["input_ids"]) for e in data.train]
    # 12 sessions, the latest 2 held out: "hi 10" and "hi 11" open them
    assert any("hi 9" in t for t in texts) and not any("hi 10" in t or "hi 11" in t for t in texts)
    assert any("You are Sam." in t for t in texts) and any("You are Bo." in t for t in texts)
    held = [tok.decode(e["input_ids"]) for e in data.heldout]
    assert held and all("You are Ana." in t for t in held)
    again = everyone_dataset(store, "Ana", tok, min_turns=5)  # from the cache beside the store
    assert again.train == data.train and again.speakers == data.speakers
    store.close()


def test_a_run_that_learnt_from_everyone_speaks_as_each(tmp_path, tiny_lm):
    three_person_store(tmp_path / "s.db").close()
    out = tmp_path / "run"
    p = likeme_cli("train", "voice", "--as", "Ana", "--db", tmp_path / "s.db", "--base", tiny_lm, "--learn-from",
                   "everyone", "--min-turns", "5", "--max-steps", "2", "--batch-size", "4", "--grad-accum", "1", "--out", out)
    assert p.returncode == 0, p.stderr
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert set(meta["speakers"]) == {"Ana", "Sam", "Bo"}  # the provenance: whose words were targets
    metrics = json.loads((out / "metrics.json").read_text())
    assert "specificity" in metrics and metrics["scored_others"] > 0
    replies = {}
    for name in ("Ana", "Sam"):
        p = likeme_cli("chat", out, "--as", name, "-m", "hi", "--seed", "1", "--max-new-tokens", "8", "--backend", "torch")
        assert p.returncode == 0, p.stderr
        replies[name] = p.stdout
    from likeme.use.generate import load

    assert "You are Sam." in load(out, name="Sam").tokenizer.decode(load(out, name="Sam").prompt_ids(["hi"]))
    p = likeme_cli("chat", out, "--as", "Nobody", "-m", "hi")
    assert p.returncode == 1 and "did not learn 'Nobody'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = likeme_cli("who", out, "pizza", "--json")
    assert p.returncode == 0, p.stderr
    ranked = json.loads(p.stdout)
    assert {r["person"] for r in ranked} == {"Ana", "Sam", "Bo"}
    assert [r["nats_per_token"] for r in ranked] == sorted((r["nats_per_token"] for r in ranked), reverse=True)
    p = likeme_cli("who", out, "pizza", "--context", "no colon here")
    assert p.returncode == 1 and "Name: text" in p.stderr


def test_a_voice_of_one_person_refuses_to_speak_as_another(tiny_voice_run):
    p = likeme_cli("chat", tiny_voice_run, "--as", "Sam", "-m", "hi")
    assert p.returncode == 1 and "--learn-from everyone" in p.stderr


def test_contrast_renders_each_turn_in_its_rivals_slots(tmp_path, tiny_lm):
    store = three_person_store(tmp_path / "s.db")
    tok = models.load_tokenizer(tiny_lm)
    plain = everyone_dataset(store, "Ana", tok, min_turns=5)
    data = everyone_dataset(store, "Ana", tok, min_turns=5, contrast=2)
    assert data.speakers == plain.speakers and len(data.train) == len(plain.train)
    for e in data.train:
        own = tok.decode(e["input_ids"])
        (rival,) = e["rivals"]
        text = tok.decode(rival["input_ids"])
        reply = tok.decode([t for t in e["labels"] if t != IGNORE])
        assert tok.decode([t for t in rival["labels"] if t != IGNORE]) == reply  # the same turn ...
        assert ("You are Ana." in own) != ("You are Ana." in text)  # ... in the other person's slot
        assert "hi 10" not in text and "hi 11" not in text  # never from a held-out session
    others = [e for e in data.train if "You are Sam." in tok.decode(e["input_ids"])]
    assert others and all("You are Ana." in tok.decode(e["rivals"][0]["input_ids"]) for e in others)  # NAME's slot first
    assert data.heldout and all(len(e["rivals"]) == 1 for e in data.heldout)  # held out: Ana's, against a rival
    assert [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in data.heldout] == plain.heldout
    again = everyone_dataset(store, "Ana", tok, min_turns=5, contrast=2)  # from the cache, rivals and all
    assert again.train == data.train and again.heldout == data.heldout
    store.close()


def test_a_voice_learns_with_the_person_contrast(tmp_path, tiny_lm):
    three_person_store(tmp_path / "s.db").close()
    out = tmp_path / "run"
    common = ["train", "voice", "--as", "Ana", "--db", tmp_path / "s.db", "--base", tiny_lm, "--min-turns", "5",
              "--max-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--contrast", "1", "--contrast-slots", "3"]
    p = likeme_cli(*common, "--learn-from", "me", "--out", tmp_path / "bad")
    assert p.returncode == 1 and "--learn-from everyone" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = likeme_cli(*common, "--learn-from", "everyone", "--blend", 0, "--out", out)
    assert p.returncode == 0, p.stderr
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [s for s in steps if "loss" in s]
    assert trained and all(s["loss"] == pytest.approx(s["train_lm"] + s["train_contrast"], abs=2e-3) for s in trained)
    assert 0 < trained[0]["train_contrast"] < 2 * math.log(3)  # about log 3 at the start: three slots
    assert "specificity" in json.loads((out / "metrics.json").read_text())
