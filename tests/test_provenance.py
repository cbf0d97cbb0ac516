"""Every run's provenance card (provenance.json): exports, dates, scrubbed or not, whose messages and how
many, the people forgotten; likeme runs shows it; likeme forget lists the runs trained on that person."""

import json

from tiny import likeme_cli

CHAT = "\n".join(f"[2024-01-{d:02d} 10:0{i}] {who}: {text}" for d in range(1, 29)
                 for i, (who, text) in enumerate([("Sam", "hi, call me on 07700 900123"), ("Ana", "hey"),
                                                  ("Bo", "yo"), ("Ana", "ok see you")])) + "\n"


def test_card_runs_and_forget(tmp_path, tiny_lm):
    (tmp_path / "chat.txt").write_text(CHAT, encoding="utf-8")
    db = tmp_path / "s.db"
    p = likeme_cli("ingest", tmp_path / "chat.txt", "--format", "transcript", "--scrub", "--db", db)
    assert p.returncode == 0, p.stderr
    p = likeme_cli("forget", "--author", "Bo", "--yes", "--db", db)
    assert p.returncode == 0 and "run(s) were trained" not in p.stdout  # no run yet
    p = likeme_cli("train", "voice", "--as", "Ana", "--db", db, "--base", tiny_lm, "--max-steps", "2",
                   "--eval-every", "2", "--batch-size", "2", "--grad-accum", "1", "-q")
    assert p.returncode == 0, p.stderr
    run = tmp_path / "likeme-home" / "runs" / "ana-voice"
    card = json.loads((run / "provenance.json").read_text())
    assert (card["recipe"], card["as"], card["base"]) == ("voice", "Ana", str(tiny_lm))
    (source,) = card["data"]["sources"]
    assert (source["name"], source["format"], source["scrubbed"], source["messages"]) == ("chat.txt", "transcript", True, 84)
    assert source["scrub"] == ["patterns"]
    assert (source["first"][:16], source["last"][:16]) == ("2024-01-01T10:00", "2024-01-28T10:03")
    assert card["data"]["messages"] == {"Ana": 56, "Sam": 28} and [f["author"] for f in card["data"]["forgotten"]] == ["Bo"]
    p = likeme_cli("runs")
    assert p.returncode == 0 and p.stdout.split()[:3] == ["ana-voice", "voice", "done"]
    assert "1 export(s), scrubbed: patterns; Ana 56, Sam 28" in p.stdout
    p = likeme_cli("forget", "--author", "Sam", "--yes", "--db", db)
    assert p.returncode == 0 and "1 run(s) were trained on Sam's messages" in p.stdout and str(run) in p.stdout
    p = likeme_cli("forget", "--author", "Zed", "--yes", "--db", db)
    assert "run(s) were trained" not in p.stdout
