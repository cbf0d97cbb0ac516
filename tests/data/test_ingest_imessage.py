"""macOS iMessage chat.db: built here with sqlite3 (a schema subset), plus the real sample."""
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, mutations
from hypothesis import HealthCheck, given, settings

from likeme.data.ingest import detect, imessage, parse
from likeme.data.ingest.imessage import attributed_text
from likeme.errors import IngestError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL = SHARED / "chat_exports" / "imessage" / "langchain-community" / "libs" / "community" / "tests" / "unit_tests" / "chat_loaders" / "data" / "imessage_chat.db"
APPLE = datetime(2001, 1, 1, tzinfo=timezone.utc)


def typedstream(text: str, mutable: bool = False) -> bytes:
    """An attributedBody blob in NSArchiver's typedstream layout, as macOS writes it."""
    raw = text.encode("utf-8")
    if len(raw) < 0x80:
        length = bytes([len(raw)])
    elif len(raw) < 0x8000:
        length = b"\x81" + len(raw).to_bytes(2, "little")
    else:
        length = b"\x82" + len(raw).to_bytes(4, "little")
    cls = (b"\x84\x84\x84\x0fNSMutableString\x01\x84\x84\x08NSString\x01\x95\x84\x01+" if mutable
           else b"\x84\x84\x84\x08NSString\x01\x94\x84\x01+")
    return (b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00"
            b"\x84\x84\x08NSObject\x00\x85\x92" + cls + length + raw +
            b"\x86\x84\x02iI\x01\x03\x92\x84\x84\x84\x0cNSDictionary\x00\x94\x84\x01i\x01\x92\x84\x96\x96"
            b"\x1d__kIMMessagePartAttributeName\x86\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue"
            b"\x00\x94\x84\x01*\x84\x99\x99\x00\x86\x86\x86")


def ns(dt: datetime) -> int:
    return (dt - APPLE) // timedelta(microseconds=1) * 1000


T = datetime(2024, 5, 1, 18, 0, tzinfo=timezone.utc)
LONG = "pão de queijo 🧀 " * 20  # 340 UTF-8 bytes: a 0x81 two-byte length

SCHEMA = """
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, service TEXT);
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT, chat_identifier TEXT, display_name TEXT);
CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER, PRIMARY KEY (chat_id, message_id));
CREATE TABLE message (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
  attributedBody BLOB, handle_id INTEGER DEFAULT 0, is_from_me INTEGER DEFAULT 0, date INTEGER,
  item_type INTEGER DEFAULT 0, group_action_type INTEGER DEFAULT 0, associated_message_type INTEGER DEFAULT 0,
  reply_to_guid TEXT, thread_originator_guid TEXT, cache_has_attachments INTEGER DEFAULT 0,
  is_audio_message INTEGER DEFAULT 0);
"""
# (guid, chat, handle, from_me, date, text, body, item_type, assoc, thread_originator, attachments)
ROWS = [
    # inserted out of date order on purpose
    ("G3", 1, 1, 1, ns(T + timedelta(minutes=3)), None, typedstream("on my way 🚲"), 0, 0, None, 0),
    ("G1", 1, 1, 0, ns(T), "hey, dinner at 8?", typedstream("hey, dinner at 8?"), 0, 0, None, 0),
    ("G2", 1, 1, 0, ns(T + timedelta(minutes=1)), None, typedstream(LONG, mutable=True), 0, 0, None, 0),
    ("G4", 1, 1, 0, ns(T + timedelta(minutes=4)), "\ufffc", None, 0, 0, None, 1),
    ("G5", 1, 1, 1, ns(T + timedelta(minutes=5)), "\ufffcour table", None, 0, 0, "G4", 1),
    ("G6", 1, 1, 1, ns(T + timedelta(minutes=6)), "Loved “hey, dinner at 8?”", None, 0, 2000, None, 0),
    ("G7", 1, 1, 0, ns(T + timedelta(minutes=7)), None, None, 0, 0, None, 0),  # unsent: nothing left -> media ""
    # group chat: a rename, a member's message, mine with no handle; seconds-based date (old macOS)
    ("H1", 2, None, 1, int((T - APPLE).total_seconds()) - 60, "Ana named the conversation “Book club”", None, 2, 0, None, 0),
    ("H2", 2, 2, 0, ns(T + timedelta(minutes=2)), "chapter 3 tonight", None, 0, 0, None, 0),
    ("H3", 2, 0, 1, ns(T + timedelta(minutes=2, seconds=30)), "deal", None, 0, 0, "H2", 0),
]


def build(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.executemany("INSERT INTO handle (ROWID, id, service) VALUES (?, ?, ?)",
                   [(1, "+15551234567", "iMessage"), (2, "kim@example.org", "iMessage")])
    db.executemany("INSERT INTO chat (ROWID, guid, chat_identifier, display_name) VALUES (?, ?, ?, ?)",
                   [(1, "iMessage;-;+15551234567", "+15551234567", ""), (2, "iMessage;+;chat42", "chat42", "Book club")])
    for guid, chat, handle, me, date, text, body, item, assoc, thread, att in ROWS:
        cur = db.execute(
            "INSERT INTO message (guid, text, attributedBody, handle_id, is_from_me, date, item_type,"
            " associated_message_type, thread_originator_guid, cache_has_attachments) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (guid, text, body, handle, me, date, item, assoc, thread, att))
        db.execute("INSERT INTO chat_message_join (chat_id, message_id) VALUES (?, ?)", (chat, cur.lastrowid))
    db.commit()
    db.close()
    return path


@pytest.fixture(scope="module")
def chat_db(tmp_path_factory):
    return build(tmp_path_factory.mktemp("imessage") / "chat.db")


def test_conversations_authors_kinds_and_order(chat_db):
    msgs = list(parse(chat_db))
    assert {m.platform for m in msgs} == {"imessage"}
    got = [(m.conversation, m.author, m.kind, m.text, m.source_id, m.reply_to) for m in msgs]
    # conversations in the order of their first message (the group's rename is the oldest row)
    assert got == [
        ("Book club", "me", "system", "Ana named the conversation “Book club”", "H1", None),  # item_type 2
        ("Book club", "kim@example.org", "text", "chapter 3 tonight", "H2", None),
        ("Book club", "me", "text", "deal", "H3", "H2"),  # from me in a group: no handle
        ("+15551234567", "+15551234567", "text", "hey, dinner at 8?", "G1", None),
        ("+15551234567", "+15551234567", "text", LONG, "G2", None),  # from attributedBody, 0x81 length
        ("+15551234567", "me", "text", "on my way 🚲", "G3", None),  # from attributedBody
        ("+15551234567", "+15551234567", "media", "", "G4", None),  # attachment only
        ("+15551234567", "me", "media", "our table", "G5", "G4"),  # attachment with a caption, inline reply
        ("+15551234567", "me", "system", "Loved “hey, dinner at 8?”", "G6", None),  # tapback
        # nothing left (unsent, or never downloaded): a turn without text, like a photo; author kept
        ("+15551234567", "+15551234567", "media", "", "G7", None),
    ]


def test_unsent_message_on_ventura_is_media_without_text(tmp_path):
    # macOS 13+ "Undo Send": text and attributedBody cleared, date_edited/date_retracted set.
    p = build(tmp_path / "chat.db")
    db = sqlite3.connect(p)
    db.executescript("ALTER TABLE message ADD COLUMN date_edited INTEGER DEFAULT 0;"
                     "ALTER TABLE message ADD COLUMN date_retracted INTEGER DEFAULT 0;")
    when = ns(T + timedelta(minutes=8))
    cur = db.execute("INSERT INTO message (guid, text, attributedBody, handle_id, is_from_me, date, date_edited,"
                     " date_retracted) VALUES ('G8', NULL, NULL, 0, 1, ?, ?, ?)", (when, when + 10**9, when + 10**9))
    db.execute("INSERT INTO chat_message_join (chat_id, message_id) VALUES (1, ?)", (cur.lastrowid,))
    db.commit()
    db.close()
    [m] = [m for m in parse(p) if m.source_id == "G8"]
    assert (m.kind, m.text, m.author, m.conversation) == ("media", "", "me", "+15551234567")


def test_dates_are_utc_aware_nanoseconds_or_seconds(chat_db):
    msgs = {m.source_id: m for m in parse(chat_db)}
    assert msgs["G1"].sent_at == T
    assert msgs["G3"].sent_at == T + timedelta(minutes=3)
    assert msgs["H1"].sent_at == T - timedelta(minutes=1)  # seconds since 2001
    assert all(m.sent_at.tzinfo is not None for m in msgs.values())


def test_me_option(chat_db):
    assert {m.author for m in parse(chat_db, me="Ana") if m.source_id in ("G3", "H3")} == {"Ana"}


def test_detection_and_sniff(chat_db, tmp_path):
    assert detect(chat_db) == "imessage"
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE message (id INTEGER, body TEXT)")
    db.commit()
    db.close()
    assert not imessage.sniff(other)
    text = tmp_path / "chat.db.txt"
    text.write_text("SQLite format 3 is a nice format\n")
    assert not imessage.sniff(text)
    assert not imessage.sniff(tmp_path)


@pytest.mark.parametrize("blob, text", [
    (typedstream("Yeh"), "Yeh"),
    (typedstream("x" * 200), "x" * 200),
    (typedstream("é" * 20000), "é" * 20000),  # 40000 bytes: 0x82 four-byte length
    (typedstream("👀 mutable", mutable=True), "👀 mutable"),
    (b"", None),
    (None, None),
    (b"streamtyped NSString but nothing else", None),
    (typedstream("cut short")[:-60], "cut short"),  # the tail after the string is not needed
    (typedstream("cut short")[:typedstream("cut short").index(b"cut") + 3], None),  # the string itself cut
])
def test_attributed_text(blob, text):
    assert attributed_text(blob) == text


def test_locked_database_says_what_to_do(chat_db, tmp_path):
    locked = build(tmp_path / "locked.db")
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(IngestError, match="copy chat.db"):
            list(parse(locked, format="imessage"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_corrupt_database(tmp_path):
    bad = tmp_path / "chat.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\x07" * 2000)
    with pytest.raises(IngestError, match="iMessage|database"):
        list(parse(bad, format="imessage"))


def test_database_without_chat_tables(tmp_path):
    # the real sample has no chat table: each handle is one conversation
    p = build(tmp_path / "nochat.db")
    db = sqlite3.connect(p)
    db.executescript("DROP TABLE chat; DROP TABLE chat_message_join;")
    db.close()
    convs = {m.conversation for m in parse(p)}
    assert convs == {"+15551234567", "kim@example.org", "iMessage"}


@pytest.mark.skipif(not REAL.exists(), reason="shared sample exports not present")
def test_real_chat_db():
    assert detect(REAL) == "imessage"
    msgs = list(parse(REAL))
    words = [m for m in msgs if m.kind != "system"]
    assert len(msgs) == 23 and len(words) == 22
    assert all(m.text.strip() for m in words)
    assert {m.author for m in msgs} == {"me", "testemail@gmail.com"}
    assert {m.conversation for m in msgs} == {"testemail@gmail.com"}
    assert [m.sent_at for m in msgs] == sorted(m.sent_at for m in msgs)
    first = msgs[0]
    assert (first.author, first.text, first.source_id) == ("testemail@gmail.com", "Yeh", "E7F6B913-EEE2-47E8-9458-BDA6BDA9BE8A")
    assert first.sent_at == datetime(2023, 11, 5, 2, 50, 50, 393148, tzinfo=timezone.utc)
    texts = [m.text for m in msgs]
    # text NULL in the table: recovered from attributedBody
    assert "Woaaaaaah" in texts and "No 💀 not worth " in texts
    assert "Yehh unfortunately screen is cracked so can’t play games too well" in texts
    long = next(m for m in msgs if m.source_id == "93FD2F6C-0B74-4DA8-9923-6A27D92AB4B1")
    assert long.text == "aaaaabbbbb" * 12 + "aaaaabbb"  # 128 bytes: a 0x81 length
    assert msgs[-1].kind == "system" and msgs[-1].text == "Loved “I see nothing here add”"


with tempfile.TemporaryDirectory() as _d:
    _VALID = build(Path(_d) / "chat.db").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations(_VALID, max_bytes=200, max_changes=12, prefix=b"SQLite format 3\x00"))
def test_random_database_parses_or_raises_ingest_error(data):
    assert_parses_or_ingest_error(data, "chat.db", "imessage")
