"""The CLI through its real entry point, as a user runs it."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "WhatsApp Chat with Sam.txt"
LIKEME = str(Path(sys.executable).parent / "likeme")


def run(*args, db=None, check=True, input=None):
    cmd = [LIKEME, *args] + (["--db", str(db)] if db else [])
    p = subprocess.run(cmd, capture_output=True, text=True, input=input, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if check:
        assert p.returncode == 0, p.stderr
    return p


@pytest.fixture
def db(tmp_path):
    return tmp_path / "store.db"


def test_help_lists_the_commands_and_loads_no_heavy_library():
    """`likeme --help` stays instant because the CLI imports no ML library to build itself (its start-up
    time is measured by bench/startup.py, not here)."""
    out = run("--help").stdout
    for cmd in ("ingest", "people", "messages", "forget", "formats", "train", "chat", "classify", "search", "eval"):
        assert cmd in out
    code = ("import sys, likeme.cli.main; likeme.cli.main.cli(['train', 'voice', '--help'], standalone_mode=False); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sentence_transformers', 'sklearn', "
            "'numpy', 'yaml') if m in sys.modules))")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert printed.strip().splitlines()[-1] == "[]"


def test_ingest_people_messages(db):
    out = run("ingest", str(SAMPLE), db=db).stdout
    assert "24 new messages (0 already stored) from whatsapp, 1 conversation" in out
    people = json.loads(run("people", "--json", db=db).stdout)
    assert [(p["author"], p["messages"], p["conversations"]) for p in people] == [("Ana", 12, 1), ("Sam", 11, 1)]
    assert people[0]["first"] == "2024-02-03T09:12:00" and people[0]["last"] == "2024-02-15T21:30:00"
    table = run("people", db=db).stdout
    assert "Ana" in table and "2024-02-03" in table
    lines = run("messages", "--author", "Sam", "--limit", "2", "--json", db=db).stdout.splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 2 and first["author"] == "Sam" and first["text"] == "no way, the one with the blue door?"
    assert first["conversation"] == "Sam" and first["session"] == 0
    again = run("ingest", str(SAMPLE), db=db).stdout
    assert "already ingested" in again


def test_overlapping_export_adds_only_new(db, tmp_path):
    lines = SAMPLE.read_text("utf-8").splitlines(keepends=True)
    early = tmp_path / "WhatsApp Chat with Sam (1).txt"
    early.write_text("".join(lines[:12]), "utf-8")
    assert "11 new messages" in run("ingest", str(early), db=db).stdout
    assert "13 new messages (11 already stored)" in run("ingest", str(SAMPLE), db=db).stdout


def test_forget(db):
    run("ingest", str(SAMPLE), db=db)
    assert "Deleted 11 messages by Sam" in run("forget", "--author", "Sam", "--yes", db=db).stdout
    assert [p["author"] for p in json.loads(run("people", "--json", db=db).stdout)] == ["Ana"]


def test_scrub_flag(db, tmp_path):
    chat = tmp_path / "WhatsApp Chat with Bo.txt"
    chat.write_text("01/02/2024, 10:00 - Bo: mail me at bo@example.org\n01/02/2024, 10:01 - Al: ok\n", "utf-8")
    run("ingest", "--scrub", str(chat), db=db)
    texts = [json.loads(l)["text"] for l in run("messages", "--json", db=db).stdout.splitlines()]
    assert texts == ["mail me at <EMAIL>", "ok"]


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01\x02 not a chat at all \xff\xfe" * 20, "not a chat export likeme knows (tried: "),
    (b'{"messages": [1, 2', None),
])
def test_bad_input_is_one_line_no_traceback(db, tmp_path, content, message):
    bad = tmp_path / "export.json"
    bad.write_bytes(content)
    p = run("ingest", str(bad), db=db, check=False)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and "export.json" in err[0]
    if message:
        assert message in err[0]


def test_unknown_format_option(db):
    p = run("ingest", "--format", "snapchat", str(SAMPLE), db=db, check=False)
    assert p.returncode == 1 and "unknown format 'snapchat'" in p.stderr and "Traceback" not in p.stderr


def test_failed_file_does_not_stop_the_others_and_leaves_store(db, tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    p = run("ingest", str(bad), str(SAMPLE), db=db, check=False)
    assert p.returncode == 1 and "broken.zip" in p.stderr
    assert "24 new messages" in p.stdout


def test_formats_lists_every_builtin():
    out = run("formats").stdout
    for name in ("whatsapp", "telegram", "telegram-html", "discord", "discord-csv", "messenger", "slack",
                 "imessage", "signal", "hangouts", "transcript", "table"):
        assert name in out


def test_corrupt_store(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"garbage" * 200)
    p = run("people", db=db, check=False)
    assert p.returncode == 1 and "not a likeme database or corrupt" in p.stderr and "Traceback" not in p.stderr
