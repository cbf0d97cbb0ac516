"""Google Takeout: Hangouts.json (both layouts) and Google Chat messages.json."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likeme.data.ingest import detect, hangouts, parse
from likeme.errors import IngestError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hangouts"
HANGOUTS = FIXTURES / "Hangouts.json"
LEGACY = FIXTURES / "legacy" / "Hangouts.json"
TAKEOUT = FIXTURES / "Takeout"
GROUPS = TAKEOUT / "Google Chat" / "Groups"
SPACE = GROUPS / "Space AAAAq1w2e3" / "messages.json"
DM = GROUPS / "DM 8hJkLm0" / "messages.json"
UTC = timezone.utc


def utc(*a):
    return datetime(*a, tzinfo=UTC)


def test_hangouts_json():
    msgs = list(parse(HANGOUTS, format="hangouts"))
    assert {m.platform for m in msgs} == {"hangouts"}
    dm = [m for m in msgs if m.conversation == "Lena Brandt"]  # unnamed DM: the other person
    assert [(m.author, m.sent_at, m.kind, m.text, m.source_id) for m in dm] == [
        # TEXT + LINE_BREAK + LINK segments joined; U+00A0 in the name folded
        ("Lena Brandt", utc(2015, 1, 1, 10, 0), "text",
         "Happy new year!\nPhotos from last night: https://photos.example.com/album/xyz", "7-H0Z7-aaa01"),
        # listed after the photo in the file: events are put in time order
        ("Sam Okafor", utc(2015, 1, 1, 10, 3), "text", "Same to you 🎉", "7-H0Z7-aaa02"),
        ("Sam Okafor", utc(2015, 1, 1, 10, 5, 0, 500000), "media", "", "7-H0Z7-aaa03"),
        ("Lena Brandt", utc(2015, 1, 1, 10, 10), "media", "the view from the balcony", "7-H0Z7-aaa04"),
        ("Lena Brandt", utc(2015, 1, 1, 10, 15), "system", "started a video call", "7-H0Z7-aaa05"),
        ("Lena Brandt", utc(2015, 1, 1, 10, 18, 20), "system", "video call ended (3 min 5 s)", "7-H0Z7-aaa06"),
    ]  # the OTR_MODIFICATION event carries nothing to read and is skipped
    group = [m for m in msgs if m.conversation == "Climbing crew"]
    assert [(m.author, m.kind, m.text) for m in group] == [
        ("Priya Nair", "system", "added 404"),
        ("Priya Nair", "system", "renamed the conversation to 'Climbing crew'"),
        ("404", "text", "Thanks for adding me"),  # no fallback_name: the gaia id; U+200E stripped
        ("555", "text", "who set up this group?"),  # not in participant_data at all
        ("404", "system", "left"),
    ]
    assert [m.conversation for m in msgs] == ["Lena Brandt"] * 6 + ["Climbing crew"] * 5


def test_legacy_conversation_state_layout():
    msgs = list(parse(LEGACY))
    assert [(m.conversation, m.author, m.sent_at, m.text) for m in msgs] == [
        ("Jon Park", "Jon Park", utc(2014, 1, 6, 12, 0), "did the package arrive?"),
        ("Jon Park", "Mia Costa", utc(2014, 1, 6, 12, 1), "yes, \nthis morning"),  # LINE_BREAK without text
    ]


def test_google_chat_space():
    msgs = list(parse(SPACE))
    assert {(m.platform, m.conversation) for m in msgs} == {("google-chat", "Book club")}
    assert [(m.author, m.sent_at, m.kind, m.text, m.reply_to) for m in msgs] == [
        ("Priya Nair", utc(2024, 1, 2, 10, 0), "text", "Next book: The Left Hand of Darkness?", None),
        ("Sam Okafor", datetime(2024, 1, 2, 11, 15, 30, tzinfo=timezone(timedelta(hours=1))), "text",
         "Yes! I have a copy", "AAAAq1w2e3/tQ1/tQ1"),  # U+202F before AM, "UTC+1", quoted reply
        ("Priya Nair", utc(2024, 1, 2, 13, 5, 9), "media", "", None),  # attached_files, no text
        ("Sam Okafor", utc(2024, 1, 2, 13, 6), "text", "https://books.example.org/left-hand", None),
        # deleted: sent, its text gone; a turn without text like a photo, author kept
        ("Priya Nair", utc(2024, 1, 3, 8, 0), "media", "", None),
    ]  # the bot's empty message (no text, no file) is skipped
    assert msgs[0].source_id == "AAAAq1w2e3/tQ1/tQ1"
    assert msgs[-1].source_id == "AAAAq1w2e3/tQ5/tQ5"


@pytest.mark.parametrize("mark", [{"deleted_date": "Monday, May 6, 2024 at 7:01:00 PM UTC"},
                                  {"message_state": "DELETED"}])
def test_google_chat_deleted_message_is_media_without_text(tmp_path, mark):
    d = tmp_path / "Space AAAAdd"
    d.mkdir()
    (d / "messages.json").write_text(json.dumps({"messages": [
        {"creator": {"name": "Ana"}, "created_date": "Monday, May 6, 2024 at 7:00:00 PM UTC", "text": "hi"},
        {"creator": {"name": "Ana"}, "created_date": "Monday, May 6, 2024 at 7:00:30 PM UTC",
         "text": "oops, wrong chat", **mark}]}))
    assert [(m.kind, m.text, m.author) for m in parse(d / "messages.json")] == [
        ("text", "hi", "Ana"), ("media", "", "Ana")]


def test_google_chat_dm_is_named_after_the_other_person():
    msgs = list(parse(DM))
    # group_info has no name; Users/*/user_info.json says the owner is Sam
    assert {m.conversation for m in msgs} == {"Lena Brandt"}
    assert msgs[0].sent_at == datetime(2024, 3, 1, 18, 30, tzinfo=timezone(-timedelta(hours=5)))
    assert msgs[0].text == "landed!\nsee you at baggage claim"
    assert [m.author for m in msgs] == ["Lena Brandt", "Sam Okafor"]


def test_google_chat_without_group_info_uses_the_folder(tmp_path):
    d = tmp_path / "Space AAAAzz"
    d.mkdir()
    (d / "messages.json").write_text(json.dumps({"messages": [{
        "creator": {"name": "Ana"}, "created_date": "Monday, May 6, 2024 at 7:00:00 PM PST", "text": "hi"}]}))
    [m] = parse(d / "messages.json")
    assert m.conversation == "Space AAAAzz"
    assert m.sent_at == datetime(2024, 5, 6, 19, 0, tzinfo=timezone(timedelta(hours=-8)))


@pytest.mark.parametrize("s, want", [
    ("Tuesday, January 2, 2024 at 10:00:00 AM UTC", utc(2024, 1, 2, 10, 0)),
    ("Tuesday, January 2, 2024 at 12:30:00\u202fAM UTC", utc(2024, 1, 2, 0, 30)),
    ("Tuesday, January 2, 2024 at 12:30:00 PM GMT+05:30",
     datetime(2024, 1, 2, 12, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
    ("January 2, 2024 at 18:04:05", datetime(2024, 1, 2, 18, 4, 5)),  # no zone: naive
    ("Tuesday, January 2, 2024 at 13:00:00 PM UTC", None),
    ("mardi 2 janvier 2024 à 10:00:00 UTC", None),
])
def test_parse_google_date(s, want):
    assert hangouts.parse_google_date(s) == want


def test_unreadable_date_is_an_error_with_the_place(tmp_path):
    p = tmp_path / "messages.json"
    p.write_text(json.dumps({"messages": [
        {"creator": {"name": "Ana"}, "created_date": "Tuesday, January 2, 2024 at 10:00:00 AM UTC", "text": "a"},
        {"creator": {"name": "Ana"}, "created_date": "yesterday", "text": "b"}]}))
    with pytest.raises(IngestError, match=r"messages\[1\]: cannot read created_date 'yesterday'"):
        list(parse(p))


def test_bad_hangouts_timestamp_is_an_error(tmp_path):
    data = json.loads(LEGACY.read_text("utf-8"))
    data["conversation_state"][0]["conversation_state"]["event"][1]["timestamp"] = "soon"
    p = tmp_path / "Hangouts.json"
    p.write_text(json.dumps(data))
    with pytest.raises(IngestError, match=r"conversation_state\[0\]\.events\[1\]: cannot read timestamp"):
        list(parse(p, format="hangouts"))


def test_detection():
    assert detect(HANGOUTS) == "hangouts"
    assert detect(LEGACY) == "hangouts"
    assert detect(SPACE) == "hangouts"
    for other in (GROUPS / "Space AAAAq1w2e3" / "group_info.json",
                  TAKEOUT / "Google Chat" / "Users" / "User 104417" / "user_info.json"):
        assert not hangouts.sniff(other)
    assert not hangouts.sniff(TAKEOUT)
    # the whole Takeout folder: both conversations found by walking it
    convs = {(m.platform, m.conversation) for m in parse(TAKEOUT)}
    assert convs == {("google-chat", "Book club"), ("google-chat", "Lena Brandt")}


@pytest.mark.parametrize("doc", [
    {"messages": [{"author": {"name": "Ana"}, "timestamp": "2024-01-01T10:00:00", "content": "hi"}]},  # Discord
    {"name": "Ana", "type": "personal_chat", "id": 1, "messages": [{"id": 1, "from": "Ana", "text": "hi"}]},  # Telegram
    {"participants": [{"name": "Ana"}], "messages": [{"sender_name": "Ana", "timestamp_ms": 1, "content": "hi"}]},
])
def test_other_apps_json_not_claimed(tmp_path, doc):
    p = tmp_path / "result.json"
    p.write_text(json.dumps(doc, indent=2))
    assert not hangouts.sniff(p)


VALID = HANGOUTS.read_bytes()
VALID_CHAT = SPACE.read_bytes()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(splices(VALID, max_cut=30), splices(VALID_CHAT, max_cut=30)))
def test_mutated_files_parse_or_ingest_error(data):
    msgs = assert_parses_or_ingest_error(data, "messages.json", "hangouts")
    assert all(m.sent_at.tzinfo for m in msgs or [])


@settings(max_examples=60, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["messages", "conversations", "conversation", "events", "creator", "created_date",
                         "text", "timestamp", "chat_message", "segment", "participant_data", "id",
                         "gaia_id", "sender_id", "membership_change", "attached_files"]), kids, max_size=4),
    max_leaves=20))
def test_random_json_structures_parse_or_ingest_error(doc):
    # direct: the module itself, without the core's safety net: only precise errors
    assert_parses_or_ingest_error(json.dumps(doc).encode(), "Hangouts.json", "hangouts", direct=True,
                                  precise=True)
