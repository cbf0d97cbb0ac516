"""Write like me through the real `likeme` entry point: ingest -> train voice -> chat -> eval."""
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import yaml
from tiny import likeme_cli, whatsapp_export

LIKEME = str(Path(sys.executable).parent / "likeme")


def run(*args):
    """`likeme ARGS` in a subprocess, as a user runs it."""
    p = subprocess.run([LIKEME, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def cli(*args):
    """`likeme ARGS` through the same entry point, in this process (no ~10 s of imports per call)."""
    p = likeme_cli(*args)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def whatsapp_group(path: Path, sessions: int, start: datetime) -> Path:
    return whatsapp_export(path, sessions, start, lambda s: [
        ("Sam", f"plans for day {s}?"), ("Ana", "pizza obviously"), ("Bo", "again?"), ("Ana", "always"),
        ("Sam", "fine by me")], minutes=3)


def test_ingest_train_chat_eval(tmp_path, tiny_lm):
    db, out = tmp_path / "s.db", tmp_path / "run"
    base = tiny_lm
    chat = whatsapp_group(tmp_path / "WhatsApp Chat with Pizza Club.txt", 15, datetime(2024, 1, 1, 18))
    later = whatsapp_group(tmp_path / "WhatsApp Chat with Pizza Club (later).txt", 4, datetime(2024, 6, 1, 18))
    cli("ingest", chat, "--db", db)
    config = tmp_path / "voice.yaml"
    config.write_text("batch_size: 4\neval_every: 2\nmax_steps: 2\n")
    printed = run("train", "voice", "--as", "Ana", "--db", db, "--base", base, "--config", config,
                  "--max-steps", 3, "--out", out, "-q")
    assert "held-out perplexity of Ana's replies" in printed and "after 3 steps" in printed
    meta = yaml.safe_load((out / "run.yaml").read_text())
    assert meta["config"]["max_steps"] == 3 and meta["config"]["batch_size"] == 4  # flag beats file
    assert meta["partner"] == "Sam"
    for f in ("model/adapter_model.safetensors", "model/tokenizer.json", "metrics.jsonl", "metrics.json",
              "plots/loss.png"):
        assert (out / f).is_file(), f
    reply = cli("chat", out, "--message", "plans?", "--seed", 1, "--max-new-tokens", 8)
    assert "<|im" not in reply
    result = json.loads(cli("eval", out, "--data", later, "--as", "Ana", "--json"))
    assert result["replies"] == 8 and result["ppl"] != result["base_ppl"]  # 4 sessions x 2 replies of Ana
    assert "replies by Ana: perplexity" in cli("eval", out, "--data", later, "--as", "Ana")
    # person guidance: against the two people Ana's chats hear most from; written and scored the same way
    guided = json.loads(cli("eval", out, "--data", later, "--as", "Ana", "--guidance", 1, "--json"))
    assert guided["guidance"] == 1 and guided["against"] == ["Sam", "Bo"]
    assert guided["by_person"]["Ana"]["ppl"] != result["by_person"]["Ana"]["ppl"]
    assert guided["by_person"]["Ana"]["base_ppl"] == result["by_person"]["Ana"]["base_ppl"]
    assert "with guidance 1 against Sam, Bo" in cli("eval", out, "--data", later, "--as", "Ana", "--guidance", 1)
    assert "<|im" not in cli("chat", out, "-m", "plans?", "--seed", 1, "--max-new-tokens", 8, "--guidance", 1.5)
    p = likeme_cli("chat", out, "-m", "plans?", "--guidance", 11)
    assert p.returncode == 2 and "--guidance" in p.stderr  # click's range check: 0 to 10


def test_train_errors_are_one_line(tmp_path, tiny_lm):
    p = subprocess.run([LIKEME, "train", "voice", "--as", "Nobody", "--db", str(tmp_path / "empty.db"),
                        "--base", str(tiny_lm)], capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("Error: no messages by 'Nobody' in the store")
    p = likeme_cli("train", "voice", "--as", "Ana", "--base", str(tiny_lm), "--format", "transcript", "--guidance", 1)
    assert p.returncode == 1 and "--guidance" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([LIKEME, "train", "voice", "--as", "Ana", "--base", "no-such-model"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "unknown model 'no-such-model'" in p.stderr and "Traceback" not in p.stderr


def test_blend_through_the_cli_speaks_as_two_people(tmp_path, tiny_lm):
    """`likeme train voice --blend`: one command trains both parts and prints the blend beside them."""
    db, out = tmp_path / "s.db", tmp_path / "run"
    cli("ingest", whatsapp_group(tmp_path / "WhatsApp Chat with Pizza Club.txt", 15, datetime(2024, 1, 1, 18)), "--db", db)
    printed = cli("train", "voice", "--as", "Ana", "--db", db, "--base", tiny_lm, "--learn-from", "everyone",
                  "--contrast", 1, "--contrast-slots", 2, "--min-turns", 5, "--blend", 0.35, "--max-steps", 4,
                  "--batch-size", 4, "--grad-accum", 1, "--out", out, "-q")
    assert "after 4 steps (blended 0.65 / 0.35: the contrast voice" in printed and "the register voice" in printed and "specificity" in printed
    replies = {name: cli("chat", out, "--as", name, "-m", "plans?", "--seed", 1, "--max-new-tokens", 6, "--backend", "torch")
               for name in ("Ana", "Sam")}
    assert all(r.strip() for r in replies.values())
    bad = likeme_cli("train", "voice", "--as", "Ana", "--db", db, "--base", tiny_lm, "--blend", 0.35, "--contrast", 0,
                     "--out", tmp_path / "bad")
    assert bad.returncode == 1 and "--blend" in bad.stderr and not (tmp_path / "bad").exists()
