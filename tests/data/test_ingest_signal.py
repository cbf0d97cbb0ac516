"""signal-export (carderne/signal-export) text and chat.md files."""
import json
from datetime import datetime
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likeme.data.ingest import detect, parse, signal
from likeme.errors import IngestError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "signal"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL = SHARED / "chat_exports" / "signal" / "chat-miner" / "test" / "signal"
CHAT_MD = FIXTURES / "Ana Lopes" / "chat.md"
HOLIDAY = FIXTURES / "holiday.txt"


def rows(path, **kw):
    return [(m.author, m.sent_at, m.kind, m.text) for m in parse(path, **kw)]


def test_chat_md_every_quirk():
    msgs = list(parse(CHAT_MD, format="signal"))
    assert {m.platform for m in msgs} == {"signal"}
    assert {m.conversation for m in msgs} == {"Ana Lopes"}  # the folder, not "chat"
    assert rows(CHAT_MD) == [
        ("Ana Lopes", datetime(2021, 8, 3, 13, 40, 58), "text", "Are we still on for Saturday?"),
        # multi-line; the trailing two spaces (markdown line breaks) are gone
        ("Me", datetime(2021, 8, 3, 13, 42, 10), "text", "Yes! I'll bring the tent\nand the little stove"),
        # an image with a caption that itself contains ": "
        ("Me", datetime(2021, 8, 3, 13, 42, 31), "media", "Here's the campsite: right by the lake"),
        ("Ana Lopes", datetime(2021, 8, 3, 13, 43, 5), "media", ""),
        # the quoted message of a reply and the reactions line are not this message's words
        ("Ana Lopes", datetime(2021, 8, 3, 13, 45, 12), "text", "Looks perfect"),
        ("Me", datetime(2021, 8, 3, 13, 47), "media", ""),  # a file link without "!"
        ("Ana Lopes", datetime(2021, 8, 3, 13, 50, 41), "media", ""),  # sticker link
        ("Me", datetime(2021, 8, 3, 14, 2, 19), "system", "Missed voice call"),
        # "(This message was deleted)": a turn without text, like a photo; the author is kept
        ("Ana Lopes", datetime(2021, 8, 3, 14, 5), "media", ""),
        # a link the person typed stays text; two reactions dropped
        ("Ana Lopes", datetime(2021, 8, 3, 14, 6, 33), "text",
         "Sorry, wrong chat. Read this: [trail guide](https://example.org/trail)"),
        ("Me", datetime(2021, 8, 4, 9, 15), "media", ""),  # "(( emoji ))" sticker
    ]
    assert all(m.sent_at.tzinfo is None and m.source_id is None for m in msgs)


def test_me_renames_the_owner():
    authors = {m.author for m in parse(CHAT_MD, me="Sam")}
    assert authors == {"Ana Lopes", "Sam"}


def test_old_text_shape_crlf_no_final_newline():
    assert rows(HOLIDAY) == [
        ("Tomás Ruiz", datetime(2022, 3, 1, 8, 5), "text", "Morning! Train at 9:30?"),
        ("Me", datetime(2022, 3, 1, 8, 7), "text", "Yes\nsee you at platform 4"),
        ("Tomás Ruiz", datetime(2022, 3, 1, 8, 9), "text", "Perfect: I will grab coffee"),
        ("Tomás Ruiz", datetime(2022, 3, 2, 19, 30), "text", "Back home, thanks for the trip"),
    ]
    assert {m.conversation for m in parse(HOLIDAY)} == {"holiday"}


def test_detection():
    assert detect(CHAT_MD) == "signal"
    assert detect(HOLIDAY) == "signal"
    assert not signal.sniff(FIXTURES)  # a folder is walked by the core, not claimed
    # the folder walk finds chat.md and names the chat after its folder
    assert {m.conversation for m in parse(FIXTURES)} == {"Ana Lopes", "holiday"}


@pytest.mark.parametrize("line", [
    "[2019-12-24, 12:23:45] Ana: hi",     # WhatsApp iOS with ISO dates: comma AND seconds
    "[12/24/19, 12:23:45] Ana: hi",       # WhatsApp iOS
    "24/12/2019, 12:23 - Ana: hi",        # WhatsApp Android
    "[2019-12-24 12:23] Ana: hi",         # no comma, no seconds: left to the transcript format
    "Ana: hi",
])
def test_not_claimed(tmp_path, line):
    p = tmp_path / "chat.txt"
    p.write_text(line + "\n" + line + "\n", encoding="utf-8")
    assert not signal.sniff(p)


def test_text_before_first_header_is_an_error(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\n[2021-08-03 13:40:58] Ana: hi\n", encoding="utf-8")
    with pytest.raises(IngestError, match="line 1"):
        list(parse(p, format="signal"))


def test_invalid_date_is_an_error(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("[2021-02-30 13:40:58] Ana: hi\n", encoding="utf-8")
    with pytest.raises(IngestError, match="line 1: not a valid date"):
        list(parse(p, format="signal"))


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_real_chat_miner_export_matches_target():
    msgs = list(parse(REAL / "test_export.txt"))  # detected, no format given
    assert detect(REAL / "test_export.txt") == "signal"
    target = json.loads((REAL / "target.json").read_text("utf-8"))
    # chat-miner lists newest first and joins lines with a space; we keep the line break
    want = sorted((datetime.fromisoformat(t["timestamp"]), t["author"], t["message"]) for t in target)
    got = [(m.sent_at, m.author, " ".join(m.text.split())) for m in msgs]
    assert got == want
    assert msgs[1].text == "Hello\nJane!"
    assert {m.conversation for m in msgs} == {"test_export"}


VALID = CHAT_MD.read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=400), splices(VALID, max_cut=40, junk=st.binary(max_size=30))))
def test_random_bytes_parse_or_ingest_error(data):
    msgs = assert_parses_or_ingest_error(data, "chat.md", "signal")
    if msgs is not None:
        assert [m.sent_at for m in msgs] == sorted(m.sent_at for m in msgs)
