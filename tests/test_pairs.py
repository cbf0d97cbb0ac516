"""Preference pairs from NAME's own replies (`likeme pairs`, `likeme compare`) and best-of-n with a judge."""
import json

import pytest

from likeme import pairs
from likeme.errors import LikemeError
from tiny import likeme_cli


@pytest.fixture(scope="module")
def runs(_tiny_models, tmp_path_factory):
    """Ana's voice and an embedder judge of Ana, trained on a store whose sessions say which they are
    (Sam opens session s with "hi s"; sessions 10 and 11, the latest, are held out)."""
    from conftest import _copy
    from likeme.recipes.embed import EmbedConfig, train_embedder
    from likeme.recipes.voice import VoiceConfig, train_voice
    from test_datasets import three_person_store

    tmp = tmp_path_factory.mktemp("pairs")
    three_person_store(tmp / "s.db").close()
    voice = train_voice(VoiceConfig(name="Ana", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "lm", tmp)),
                                    max_steps=2, batch_size=4, eval_every=2, out=str(tmp / "voice")), progress=False)
    judge = train_embedder(EmbedConfig(name="Ana", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "st", tmp)),
                                       max_steps=10, batch_size=8, lr=1e-3, eval_every=10, out=str(tmp / "judge")),
                           progress=False)
    return {"voice": voice, "judge": judge, "db": tmp / "s.db"}


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


def test_best_of_n_returns_the_judges_favourite(runs):
    import likeme
    from likeme.judge import load_judge

    voice, judge = likeme.load(runs["voice"]), load_judge(runs["judge"], "Ana")
    best = voice.reply(["hi 3"], best_of=4, judge=judge, seed=5, max_new_tokens=8)
    texts, scores = zip(*best.candidates)
    assert len(texts) == 4 and best == texts[scores.index(max(scores))]
    assert list(scores) == pytest.approx(judge.score(list(texts)))
    with pytest.raises(LikemeError, match="best_of needs a judge"):
        voice.reply(["hi"], best_of=2)
    p = likeme_cli("chat", runs["voice"], "-m", "hi 3", "--best-of", 4, "--judge", runs["judge"], "--seed", 5,
                   "--max-new-tokens", 8)
    assert p.returncode == 0 and p.stdout == best + "\n"
    p = likeme_cli("chat", runs["voice"], "-m", "hi", "--best-of", 2)
    assert p.returncode == 1 and "--best-of needs --judge" in p.stderr
