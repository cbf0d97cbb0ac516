"""Scrubbing people's names, places and a blocklist: on literal lines, through the store, the CLI and a
voice's training examples. The names tests need the `names` extra (make names) and skip without it."""
import json
from datetime import datetime, timedelta

import pytest
from tiny import likeme_cli, tiny_tokenizer

from likeme.data import names
from likeme.data.examples import persona_dataset
from likeme.data.ingest import Message
from likeme.data.scrub import Scrubber, blocklist_pattern, read_blocklist
from likeme.data.store import Store
from likeme.errors import LikemeError

needs_names = pytest.mark.skipif(not names.available(), reason="the names extra is not installed (make names)")


def chat(turns, start=datetime(2024, 3, 1, 18, 0)):
    """Messages of one chat, a minute apart; a new session every 4 turns (a day later)."""
    out, t = [], start
    for i, (who, text) in enumerate(turns):
        out.append(Message("whatsapp", "Ana & Sam", who, t, text, "text"))
        t += timedelta(days=1) if i % 4 == 3 else timedelta(minutes=1)
    return out


def texts(store):
    return [m.text for m in store.messages()]


# -- the blocklist: no extra needed ----------------------------------------------------------------
def test_blocklist_whole_words_any_case_phrases_first():
    p = blocklist_pattern(["acme", "Acme Corp", "St. Mary's"])
    assert p.sub("<BLOCKED>", "ACME  corp hired me; acmeville no; at st. mary's?") == \
        "<BLOCKED> hired me; acmeville no; at <BLOCKED>?"


def test_blocklist_file(tmp_path):
    f = tmp_path / "block.txt"
    f.write_text("\ufeffAcme Corp\n\n# my school\nHillside Primary\n", "utf-8")
    assert read_blocklist(f) == ["Acme Corp", "Hillside Primary"]
    with pytest.raises(LikemeError, match="no such blocklist file"):
        read_blocklist(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n", "utf-8")
    with pytest.raises(LikemeError, match="the blocklist is empty"):
        read_blocklist(tmp_path / "empty.txt")


def test_a_blocklisted_word_is_gone_from_the_store_and_the_voice_examples(tmp_path):
    turns = [("Sam", "where do you work now?"), ("Ana", "at Hillside Primary, the kids are great"),
             ("Sam", "nice"), ("Ana", "hillside primary pays badly though")] * 6
    with Store(tmp_path / "s.db") as store:
        res = store.add_messages(chat(turns), scrub=None, blocklist=["Hillside Primary"])
        assert res.scrub == "blocklist" and res.added == 24
        stored = texts(store)
        assert "at <BLOCKED>, the kids are great" in stored and "<BLOCKED> pays badly though" in stored
        assert not any("hillside" in t.lower() for t in stored)
        tok = tiny_tokenizer()
        data = persona_dataset(store, "Ana", tok, heldout=0.2, min_replies=1, cache=False)
        decoded = [tok.decode(e["input_ids"]) for e in data.train + data.heldout]
        assert decoded and all("<BLOCKED>" in d for d in decoded)
        assert not any("hillside" in d.lower() for d in decoded)
        assert [(p.author, p.scrubbed) for p in store.people()] == [("Ana", "blocklist"), ("Sam", "blocklist")]


def test_cli_blocklist_errors_are_one_line(tmp_path):
    export = tmp_path / "WhatsApp Chat with Sam.txt"
    export.write_text("01/02/2024, 10:00 - Sam: hi\n", "utf-8")
    p = likeme_cli("ingest", export, "--blocklist", tmp_path / "nope.txt", "--db", tmp_path / "s.db")
    assert p.returncode == 1 and p.stderr.strip() == f"Error: {tmp_path / 'nope.txt'}: no such blocklist file"


def test_scrub_names_without_the_extra_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(names, "MODEL", "en_core_web_sm_not_installed")  # a pipeline that is not installed
    export = tmp_path / "WhatsApp Chat with Sam.txt"
    export.write_text("01/02/2024, 10:00 - Sam: hi\n", "utf-8")
    p = likeme_cli("ingest", export, "--scrub", "names", "--db", tmp_path / "s.db")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert 'needs Presidio and the spaCy English pipeline: pip install -e ".[names]" (or make names)' in p.stderr


# -- names and places --------------------------------------------------------------------------------
@needs_names
def test_names_on_literal_lines():
    s = Scrubber({"names"})
    out = s.texts(["Did you see Rachel Green at the party?", "Sam, ask Rachel Green first",
                   "I live at 42 Baker Street now", "Ana Souza is here", "Tom called, Rachel Green too"],
                  participants=["Ana Souza", "Sam"])
    assert out == ["Did you see <PERSON_1> at the party?", "Sam, ask <PERSON_1> first", "I live at <PLACE> now",
                   "Ana Souza is here", "<PERSON_2> called, <PERSON_1> too"]


@needs_names
def test_names_through_the_store_and_again_with_more(tmp_path):
    export = tmp_path / "WhatsApp Chat with Sam.txt"
    export.write_text("01/02/2024, 10:00 - Sam Lee: Rachel Green says hi, mail her at rg@example.org\n"
                      "01/02/2024, 10:01 - Ana Souza: Thanks Sam! I moved to 12 Hill Road, Rachel Green knows\n"
                      "01/02/2024, 10:02 - Sam Lee: Will do. Ana, Rachel Green asked about Paris\n", "utf-8")
    with Store(tmp_path / "s.db") as store:
        first = store.ingest_path(export, scrub="patterns")
        before = store.fingerprint()
        assert first.scrub == "patterns" and "Rachel Green says hi, mail her at <EMAIL>" in texts(store)
        again = store.ingest_path(export, scrub="names")
        assert (again.already_ingested, again.rescrubbed, again.scrub) == (True, 3, "patterns,names")
        assert texts(store) == ["<PERSON_1> says hi, mail her at <EMAIL>",
                                "Thanks Sam! I moved to <PLACE>, <PERSON_1> knows",
                                "Will do. Ana, <PERSON_1> asked about <PLACE>"]
        assert store.count() == 3 and store.fingerprint() != before  # cached examples are built again
        assert store.ingest_path(export, scrub="all").rescrubbed == 0  # nothing more to do
        assert [(p.author, p.scrubbed) for p in store.people()] == [("Sam Lee", "patterns,names"),
                                                                    ("Ana Souza", "patterns,names")]
        card = store.provenance_card()
        assert card["sources"][0]["scrub"] == ["patterns", "names"] and card["sources"][0]["scrubbed"] is True


@needs_names
def test_cli_scrub_all_and_people(tmp_path):
    export = tmp_path / "WhatsApp Chat with Bo.txt"
    export.write_text("01/02/2024, 10:00 - Bo: I saw Rachel Green in Paris, call +44 7700 900123\n"
                      "01/02/2024, 10:01 - Al: ok\n", "utf-8")
    db = tmp_path / "s.db"
    p = likeme_cli("ingest", "--scrub", "all", export, "--db", db)
    assert p.returncode == 0 and "2 new messages" in p.stdout and "scrubbed: patterns, names" in p.stdout
    stored = [json.loads(line)["text"] for line in likeme_cli("messages", "--json", "--db", db).stdout.splitlines()]
    assert stored == ["I saw <PERSON_1> in <PLACE>, call <PHONE>", "ok"]
    people = likeme_cli("people", "--db", db).stdout.splitlines()
    assert people[0].split()[-1] == "scrubbed" and people[1].split()[-1] == "patterns+names"
