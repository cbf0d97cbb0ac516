"""Judged likeness: judges of three kinds behind one interface, and `likeme eval --judge` on tiny models."""
import json
from datetime import datetime

import pytest
from tiny import LINES, likeme_cli, whatsapp_chat

from likeme.check.style import distinct
from likeme.errors import LikemeError


@pytest.fixture
def runs(tmp_path, tiny_lm, tiny_st):
    """A store of Ana, Sam and Bo (each with a habit), a voice of Ana, and two judges of Ana trained on it."""
    from likeme.data.store import Store
    from likeme.recipes.classify import ClassifyConfig, train_classifier
    from likeme.recipes.embed import EmbedConfig, train_embedder
    from likeme.recipes.voice import VoiceConfig, train_voice

    db = tmp_path / "s.db"
    with Store(db) as store:
        store.ingest_path(whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club.txt", 30, datetime(2024, 1, 1, 18)))
    voice = train_voice(VoiceConfig(name="Ana", db=str(db), base=str(tiny_lm), max_steps=2, batch_size=4, grad_accum=1, eval_every=2,
                                    out=str(tmp_path / "voice")), progress=False)
    emb = train_embedder(EmbedConfig(name="Ana", db=str(db), base=str(tiny_st), max_steps=20, batch_size=16, lr=1e-3,
                                     eval_every=20, out=str(tmp_path / "emb")), progress=False)
    clf = train_classifier(ClassifyConfig(label_by="author", db=str(db), base=str(tiny_lm), max_steps=4, lr=1e-2,
                                          out=str(tmp_path / "clf")), progress=False)
    later = whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club (later).txt", 4, datetime(2024, 6, 1, 18), seed=1)
    return {"voice": voice, "embedder": emb, "classifier": clf, "later": later}


def test_turns_in_context_worked_example():
    from likeme.data.examples import turns_in_context
    from likeme.prompts import Turn

    hi, hey, yo, ok = Turn("Sam", "hi"), Turn("Ana", "hey"), Turn("Bo", "yo"), Turn("Ana", "ok")
    texts, labels, contexts = turns_in_context([(None, False, [hi, hey, yo, ok]), (None, False, [yo])], "Ana", 2)
    assert texts == ["hi", "hey", "yo", "ok", "yo"] and labels == [0, 1, 0, 1, 0]
    assert contexts == [[], [hi], [hi, hey], [hey, yo], []]  # at most 2 turns before, none for a first turn


def test_judges_of_each_kind(runs):
    from likeme.use.classifier import load_classifier
    from likeme.use.embedder import load_scorer
    from likeme.use.judge import load_judge

    texts = LINES["Ana"][:3] + LINES["Bo"][:3]
    judge = load_judge(runs["embedder"], "Ana")
    assert judge.kind == "embedder" and judge.score(texts) == load_scorer(runs["embedder"]).score(texts)
    assert judge.strength(texts, [1, 1, 1, 0, 0, 0]) > 0.75  # the tiny embedder learned some of Ana's lower case
    judge = load_judge(runs["classifier"], "Sam")
    clf = load_classifier(runs["classifier"])
    assert judge.kind == "classifier"
    assert judge.score(texts) == pytest.approx(clf.probabilities(texts)[:, clf.labels.index("Sam")].tolist())
    with pytest.raises(LikemeError, match="learned 'Ana'.s style, not 'Sam'"):
        load_judge(runs["embedder"], "Sam")
    with pytest.raises(LikemeError, match="has no label 'Zoe'"):
        load_judge(runs["classifier"], "Zoe")
    assert load_judge(runs["voice"], "Ana").kind == "likelihood"  # a voice judges by likelihood ratio
    with pytest.raises(LikemeError, match="did not learn 'Zoe'"):
        load_judge(runs["voice"], "Zoe")


def test_eval_with_a_judge(runs):
    from likeme.check.evaluate import eval_judged
    from likeme.use.embedder import auc
    from likeme.use.judge import load_judge

    r = eval_judged(runs["voice"], runs["later"], "Ana", runs["embedder"], samples=4, max_new_tokens=8)
    assert r["samples"] == 4 and r["judge"] == "embedder" and len(r["examples"]) == 4
    judge = load_judge(runs["embedder"], "Ana")
    written, real = [e["written"] for e in r["examples"]], [e["real"] for e in r["examples"]]
    assert r["judge_score"] == pytest.approx(sum(judge.score(written)) / 4, abs=1e-4)
    assert r["judge_score_real"] == pytest.approx(sum(judge.score(real)) / 4, abs=1e-4)
    assert r["judge_auc"] == pytest.approx(auc([1] * 4 + [0] * 4, judge.score(real) + judge.score(written)), abs=1e-4)
    assert all(x in LINES["Ana"] for x in real)  # the real replies are Ana's
    assert r["distinct_1_real"] == pytest.approx(distinct([t.split() for t in real], 1), abs=1e-4)
    assert {"judge_score_base", "judge_auc_base", "distinct_2_base", "clean_end", "clean_end_base"} <= set(r)
    assert r["judge_strength_auc"] > 0.75
    assert eval_judged(runs["voice"], runs["later"], "Ana", runs["embedder"], samples=4, max_new_tokens=8) == r  # seeded

    p = likeme_cli("eval", runs["voice"], "--data", runs["later"], "--as", "Ana", "--judge", runs["classifier"],
                   "--samples", 3, "--max-replies", 5, "--json")
    assert p.returncode == 0, p.stderr
    figures = json.loads(p.stdout)
    assert figures["replies"] == 5 and figures["replies_in_export"] == 12 and figures["samples"] == 3
    assert figures["judge"] == "classifier"
    assert {"likelihood_auc", "judge_auc", "specificity"} <= set(figures)  # the voice's own judge beside the other
    p = likeme_cli("eval", runs["voice"], "--data", runs["later"], "--as", "Ana", "--judge", runs["embedder"],
                   "--samples", 2)
    assert p.returncode == 0 and "2 replies written and judged (embedder" in p.stdout and "distinct-2" in p.stdout
