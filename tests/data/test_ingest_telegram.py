"""Telegram Desktop JSON export (result.json): fixtures written by hand, plus the real samples."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, field_mutations, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import likeme.data.ingest
from likeme.data.ingest import detect, telegram
from likeme.errors import IngestError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "telegram"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL = SHARED / "chat_exports" / "telegram"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared real exports not present")

CET, CEST = timezone(timedelta(hours=1)), timezone(timedelta(hours=2))


def msgs(path, **kw):
    return list(likeme.data.ingest.parse(path, format="telegram", **kw))


def test_group_chat_texts_entities_and_kinds():
    m = msgs(FIX / "group_chat.json")
    assert [x.source_id for x in m] == [str(i) for i in range(1, 12)]
    assert {x.conversation for x in m} == {"Book Club 📚"}
    assert {x.platform for x in m} == {"telegram"}
    by_id = {x.source_id: x for x in m}
    # Entities joined as written; text_link keeps its label only; mention_name/custom_emoji rendered.
    assert by_id["3"].text == ("Finally — ask @marta_s or Lu, the schedule is here and the ebook at "
                               "https://example.org/dune 🎉")
    assert by_id["3"].reply_to == "2" and by_id["3"].author == "Jonas Berg"
    # Edited message keeps its (final) text; bidi marks removed.
    assert by_id["4"].text == "Chapters 1–3 by Friday (edited typo)"
    # text missing -> text_entities used.
    assert by_id["11"].text == "line one\nline two"
    assert [x.kind for x in m] == ["system", "text", "text", "text", "system", "media", "media",
                                   "text", "media", "system", "text"]


def test_service_messages_media_and_deleted_accounts():
    by_id = {x.source_id: x for x in msgs(FIX / "group_chat.json")}
    assert by_id["1"].author == "Marta Silva" and by_id["1"].kind == "system"
    assert by_id["1"].text.startswith("create group")
    assert by_id["10"].author == "Jonas Berg" and by_id["10"].text == "invite members: Priya"
    assert (by_id["6"].kind, by_id["6"].text) == ("media", "my copy arrived!")  # photo with caption
    assert (by_id["7"].kind, by_id["7"].text) == ("media", "")  # sticker
    assert (by_id["9"].kind, by_id["9"].text) == ("media", "")  # voice message
    assert by_id["8"].author == "Deleted Account" and by_id["8"].kind == "text"


def test_date_and_unixtime_give_local_offset_across_dst():
    by_id = {x.source_id: x for x in msgs(FIX / "group_chat.json")}
    assert by_id["2"].sent_at == datetime(2023, 3, 20, 19, 0, 5, tzinfo=CET)
    assert by_id["2"].sent_at.utcoffset() == timedelta(hours=1)
    # After the switch to summer time the same export records +02:00.
    assert by_id["9"].sent_at == datetime(2023, 3, 26, 10, 0, tzinfo=CEST)
    assert by_id["9"].sent_at.utcoffset() == timedelta(hours=2)
    assert by_id["9"].sent_at.replace(tzinfo=None) == datetime(2023, 3, 26, 10, 0)  # wall time kept


def test_unixtime_only_is_utc_and_date_only_is_naive():
    a = msgs(FIX / "unixtime_only.json")
    assert a[0].sent_at == datetime(2020, 9, 13, 12, 26, 40, tzinfo=timezone.utc)
    assert a[0].sent_at.utcoffset() == timedelta(0)
    b = msgs(FIX / "date_only.json")
    assert b[0].sent_at == datetime(2018, 7, 14, 21, 3, 9) and b[0].sent_at.tzinfo is None
    assert b[1].text == "see #throwback"


def test_full_export_chats_and_left_chats():
    m = msgs(FIX / "full_export.json")
    convs = [x.conversation for x in m]
    assert convs == ["Jonas Berg", "Jonas Berg", "Saved Messages", "Deleted Account",
                     "Deleted Account", "Kathmandu Trek 2019"]
    assert m[1].reply_to == "501" and m[1].author == "Marta Silva"
    assert m[4].author == "Deleted Account"
    # Nepal is +05:45: the offset is rounded to the quarter hour, not the hour.
    assert m[5].sent_at.utcoffset() == timedelta(hours=5, minutes=45)


def test_sniff_and_detection():
    for f in FIX.glob("*.json"):
        assert telegram.sniff(f), f
        assert detect(f) == "telegram"
    assert not telegram.sniff(FIX)  # a folder is never claimed, only its result.json
    assert not telegram.sniff(Path(__file__).resolve().parents[1] / "fixtures" / "discord" / "makers_general.json")
    assert list(likeme.data.ingest.parse(FIX / "unixtime_only.json"))[1].text == "pong"


def test_sniff_rejects_other_json(tmp_path):
    messenger = tmp_path / "message_1.json"
    messenger.write_text(json.dumps({"participants": [{"name": "A"}], "messages": [
        {"sender_name": "A", "timestamp_ms": 1, "content": "x", "type": "Generic"}]}))
    slack = tmp_path / "2023-01-01.json"
    slack.write_text(json.dumps([{"type": "message", "user": "U1", "text": "hi", "ts": "1.0"}]))
    plain = tmp_path / "data.json"
    plain.write_text(json.dumps({"messages": [{"type": "message", "body": "hi"}]}))
    assert not any(telegram.sniff(p) for p in (messenger, slack, plain))


def test_errors_name_the_place(tmp_path):
    p = tmp_path / "result.json"
    p.write_text(json.dumps({"name": "x", "type": "personal_chat", "messages": [
        {"id": 1, "type": "message", "date_unixtime": "1", "from": "a", "text": "ok"},
        {"id": 2, "type": "message", "from": "a", "text": "no date"}]}))
    with pytest.raises(IngestError, match=r"messages\[1\]"):
        msgs(p)
    p.write_text('{"messages": [\n  {"id": 1,,}]}')
    with pytest.raises(IngestError, match="line 2"):
        msgs(p)
    p.write_text(json.dumps({"chats": {"list": [{"name": "x", "messages": [{"id": 1, "type": "message",
                              "date": "yesterday", "text": "x"}]}]}}))
    with pytest.raises(IngestError, match=r"chats\.list\[0\]\.messages\[0\]\.date"):
        msgs(p)


@needs_shared
def test_real_chat_miner_exports_match_target():
    base = REAL / "chat-miner" / "test" / "telegram"
    target = json.loads((base / "target.json").read_text())
    for name in ("test_single_export.json", "test_batch_export.json"):
        got = list(likeme.data.ingest.parse(base / name))
        assert len(got) == len(target)
        for m, t in zip(got, target):
            assert m.author == t["author"]
            # chat-miner's timestamp is naive UTC; ours is UTC-aware (only date_unixtime is present).
            assert m.sent_at == datetime.fromisoformat(t["timestamp"]).replace(tzinfo=timezone.utc)
            # chat-miner joins entity parts with " "; real exports carry the spaces in their plain
            # parts, so we concatenate as written ("Link:" + "https://..." here).
            assert m.text.replace(" ", "") == t["message"].replace(" ", "")
    assert got[0].conversation == "Chatname"
    assert got[1].text == "Link:https://telegram.org/"


@needs_shared
def test_real_langchain_result_json():
    p = REAL / "langchain-community/libs/community/tests/unit_tests/chat_loaders/data/telegram_chat_json/result.json"
    assert detect(p) == "telegram"
    m = list(likeme.data.ingest.parse(p))
    assert [x.author for x in m] == ["Jimmeny Marvelton", "Batman & Robin", "Jimmeny Marvelton", "Jimmeny Marvelton"]
    assert [x.text for x in m] == ["i refuse to converse with you", "Hi nemesis", "we meet again",
                                   "you will not trick me this time"]
    assert {x.conversation for x in m} == {"Jimmeny"}
    # date 13:11:23 and epoch 1692821483 (20:11:23 UTC): the export was made at UTC-7.
    assert m[0].sent_at == datetime(2023, 8, 23, 20, 11, 23, tzinfo=timezone.utc)
    assert m[0].sent_at.utcoffset() == timedelta(hours=-7)
    assert [x.source_id for x in m] == ["1", "2", "3", "4"]


_VALID = (FIX / "group_chat.json").read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),
    splices(_VALID, max_cut=40, junk=st.binary(max_size=20)),
    field_mutations(_VALID, ["text", "date", "date_unixtime", "from", "type", "id", "reply_to_message_id",
                             "actor", "photo", "poll"], ["messages", "name", "chats"]),
))
def test_fuzz_mutated_exports_raise_only_ingest_errors(blob):
    # precise: an error of ours, not a stray exception the core had to wrap
    assert_parses_or_ingest_error(blob, "result.json", "telegram", precise=True)
