"""Generic tables: CSV / TSV / JSON Lines / JSON arrays with named columns."""
import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likeme.data.ingest import detect, parse, table
from likeme.errors import IngestError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "table"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
UTC = timezone.utc
PLUS2 = timezone(timedelta(hours=2))


def rows(path, **kw):
    return [(m.conversation, m.author, m.sent_at, m.kind, m.text, m.reply_to, m.source_id)
            for m in parse(path, **kw)]


def test_csv_every_column():
    assert rows(FIXTURES / "chat.csv") == [
        ("Road trip", "Ines", datetime(2024, 6, 1, 8, 0, tzinfo=PLUS2), "text",
         "Who's driving first, me or you?", None, "m1"),  # quoted comma
        ("Road trip", "Karl", datetime(2024, 6, 1, 6, 2, tzinfo=UTC), "text",
         "Me. You take\nthe afternoon shift", "m1", "m2"),  # newline in a quoted field; epoch seconds
        ("Road trip", "Karl", datetime(2024, 6, 1, 6, 5, tzinfo=UTC), "text",
         'sounds good "boss"', None, "m3"),  # epoch milliseconds; sorted before the later photo row
        ("Road trip", "Ines", datetime(2024, 6, 1, 8, 10, tzinfo=PLUS2), "media", "", None, "m4"),
        ("Road trip", "", datetime(2024, 6, 1, 9, 0, tzinfo=UTC), "system",  # "Z"; no author
         "Karl renamed the group", None, "m5"),
        # naive "2024-06-02 18:30"; Karl's empty-text row (kind text) is skipped
        ("Groceries", "Ines", datetime(2024, 6, 2, 18, 30), "text", "oat milk and eggs", None, "m6"),
    ]
    assert {m.platform for m in parse(FIXTURES / "chat.csv")} == {"table"}


def test_tsv_without_time_column_gets_deterministic_times(tmp_path):
    want = [("notes", "Nadia", datetime(2000, 1, 1, 0, 0), "text", "morning!", None, None),
            ("notes", "Omar", datetime(2000, 1, 1, 0, 1), "text", "morning :)", None, None),
            ("notes", "Nadia", datetime(2000, 1, 1, 0, 2), "text", "coffee?", None, None)]
    assert rows(FIXTURES / "notes.tsv") == want
    p = tmp_path / "notes.tsv"
    p.write_bytes((FIXTURES / "notes.tsv").read_bytes() + "Omar\tyes please\n".encode())
    assert rows(p)[:3] == want  # appended rows only add
    assert rows(p)[3][2] == datetime(2000, 1, 1, 0, 3)


def test_jsonl_platform_column_and_number_times():
    msgs = list(parse(FIXTURES / "messages.jsonl"))
    assert [(m.platform, m.conversation, m.author, m.sent_at, m.text) for m in msgs] == [
        ("sms", "Mum", "+44 7700 900123", datetime(2024, 3, 1, 11, 0, tzinfo=UTC), "running 5 min late"),
        ("sms", "Mum", "Me", datetime(2024, 3, 1, 11, 1, 0, 500000, tzinfo=UTC), "no rush"),
        ("sms", "Mum", "+44 7700 900123", datetime(2024, 3, 1, 11, 5), "here now"),
    ]


def test_json_array_case_insensitive_keys():
    minus3 = timezone(timedelta(hours=-3))
    assert rows(FIXTURES / "export.json") == [
        ("Cine", "Lucía", datetime(2023, 11, 10, 19, 0, tzinfo=minus3), "text", "¿Vamos al cine?", None, None),
        ("Cine", "Pablo", datetime(2023, 11, 10, 19, 2, tzinfo=minus3), "text", "Sí, a las 9", None, "42"),
    ]


def test_semicolons_bom_crlf_and_split_date_time():
    assert rows(FIXTURES / "split_time.csv") == [
        ("split_time", "Ali", datetime(2024, 1, 5, 21, 15), "text", "dinner at 8?", None, None),
        ("split_time", "Bea", datetime(2024, 1, 5, 21, 16), "text", "yes; see you there", None, None),
    ]


@pytest.mark.parametrize("v, want", [
    (1704189600, datetime(2024, 1, 2, 10, 0, tzinfo=UTC)),
    ("1704189600000", datetime(2024, 1, 2, 10, 0, tzinfo=UTC)),
    ("2024-01-02T10:00:00+01:00", datetime(2024, 1, 2, 10, 0, tzinfo=timezone(timedelta(hours=1)))),
    ("2024-01-02 10:00", datetime(2024, 1, 2, 10, 0)),
    ("2024/01/02 10:00", datetime(2024, 1, 2, 10, 0)),
    ("yesterday", None), ("", None), (None, None), (True, None), (1e300, None),
])
def test_parse_time(v, want):
    assert table.parse_time(v) == want


def test_bad_time_names_the_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("author,text,time\nAna,hi,2024-01-02 10:00\nBen,\"two\nlines\",2024-01-02 10:01\n"
                 "Ana,bye,xyz\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"t\.csv: line 5: cannot read time 'xyz'"):
        list(parse(p))


def test_bad_jsonl_line_and_bad_kind(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"author": "Ana", "text": "hi"}\n{"author": "Ben", "text": \n', encoding="utf-8")
    with pytest.raises(IngestError, match="line 2: invalid JSON"):
        list(parse(p, format="table"))
    p.write_text('{"author": "Ana", "text": "hi", "kind": "poem"}\n', encoding="utf-8")
    with pytest.raises(IngestError, match="line 1: unknown kind 'poem'"):
        list(parse(p, format="table"))
    p.write_text('{"author": "Ana", "text": {"nested": 1}}\n', encoding="utf-8")
    with pytest.raises(IngestError, match="line 1"):
        list(parse(p, format="table"))


def test_detection():
    for name in ("chat.csv", "notes.tsv", "messages.jsonl", "export.json", "split_time.csv"):
        assert detect(FIXTURES / name) == "table", name


@pytest.mark.parametrize("name, content", [
    # DiscordChatExporter CSV belongs to discord-csv
    ("dm.csv", "AuthorID,Author,Date,Content,Attachments,Reactions\n1,ana,2024-01-01,hi,,\n"),
    ("train.csv", "text,category\nwhere is my card?,card_arrival\n"),  # no author column
    ("2024-01-02.json", json.dumps([{"type": "message", "user": "U1", "text": "hi", "ts": "1.0"}])),  # Slack
    ("result.json", json.dumps({"name": "x", "messages": [{"from": "Ana", "text": "hi"}]})),  # Telegram
    ("message_1.json", json.dumps({"participants": [], "messages": [{"sender_name": "A", "content": "hi"}]})),
    ("chat.txt", "author,text\nAna,hi\n"),
])
def test_other_files_not_claimed(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    assert not table.sniff(p)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
@pytest.mark.parametrize("rel", [
    "chat_exports/whatsapp/chat-miner_71990a9/test/whatsapp/test_dateformat1_target.csv",
    "chat_exports/whatsapp/chat-miner_71990a9/test/whatsapp/test_unicode_target.csv",
    "chat_exports/messenger_instagram/chat-miner_71990a9/test/instagram/testlog_target.csv",
])
def test_real_csv_tables(rel):
    """chat-miner's expected-output tables are plain timestamp,author,message CSVs."""
    path = SHARED / rel
    with open(path, newline="", encoding="utf-8") as f:
        want = [(datetime.fromisoformat(r["timestamp"]), r["author"], r["message"].strip())
                for r in csv.DictReader(f) if r["message"].strip()]
    got = [(m.sent_at, m.author, m.text) for m in parse(path)]
    assert sorted(got, key=str) == sorted(want, key=str)
    assert got == sorted(got, key=lambda t: t[0])


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_real_json_array_table():
    path = SHARED / "chat_exports" / "whatsapp" / "chat-miner" / "test" / "whatsapp" / "target.json"
    want = json.loads(path.read_text("utf-8"))
    msgs = list(parse(path, format="table"))
    assert len(msgs) == len(want)
    assert {m.author for m in msgs} == {w["author"] for w in want}
    assert min(m.sent_at for m in msgs) == min(datetime.fromisoformat(w["timestamp"]) for w in want)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
def test_banking77_is_not_a_chat():
    assert not table.sniff(SHARED / "classification" / "banking77" / "banking_data" / "train.csv")


VALID = {".csv": (FIXTURES / "chat.csv").read_bytes(), ".jsonl": (FIXTURES / "messages.jsonl").read_bytes(),
         ".json": (FIXTURES / "export.json").read_bytes(), ".tsv": (FIXTURES / "notes.tsv").read_bytes()}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_tables_parse_or_ingest_error(data):
    suffix = data.draw(st.sampled_from(sorted(VALID)))
    blob = data.draw(st.one_of(splices(VALID[suffix], max_cut=30, junk=st.binary(max_size=20)),
                               st.binary(max_size=20).map(lambda junk: junk * 10)))
    # direct: the module itself, so only its own precise errors (naming the file) escape
    assert_parses_or_ingest_error(blob, f"t{suffix}", "table", direct=True)
