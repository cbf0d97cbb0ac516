"""Preference pairs from NAME's own replies (`likeme pairs`, `likeme compare`) and best-of-n with a judge."""

import json
from datetime import datetime

import pytest
from tiny import likeme_cli, whatsapp_export

from likeme.errors import LikemeError
from likeme.training import pairs


@pytest.fixture(scope="module")
def runs(_tiny_models, tmp_path_factory):
    """Ana's voice and an embedder judge of Ana, trained on a store whose sessions say which they are
    (Sam opens session s with "hi s"; sessions 10 and 11, the latest, are held out)."""
    from conftest import _copy
    from tiny import three_person_store

    from likeme.recipes.embed import EmbedConfig, train_embedder
    from likeme.recipes.voice import VoiceConfig, train_voice

    tmp = tmp_path_factory.mktemp("pairs")
    three_person_store(tmp / "s.db").close()
    lm = _copy(_tiny_models, "lm", tmp)
    voice = train_voice(VoiceConfig(name="Ana", db=str(tmp / "s.db"), base=str(lm), max_steps=2, batch_size=4, grad_accum=1,
                                    eval_every=2, out=str(tmp / "voice")), progress=False)
    judge = train_embedder(EmbedConfig(name="Ana", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "st", tmp)),
                                       max_steps=10, batch_size=8, lr=1e-3, eval_every=10, out=str(tmp / "judge")),
                           progress=False)
    later = whatsapp_export(tmp / "WhatsApp Chat with group.txt", 3, datetime(2025, 1, 1, 9),
                            lambda s: [("Sam", f"hey {s}"), ("Ana", "what's up"), ("Bo", "yo yo"), ("Ana", "ok then")])
    return {"voice": voice, "judge": judge, "db": tmp / "s.db", "tiny_lm": lm, "later": later}


def test_pairs_come_from_training_sessions_only(runs):
    made = list(pairs.from_run(runs["voice"], per_context=2, max_contexts=None, others=True, seed=0))
    prompts = [" ".join(m["content"] for m in p["prompt"]) for p in made]
    sessions = {int(w) for text in prompts for w in text.replace("hi ", "hi_").split() if w.startswith("hi_")
                for w in [w[3:]] if w.isdigit()}
    assert sessions == set(range(10))  # every training session, never the held-out 10 and 11
    assert all(p["prompt"][0]["role"] == "system" and "You are Ana" in p["prompt"][0]["content"] for p in made)
    chosen = {p["chosen"][0]["content"] for p in made}
    assert chosen == {"hey\nwhat's up", "ok"}  # Ana's real (merged) turns
    assert all(not pairs.same(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in made)
    others = [p for p in made if p["rejected"][0]["content"] in ("yo", "pic") or p["rejected"][0]["content"].startswith("hi ")]
    assert len(others) == 20  # --others: one pair per training reply, against someone else's message of its session


def test_others_alone_write_nothing(runs):
    """--others --per-context 0: each real reply against someone else's real message, no generation."""
    made = list(pairs.from_run(runs["voice"], per_context=0, max_contexts=None, others=True, seed=0))
    assert len(made) == 20 and all(p["rejected"][0]["content"] in ("yo", "pic") or
                                   p["rejected"][0]["content"].startswith("hi ") for p in made)
    with pytest.raises(LikemeError, match="add --others"):
        list(pairs.from_run(runs["voice"], per_context=0, others=False))


def test_other_peoples_replies_never_come_from_a_held_out_session(runs, tmp_path):
    """--others: someone else's message of the same session as the rejected reply. On a store where every
    message but Ana's names its session ("hi 3", "yo 3", "pic 3"), no pair holds a word of the sessions the
    voice holds out (the latest 10% by time, at least one: 10 and 11 of 12), and each rejected message of
    someone else comes from its prompt's own session."""
    import re
    from datetime import datetime, timedelta

    from likeme.data import examples
    from likeme.data.ingest import Message
    from likeme.data.store import Store
    from likeme.runs import read_meta, voice_config

    msgs, t = [], datetime(2024, 1, 1, 9)
    for s in range(12):
        for who, text in [("Sam", f"hi {s}"), ("Ana", "hey"), ("Bo", f"yo {s}"), ("Ana", "ok"), ("Sam", f"pic {s}")]:
            msgs.append(Message("t", "group", who, t, text, "text"))
            t += timedelta(minutes=1)
        t += timedelta(hours=12)
    with Store(tmp_path / "tagged.db") as store:
        store.add_messages(msgs)
        cfg = voice_config(read_meta(runs["voice"]))
        _, held, _ = examples.reply_sessions(store, "Ana", heldout=cfg.get("heldout", 0.1),
                                             gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)))
    tag = re.compile(r"\b(?:hi|yo|pic) (\d+)\b")
    held_tags = {int(m) for _, _, turns in held for u in turns for m in tag.findall(u.text)}
    assert held_tags == {10, 11}
    made = list(pairs.from_run(runs["voice"], db=tmp_path / "tagged.db", max_contexts=None, others=True, seed=0,
                               sampling={"max_new_tokens": 3}))
    tags = [{int(m) for side in ("prompt", "chosen", "rejected") for msg in p[side] for m in tag.findall(msg["content"])}
            for p in made]
    assert set().union(*tags) == set(range(10)) and not set().union(*tags) & held_tags
    others = [(p, {int(m) for m in tag.findall(p["rejected"][0]["content"])}) for p in made
              if tag.fullmatch(p["rejected"][0]["content"])]
    assert len(others) == 20  # one for each of Ana's 2 replies in each of the 10 training sessions
    for p, (rejected_tag,) in others:
        assert {int(m) for msg in p["prompt"] for m in tag.findall(msg["content"])} == {rejected_tag}


def test_read_checks_the_format(tmp_path):
    path = tmp_path / "p.jsonl"
    good = pairs.pair([{"role": "user", "content": "hi"}], "hey", "Hello! How can I help you?")
    assert pairs.append(path, [good, good]) == 2
    assert pairs.read(path) == [good, good]
    with open(path, "a") as f:
        f.write('{"prompt": "hi", "chosen": "hey", "rejected": "hello"}\n')
    with pytest.raises(LikemeError, match="mixes conversational pairs"):
        pairs.read(path)
    path.write_text('{"prompt": "hi", "chosen": "hey", "rejected": "hello"}\n\n{"prompt": [], "chosen": "x"}\n')
    with pytest.raises(LikemeError, match=r"p\.jsonl: line 3: a pair is"):
        pairs.read(path)
    path.write_text('{"prompt": "hi", "chosen": "hey", "rejected": "hello"}\n')
    assert pairs.read(path) == [{"prompt": "hi", "chosen": "hey", "rejected": "hello"}]  # TRL's standard format


def test_pairs_and_compare_through_the_cli(runs, tmp_path):
    out = tmp_path / "ana.jsonl"
    p = likeme_cli("pairs", "--from", runs["voice"], "--as", "Ana", "--out", out, "--max-contexts", 3)
    assert p.returncode == 0 and p.stdout.strip() == f"{out}: {len(pairs.read(out))} pairs added"
    assert 1 <= len(pairs.read(out)) <= 3
    p = likeme_cli("pairs", "--from", runs["voice"], "--as", "Bo", "--out", out)
    assert p.returncode == 1 and "speaks as 'Ana', not 'Bo'" in p.stderr
    before = len(pairs.read(out))
    p = likeme_cli("compare", runs["voice"], "--out", out, "--seed", 1, "--max-new-tokens", 6, input="2\ns\n1\nq\n")
    assert p.returncode == 0, p.stderr
    added = pairs.read(out)[before:]
    assert len(added) == 2  # "2", skip, "1", quit
    (one, two), (three, four) = [(a["rejected"][0]["content"], a["chosen"][0]["content"]) for a in added[:1]] + \
        [(a["chosen"][0]["content"], a["rejected"][0]["content"]) for a in added[1:]]
    assert f"1) Ana: {one}\n2) Ana: {two}\n" in p.stdout and f"1) Ana: {three}\n2) Ana: {four}\n" in p.stdout
    assert p.stdout.index(f"2) Ana: {two}") < p.stdout.index(f"1) Ana: {three}")
    from likeme.training import marks  # each choice is also a good and a bad mark, in the voice's run folder

    assert marks.read(runs["voice"] / "marks.jsonl") == marks.unpaired(added)
    assert f"{runs['voice'] / 'marks.jsonl'}: 4 marks" in p.stderr


def test_best_of_n_returns_the_judges_favourite(runs):
    import likeme
    from likeme.use.judge import load_judge

    voice, judge = likeme.load(runs["voice"]), load_judge(runs["judge"], "Ana")
    best = voice.reply(["hi 3"], best_of=4, judge=judge, seed=5, max_new_tokens=8)
    texts, scores = zip(*best.candidates)
    assert len(texts) == 4 and best == texts[scores.index(max(scores))]
    assert list(scores) == pytest.approx(judge.score(list(texts)))
    with pytest.raises(LikemeError, match="best_of needs a judge"):
        voice.reply(["hi"], best_of=2)
    p = likeme_cli("chat", runs["voice"], "-m", "hi 3", "--best-of", 4, "--judge", runs["judge"], "--seed", 5,
                   "--max-new-tokens", 8, "--backend", "torch")  # the library's voice above is torch's
    assert p.returncode == 0 and p.stdout == best + "\n"
    p = likeme_cli("chat", runs["voice"], "-m", "hi", "--best-of", 2)
    assert p.returncode == 1 and "--best-of needs --judge" in p.stderr


def test_bradley_terry_loss_worked_example():
    import torch

    from likeme.training.losses import BradleyTerryLoss

    logits = torch.tensor([[2.0], [0.0], [0.0], [0.0]])  # chosen 2, 0; rejected 0, 0
    loss = BradleyTerryLoss()({"logits": logits}, torch.tensor([1, 1]))
    assert loss.item() == pytest.approx((-torch.log(torch.sigmoid(torch.tensor(2.0))) + torch.log(torch.tensor(2.0))).item() / 2)
    assert loss.item() == pytest.approx(0.4100, abs=1e-4)
    flipped = BradleyTerryLoss()({"logits": logits}, torch.tensor([0, 1]))  # the first pair the other way round
    assert flipped.item() == pytest.approx((2.1269 + 0.6931) / 2, abs=1e-4)


def test_reward_model_learns_the_comparisons(runs, tmp_path):
    """Pairs whose chosen reply is Ana's lower-case habit and rejected an assistant's answer: a few steps of
    the tiny model's reward head rank held-out pairs right, and the run judges and scores."""
    from tiny import LINES

    from likeme.check.evaluate import eval_judged
    from likeme.prompts import Turn, chat_messages
    from likeme.recipes.reward import RewardConfig, train_reward
    from likeme.training.pairs import split_by_prompt
    from likeme.use.reward import load_reward

    assistant = ["Certainly! Here is what I think.", "As an AI, I would suggest a plan.", "Thank you for asking!"]
    rows = []
    for i in range(40):
        prompt = chat_messages([Turn("Sam", f"question number {i}?")], "Ana", False)
        rows.append(pairs.pair(prompt, LINES["Ana"][i % 8], assistant[i % 3]))
    path = tmp_path / "p.jsonl"
    pairs.append(path, rows)
    train, val = split_by_prompt(rows, 0.2, 0)
    assert len(val) == 8 and not {json_prompt(rows[i]) for i in train} & {json_prompt(rows[i]) for i in val}
    run = train_reward(RewardConfig(pairs=str(path), base=str(runs["tiny_lm"]), trainable="all", lr=3e-4, val_fraction=0.2,
                                    head_lr=3e-3, batch_size=8, max_steps=12, eval_every=6, out=str(tmp_path / "rm")),
                       progress=False)
    m = json.loads((run / "metrics.json").read_text())
    assert m["val_accuracy"] == 1.0 and m["val_pairs"] == 8 and m["steps"] == 12
    rows_logged = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_logged if "eval_accuracy" in r] == [6, 12]
    rm = load_reward(run)
    assert rm.meta["as"] == "Ana"
    good, bad = rm.score(["always lol", "Certainly! Here is what I think."])
    assert good > bad
    p = likeme_cli("score", run, "always lol", "Certainly! Here is what I think.", "--json")
    assert [r["score"] for r in json.loads(p.stdout)] == pytest.approx([good, bad], abs=1e-3)
    r = eval_judged(runs["voice"], runs["later"], "Ana", run, samples=2, max_new_tokens=6)
    assert r["judge"] == "reward" and r["samples"] == 2


def json_prompt(row):
    return str(row["prompt"])


def reply_logp(run, row, which):
    """log p(row[which]'s reply | row's prompt) under a run, summed over the reply's tokens (TRL's tokenization:
    the prompt with the assistant header, then the rest of the templated conversation)."""
    import torch

    from likeme.models import load_causal_lm

    model, tok = _loaded.get(str(run)) or _loaded.setdefault(str(run), load_causal_lm(run))
    prompt = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True)
    full = tok.apply_chat_template(row["prompt"] + row[which], tokenize=True)
    prompt, full = (list(x["input_ids"] if isinstance(x, dict) or hasattr(x, "keys") else x) for x in (prompt, full))
    assert full[:len(prompt)] == prompt
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0, len(prompt) - 1:-1]
    return torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(full[len(prompt):])[:, None]).sum()


_loaded: dict = {}


def test_preference_tuning_makes_a_voice(runs, tmp_path):
    """DPO on pairs whose chosen reply is always "ok then" and rejected what the voice wrote: the tuned
    run is a voice (chat, eval, pairs work on it) and prefers the chosen replies of held-out prompts."""
    import torch

    import likeme
    from likeme.prompts import Turn, chat_messages
    from likeme.recipes.prefer import PreferConfig, train_prefer

    rows = [pairs.pair(chat_messages([Turn("Sam", f"hi {i}")], "Ana", False), "ok then", "yo yo yo yo")
            for i in range(20)]
    path = tmp_path / "p.jsonl"
    pairs.append(path, rows)
    run = train_prefer(PreferConfig(from_run=str(runs["voice"]), pairs=str(path), lr=5e-3, batch_size=4, grad_accum=1,
                                    max_steps=6, eval_every=3, val_fraction=0.2, out=str(tmp_path / "dpo")),
                       progress=False)
    m = json.loads((run / "metrics.json").read_text())
    assert m["val_pairs"] == 4 and m["steps"] == 6 and m["val_reward_accuracy"] == 1.0 and m["val_reward_margin"] > 0
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == list(range(1, 7))
    assert {"rewards_chosen", "rewards_rejected", "rewards_margins"} <= set(logged[0])
    # by hand: at the first step the new adapter is zero, so policy = reference, every implicit reward is 0
    # and the DPO loss is -log sigmoid(beta * 0) = log 2
    assert logged[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert logged[0]["rewards_chosen"] == logged[0]["rewards_rejected"] == 0
    assert [r["step"] for r in logged if "eval_rewards_accuracies" in r] == [3, 6]
    # by hand after training, on the literal held-out pairs: sum log p(reply | prompt) under the tuned voice and
    # the voice it started from, then -log sigmoid(beta * ((tuned - ref)_chosen - (tuned - ref)_rejected))
    last = [r for r in logged if "eval_loss" in r][-1]
    read = pairs.read(path)
    val = [read[i] for i in pairs.split_by_prompt(read, 0.2, 0)[1]]  # the recipe's split: --val-fraction 0.2, seed 0
    margins = torch.stack([reply_logp(run, r, "chosen") - reply_logp(runs["voice"], r, "chosen")
                           - reply_logp(run, r, "rejected") + reply_logp(runs["voice"], r, "rejected") for r in val])
    assert last["eval_loss"] == pytest.approx(-torch.nn.functional.logsigmoid(0.1 * margins).mean().item(), abs=2e-3)
    assert last["eval_rewards_margins"] == pytest.approx(0.1 * margins.mean().item(), abs=2e-3)
    voice = likeme.load(run)  # the adapter on the voice run, which is itself an adapter on the tiny model
    assert (voice.name, voice.partner) == ("Ana", "Sam")
    assert isinstance(voice.reply(["hi 3"], max_new_tokens=4, seed=0), str)
    p = likeme_cli("eval", run, "--data", runs["later"], "--as", "Ana", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["replies"] == 6


def test_pairs_ranked_by_a_judge(runs):
    from likeme.use.judge import load_judge

    judge = load_judge(runs["judge"], "Ana")
    made = list(pairs.from_run(runs["voice"], per_context=3, max_contexts=4, judge=judge, seed=0,
                               sampling={"max_new_tokens": 6}))
    assert made
    for p in made:  # both sides written by the voice; the judge prefers the chosen one
        c, r = p["chosen"][0]["content"], p["rejected"][0]["content"]
        assert judge.score([c])[0] > judge.score([r])[0] and not pairs.same(c, r)
    assert pairs.ranked_pair(["ok", "Sure thing!", "hm"], [0.2, 0.9, 0.1]) == ("Sure thing!", "hm")
    assert pairs.ranked_pair(["a", "b"], [0.5, 0.5]) is None and pairs.ranked_pair(["a"], [1.0]) is None
    with pytest.raises(LikemeError, match="at least two"):
        list(pairs.from_run(runs["voice"], per_context=1, judge=judge))
    p = likeme_cli("pairs", "--from", runs["voice"], "--judge", runs["judge"], "--per-context", 2, "--max-contexts", 2,
                   "--max-new-tokens", 4, "--out", runs["voice"].parent / "ranked.jsonl")
    assert p.returncode == 0 and "pairs added" in p.stdout
