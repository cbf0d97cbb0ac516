"""Facebook Messenger / Instagram JSON: mojibake repair, message_N merging, kinds, platform."""
import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, mutations
from hypothesis import HealthCheck, given, settings

from likeme.data.ingest import detect, messenger, parse
from likeme.errors import IngestError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "messenger"
GROUP = FIX / "messenger_group"
INSTA = FIX / "your_instagram_activity" / "messages" / "inbox" / "kimlee_17843"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL = SHARED / "chat_exports" / "messenger_instagram"
T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)  # 1700000000000 ms


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def test_group_folder_merges_message_files_oldest_first_and_repairs_mojibake():
    msgs = list(parse(GROUP))
    assert [m.sent_at for m in msgs] == sorted(m.sent_at for m in msgs)
    assert len(msgs) == 16  # 6 in message_2.json + 10 in message_1.json
    assert {m.platform for m in msgs} == {"messenger"}
    assert {m.conversation for m in msgs} == {"Café crew ☕"}
    assert {m.author for m in msgs} == {"Zoë Brontë", "Ana Ruiz", "Sam Okafor"}
    got = [(m.sent_at, m.author, m.kind, m.text) for m in msgs]
    assert got == [
        (at(1), "Sam Okafor", "system", "Sam Okafor started a video chat."),  # type Call
        (at(2), "Ana Ruiz", "text", "first"),  # same millisecond: file order reversed
        (at(2), "Ana Ruiz", "text", "second, same millisecond"),
        (at(3), "Zoë Brontë", "system", "Sam Okafor added Zoë Brontë to the group."),  # Subscribe
        (at(4), "Sam Okafor", "text", "Zoë, ça va? 😀"),
        (at(5), "Ana Ruiz", "system", "Ana Ruiz named the group Café crew ☕."),
        (at(6), "Zoë Brontë", "text", "I left the group chat open all night, sorry"),
        (at(7), "Sam Okafor", "media", ""),  # sticker
        (at(7.5), "Zoë Brontë", "media", "my café this morning"),  # photo with a caption
        (at(8), "Ana Ruiz", "media", ""),  # photo
        (at(8.5), "Ana Ruiz", "text", "look at this https://example.org/a"),  # link already in text
        (at(9), "Sam Okafor", "text", "https://example.org/recette-crêpes"),  # share: the link
        (at(10), "Zoë Brontë", "system", "You sent an attachment."),
        (at(11), "Ana Ruiz", "system", "Reacted ❤ to your message "),
        (at(12), "Zoë Brontë", "media", ""),  # is_unsent: a turn without text, like a photo
        (at(13), "Sam Okafor", "system", "Liked a message"),
    ]
    assert all(m.source_id is None and m.reply_to is None for m in msgs)


def test_single_file_is_parsed_on_its_own():
    msgs = list(parse(GROUP / "message_2.json"))
    assert [m.text for m in msgs if m.kind == "text"] == ["first", "second, same millisecond", "Zoë, ça va? 😀"]


def test_instagram_by_path_and_conversation_from_participants():
    msgs = list(parse(INSTA))
    assert {m.platform for m in msgs} == {"instagram"}
    # no title: the participants, without `me` when given
    assert {m.conversation for m in msgs} == {"Kim Lee, Ana Ruiz"}
    assert {m.conversation for m in parse(INSTA, me="Ana Ruiz")} == {"Kim Lee"}
    assert [(m.author, m.kind, m.text) for m in msgs] == [
        ("Kim Lee", "system", "Kim Lee's poll has multiple updates."),
        ("Kim Lee", "media", ""),  # audio_files
        ("Ana Ruiz", "text", "see you at 8"),
    ]


@pytest.mark.parametrize("extra", [{"is_unsent": True}, {"content": "Ana Ruiz unsent a message."},
                                   {"content": "You unsent a message.", "is_unsent": True}])
def test_unsent_message_is_media_without_text_and_keeps_its_author(tmp_path, extra):
    p = tmp_path / "message_1.json"
    p.write_text(json.dumps({"participants": [{"name": "Ana Ruiz"}, {"name": "Sam"}], "messages": [
        {"sender_name": "Ana Ruiz", "timestamp_ms": 1700000002000, "type": "Generic", **extra},
        {"sender_name": "Ana Ruiz", "timestamp_ms": 1700000001000, "content": "hi", "type": "Generic"},
        {"sender_name": "Ana Ruiz", "timestamp_ms": 1700000000000, "content": "Ana Ruiz left the group."},
    ]}))
    assert [(m.kind, m.text, m.author) for m in parse(p)] == [
        ("system", "Ana Ruiz left the group.", "Ana Ruiz"), ("text", "hi", "Ana Ruiz"), ("media", "", "Ana Ruiz")]
    assert messenger._classify({}, "Ana Ruiz unsent a message but I kept a copy", p, "x") == (
        "text", "Ana Ruiz unsent a message but I kept a copy")  # anchored: a person's sentence stays text


def test_already_correct_utf8_is_kept():
    msgs = list(parse(FIX / "already_utf8.json"))
    assert [(m.author, m.text) for m in msgs] == [("Ana Ruiz", "Ótimo! é"), ("Łukasz Wróbel", "Dzięki, będę o 20:00 ✌")]
    assert msgs[0].conversation == "Łukasz Wróbel"


def test_fix_repairs_or_keeps():
    assert messenger._fix("J\u00e2\u009d\u00a4\u00ef\u00b8\u008fhn") == "J❤️hn"
    assert messenger._fix("été") == "été"
    assert messenger._fix("😀") == "😀"


def test_detection():
    assert detect(GROUP) == "messenger"
    assert detect(GROUP / "message_1.json") == "messenger"
    assert detect(FIX / "already_utf8.json") == "messenger"
    # not Messenger: a Telegram-like and a Discord-like JSON
    with tempfile.TemporaryDirectory() as d:
        tg = Path(d) / "result.json"
        tg.write_text(json.dumps({"name": "x", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "from": "a"}]}))
        dc = Path(d) / "dc.json"
        dc.write_text(json.dumps({"guild": {}, "channel": {}, "messages": [{"id": "1", "author": {"name": "a"}}]}))
        assert not messenger.sniff(tg) and not messenger.sniff(dc)
        assert not messenger.sniff(Path(d))


def test_whole_export_folder_walks_every_conversation():
    msgs = list(parse(FIX))
    assert {m.conversation for m in msgs} == {"Café crew ☕", "Kim Lee, Ana Ruiz", "Łukasz Wróbel"}
    assert len(msgs) == 16 + 3 + 2


@pytest.mark.parametrize("body, where", [
    ('{"messages": [{"sender_name": "a", "timestamp_ms": 1, "content": "x"}, 3]}', "messages[1]"),
    ('{"messages": [{"sender_name": "a", "content": "x"}]}', "messages[0]"),
    ('{"messages": [{"sender_name": "a", "timestamp_ms": 1, "content": 5}]}', "messages[0].content"),
    ('{"messages": {}}', None),
    ('{"messages": [', "line 1"),
])
def test_malformed_is_an_ingest_error_with_a_place(tmp_path, body, where):
    p = tmp_path / "message_1.json"
    p.write_text(body)
    with pytest.raises(IngestError) as e:
        list(parse(p, format="messenger"))
    if where:
        assert where in str(e.value)


@pytest.mark.skipif(not REAL.exists(), reason="shared sample exports not present")
def test_real_instagram_test_export_matches_chat_miner():
    p = REAL / "chat-miner" / "test" / "instagram" / "test_export.json"
    assert detect(p) == "messenger"
    msgs = list(parse(p))
    target = json.loads((p.parent / "target.json").read_text(encoding="utf-8"))
    # chat-miner's target is newest first, in UTC without a zone
    assert [(m.author, m.text) for m in msgs] == [(t["author"], t["message"]) for t in reversed(target)]
    assert [m.sent_at.astimezone(timezone.utc).replace(tzinfo=None).isoformat() for m in msgs] == \
        [t["timestamp"] for t in reversed(target)]
    assert {m.platform for m in msgs} == {"instagram"}


@pytest.mark.skipif(not REAL.exists(), reason="shared sample exports not present")
def test_real_instagram_testlog_with_mojibake():
    p = REAL / "chat-miner_71990a9" / "test" / "instagram" / "testlog.json"
    msgs = list(parse(p))
    assert len(msgs) == 13 and {m.conversation for m in msgs} == {"Test Log"}
    texts = {(m.author, m.text) for m in msgs if m.kind == "text"}
    assert ("❤️", "Testing username only emoji: ❤️") in texts
    assert ("J❤️hn Doe", "Testing username with emoji: J❤️hn Doe") in texts
    assert ("John Doe", "Testing message with emoji: ❤️") in texts
    assert ("Lionel Messi", "https://www.instagram.com/p/CmUv48DLvxd/?feed_type=reshare_chaining") in texts
    kinds = [m.kind for m in msgs]
    assert kinds.count("media") == 4 and kinds.count("system") == 3  # audio, video, photo, disappearing
    assert msgs[0].text == "Jane Doe joined the group." and msgs[0].kind == "system"
    assert msgs[0].sent_at == datetime(2014, 12, 24, 17, 8, tzinfo=timezone.utc)


_VALID = (GROUP / "message_1.json").read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations(_VALID, max_bytes=300, max_changes=8))
def test_random_input_parses_or_raises_ingest_error(data):
    assert_parses_or_ingest_error(data, "message_1.json", "messenger")
