"""Hand-written transcripts: "Name: message" lines, blank line = new conversation."""
from datetime import datetime
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likeme.data.ingest import detect, parse, transcript
from likeme.errors import IngestError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "transcript"
DINNER = FIXTURES / "dinner.txt"
STANDUP = FIXTURES / "standup.md"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def rows(path):
    return [(m.conversation, m.author, m.sent_at, m.text) for m in parse(path, format="transcript")]


def test_blocks_multiline_and_deterministic_times():
    d = datetime(2000, 1, 1)
    assert rows(DINNER) == [
        ("dinner", "Maya", d.replace(minute=0), "did anyone book the restaurant?"),
        ("dinner", "Theo", d.replace(minute=1), "not yet\nI can call them at lunch"),  # continuation
        # "Note" inside the text is not a speaker: only the first ": " at the line's start counts
        ("dinner", "Maya", d.replace(minute=2), "ok. Note: they close on Mondays"),
        ("dinner", "Dr. Kwame Mensah", d.replace(minute=3), "count me in, I'll be late though"),
        # a URL and a later ": " inside the text do not split it
        ("dinner", "Theo", d.replace(minute=4), "https://example.com/menu is the menu: looks good"),
        # a blank line starts a new conversation, a day later
        ("dinner #2", "Maya", datetime(2000, 1, 2, 0, 0), "so, Friday at 8?"),
        ("dinner #2", "Theo", datetime(2000, 1, 2, 0, 1), "Friday works 👍"),
    ]
    msgs = list(parse(DINNER))
    assert {m.platform for m in msgs} == {"transcript"}
    assert all(m.kind == "text" and m.source_id is None and m.sent_at.tzinfo is None for m in msgs)


def test_same_file_same_times_and_appending_only_adds(tmp_path):
    p = tmp_path / "chat.txt"
    p.write_bytes(DINNER.read_bytes())
    before = list(parse(p, format="transcript"))
    assert before == list(parse(p, format="transcript"))
    with open(p, "a", encoding="utf-8") as f:
        f.write("Maya: see you there\n\nTheo: new topic\n")
    after = list(parse(p, format="transcript"))
    assert after[:len(before)] == before  # nothing that was there moves
    assert [(m.conversation, m.author, m.sent_at, m.text) for m in after[len(before):]] == [
        ("chat #2", "Maya", datetime(2000, 1, 2, 0, 2), "see you there"),
        ("chat #3", "Theo", datetime(2000, 1, 3, 0, 0), "new topic"),
    ]


def test_timestamps_title_and_markdown_bold():
    assert rows(STANDUP) == [
        # the "# Stand-up notes" block has no speakers: it is neither a message nor a conversation
        ("standup", "Rosa", datetime(2024, 3, 4, 9, 0), "shipped the export fix"),
        ("standup", "Ivan", datetime(2024, 3, 4, 9, 1), "reviewing it now\nleft two comments"),
        ("standup", "Rosa", datetime(2024, 3, 4, 9, 3), "thanks!"),
        ("standup", "Ivan", datetime(2024, 3, 4, 9, 3), "no timestamp on this one"),  # as the line above
        ("standup #2", "Rosa", datetime(2024, 3, 5, 9, 0), "day two"),
        ("standup #2", "Ivan", datetime(2024, 3, 5, 9, 2, 30), "markdown bold still reads as a name"),
    ]


@pytest.mark.parametrize("line, name", [
    ("Ana: hi", "Ana"),
    ("Ana Maria: a: b", "Ana Maria"),
    ("José 🌻: olá", "José 🌻"),
    ("Q: what time?", "Q"),
    ("👨‍👩‍👧: family emoji", "👨‍👩‍👧"),
    ("\x00: a control character", None),
    ("...: dots", None),
    ("Ana:", "Ana"),
    ("12/03/2024, 10:00 - Ana: hi", None),      # WhatsApp Android
    ("[3/18/22, 14:56:00] Ana: hi", None),      # WhatsApp iOS
    ("18.03.2022, 14:56 - Ana: hi", None),
    ("10:00 Ana: hi", None),                    # a time is not a name
    ("1234: hi", None),                         # digits only
    ("https: //x", None),                       # URL scheme
    ("well, the thing is: it broke", None),     # a sentence, not a name
    ("  Ana: indented", None),                  # indented = continuation
    ("From: ana@example.com", None),            # e-mail header
    ("- item: value", None),
    ("x" * 41 + ": too long", None),
])
def test_speaker_rules(line, name):
    found = transcript._speaker_line(line)
    assert (found[1] if found else None) == name


def test_whatsapp_file_is_not_claimed(tmp_path):
    p = tmp_path / "WhatsApp Chat with Ana.txt"
    p.write_text("12/03/2024, 10:00 - Ana: hi\n12/03/2024, 10:01 - Ben: hello\n"
                 "12/03/2024, 10:02 - Ana: how are you?\n", encoding="utf-8")
    assert not transcript.sniff(p)
    p.write_text("[12/03/2024, 10:00:01] Ana: hi\n[12/03/2024, 10:00:05] Ben: hello\n", encoding="utf-8")
    assert not transcript.sniff(p)


@pytest.mark.parametrize("text", [
    "Name: likeme\nVersion: 0.1\nSummary: a thing\nAuthor: someone\nLicense: MIT\n",  # key: value metadata
    "Just some prose.\nNothing here looks like a chat.\nAna: except this\n",
    "Ana: only one line\n",
])
def test_non_transcripts_not_claimed(tmp_path, text):
    p = tmp_path / "notes.txt"
    p.write_text(text, encoding="utf-8")
    assert not transcript.sniff(p)


def test_wrong_suffix_not_claimed(tmp_path):
    p = tmp_path / "chat.csv"
    p.write_bytes(DINNER.read_bytes())
    assert not transcript.sniff(p)


def test_detection_picks_transcript_for_a_hand_written_chat(tmp_path):
    assert detect(DINNER) == "transcript"
    assert detect(STANDUP) == "transcript"
    p = tmp_path / "with sam"  # no extension
    p.write_text("Sam: you up?\nMe: yes\nSam: call?\nMe: give me 5\n", encoding="utf-8")
    assert detect(p) == "transcript"
    assert [m.author for m in parse(p)] == ["Sam", "Me", "Sam", "Me"]


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_no_real_export_of_another_app_is_claimed():
    claimed = [p for p in (SHARED / "chat_exports").rglob("*") if p.is_file() and transcript.sniff(p)]
    assert claimed == []


def test_errors(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("no speakers here\nat all\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no 'Name: message' lines"):
        list(parse(p, format="transcript"))
    p.write_text("[2024-02-30 10:00] Ana: hi\n", encoding="utf-8")
    with pytest.raises(IngestError, match="line 1: not a valid date"):
        list(parse(p, format="transcript"))


VALID = DINNER.read_bytes() + STANDUP.read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    st.text(alphabet="Ana: \n[]0123-T", max_size=200).map(lambda s: s.encode()),
    splices(VALID, max_cut=30, junk=st.binary(max_size=20)),
))
def test_random_bytes_parse_or_ingest_error(data):
    # direct: the module itself, so only its own precise errors escape
    msgs = assert_parses_or_ingest_error(data, "chat.txt", "transcript", direct=True)
    if msgs is not None:
        assert msgs and all(m.author and m.text for m in msgs)
