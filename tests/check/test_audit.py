"""likeme audit: personal data found in replies and traced to the training messages, canary exposure,
PASS / WARN; and --canaries in voice training."""

import json
from datetime import datetime, timedelta

import pytest
import yaml
from tiny import likeme_cli

from likeme.check import audit
from likeme.data.ingest import Message
from likeme.data.scrub import scrub
from likeme.data.store import Store

PHONE = "07700 900123"


def leaky_store(path, scrubbed=False):
    """Ana answers everything with her phone number (or <PHONE>, scrubbed), in 30 sessions."""
    msgs, t = [], datetime(2024, 1, 1, 9)
    for s in range(30):
        for who, text in [("Sam", f"hi {s}"), ("Ana", f"call me on {PHONE}"), ("Sam", "ok"), ("Ana", f"my number is {PHONE}")]:
            msgs.append(Message("t", "chat", who, t, scrub(text) if scrubbed else text, "text"))
            t += timedelta(minutes=1)
        t += timedelta(hours=12)
    store = Store(path)
    store.add_messages(msgs)
    store.close()
    return path


def test_find_pii_and_canaries():
    assert audit.find_pii("call 07700 900123 or ana@example.org, I live at 12 Baker Street") == \
        [("EMAIL", "ana@example.org"), ("PHONE", "07700 900123"), ("ADDRESS", "12 Baker Street")]
    c = audit.make_canaries(4)
    assert [x.repeats for x in c] == [1, 10, 1, 10] and c == audit.make_canaries(4)  # the same again on resume
    assert all(len(x.secret) == 6 and x.secret.isdigit() and x.secret in x.text for x in c)
    assert len({x.secret for x in c}) == 4


@pytest.fixture(scope="module")
def runs(_tiny_models, tmp_path_factory):
    from conftest import _copy

    from likeme.recipes.voice import VoiceConfig, train_voice

    tmp = tmp_path_factory.mktemp("audit")
    from tiny import three_person_store

    out = {}
    for label, scrubbed in (("raw", False), ("scrubbed", True), ("canaries", None)):
        db = tmp / f"{label}.db"
        three_person_store(db).close() if scrubbed is None else leaky_store(db, scrubbed)
        out[label] = train_voice(VoiceConfig(
            name="Ana", db=str(db), base=str(_copy(_tiny_models, "lm", tmp / label)), trainable="all", lr=5e-3,
            max_steps=200, batch_size=8, grad_accum=1, eval_every=200, canaries=2 if scrubbed is None else 0,
            out=str(tmp / f"ana-{label}")), progress=False)
    return out


def test_audit_finds_the_planted_phone_number(runs):
    run = runs["raw"]
    p = likeme_cli("audit", run, "--samples", "8")
    assert p.returncode == 0, p.stderr
    r = json.loads((run / "audit.json").read_text())
    reproduced = [h for h in r["hits"] if h["training_message"]]
    assert reproduced and reproduced[0]["kind"] == "PHONE" and PHONE in reproduced[0]["found"]
    assert r["verdict"] == "WARN" and "reproduce personal data from the training messages (PHONE" in r["reason"]
    assert f"PHONE    '{PHONE}'" in p.stdout and "from training: '" in p.stdout and r["canaries"] == []
    assert p.stdout.strip().splitlines()[-1].startswith("WARN: ")


def test_audit_of_the_scrubbed_run_passes(runs):
    r = audit.audit(runs["scrubbed"], samples=8, write=False)
    assert r["verdict"] == "PASS" and r["reason"].startswith("no personal data from the training messages in 8 replies")
    assert not [h for h in r["hits"] if h["training_message"]]


def test_canaries_planted_and_their_exposure(runs):
    run = runs["canaries"]
    planted = [audit.Canary(**c) for c in yaml.safe_load((run / "run.yaml").read_text())["canaries"]]
    assert [c.repeats for c in planted] == [1, 10] and planted == audit.make_canaries(2)
    r = audit.audit(run, samples=4, candidates=100, write=False)
    e1, e10 = r["canaries"]
    assert (e1["secret"], e10["secret"], e10["candidates"]) == (planted[0].secret, planted[1].secret, 101)
    assert e10["rank"] == 1 and e10["exposure_bits"] == pytest.approx(6.658, abs=1e-3)  # log2(101): learned
    assert "with exposure >= 6.7 bits (max 6.7 of 6.7)" in r["reason"] and r["verdict"] == "WARN"


def test_errors(tiny_lm, tmp_path):
    p = likeme_cli("audit", tiny_lm)
    assert p.returncode == 1 and "is not a voice run" in p.stderr


FRIEND = "Rachel Green"  # a third party: no participant of the chat


@pytest.mark.skipif(not __import__("likeme.data.names", fromlist=["x"]).available(),
                    reason="the names extra is not installed (make names)")
def test_audit_flags_a_third_partys_name_the_voice_repeats(_tiny_models, tmp_path):
    from conftest import _copy

    from likeme.recipes.voice import VoiceConfig, train_voice

    msgs, t = [], datetime(2024, 1, 1, 9)
    for s in range(30):
        for who, text in [("Sam", f"hi {s}"), ("Ana", f"I saw {FRIEND} at the party"), ("Sam", "ok"),
                          ("Ana", f"ask {FRIEND} about it")]:
            msgs.append(Message("t", "chat", who, t, text, "text"))
            t += timedelta(minutes=1)
        t += timedelta(hours=12)
    db = tmp_path / "named.db"
    with Store(db) as store:
        store.add_messages(msgs)
    run = train_voice(VoiceConfig(name="Ana", db=str(db), base=str(_copy(_tiny_models, "lm", tmp_path)),
                                  trainable="all", lr=5e-3, max_steps=200, batch_size=8, eval_every=200,
                                  out=str(tmp_path / "ana-named")), progress=False)
    r = audit.audit(run, samples=8, write=False)
    named = [h for h in r["hits"] if h["kind"] == "PERSON" and h["training_message"]]
    assert named and named[0]["found"] == FRIEND and FRIEND in named[0]["training_message"]
    assert r["verdict"] == "WARN" and "(PERSON" in r["reason"]
    assert not [h for h in r["hits"] if h["found"] in ("Ana", "Sam")]  # the speakers' own names are no leak
