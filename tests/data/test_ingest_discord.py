"""DiscordChatExporter JSON and CSV: hand-written fixtures plus the real DM sample."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, field_mutations, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import likeme.data.ingest
from likeme.data.ingest import detect, discord, discord_csv
from likeme.errors import IngestError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "discord"
GUILD_JSON = FIX / "makers_general.json"
DM_CSV = FIX / "Direct Messages - Private - sam.lee [530000000000000001].csv"
OLD_CSV = FIX / "Makers Guild - Text Channels - workshop-talk [812345678901235000].csv"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL_DM = SHARED / "chat_exports" / "discord" / "chat-analytics" / "tests" / "samples" / "discord" / "DM_2A_2M.json"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="shared real exports not present")
CEST = timezone(timedelta(hours=2))


# -- JSON ---------------------------------------------------------------------------------------

def test_json_guild_channel_authors_and_kinds():
    m = list(likeme.data.ingest.parse(GUILD_JSON, format="discord"))
    assert {x.conversation for x in m} == {"Makers Guild / #general"}
    assert {x.platform for x in m} == {"discord"}
    # The account name, not the server nickname ("Ada (mod)").
    assert [x.author for x in m] == ["kai.dev", "ada_l", "kai.dev", "kai.dev", "ada_l", "Grace", "Grace", "Grace"]
    assert [x.kind for x in m] == ["system", "text", "text", "media", "system", "media", "system", "text"]
    assert [x.source_id for x in m] == [f"110000000000000000{i}" for i in range(1, 9)]


def test_json_text_mentions_emoji_and_replies():
    m = list(likeme.data.ingest.parse(GUILD_JSON, format="discord"))
    assert m[1].text == "welcome @kai.dev 👋 grab a :solder: and say hi"
    assert m[2].text == "thanks!! first project:\nan LED cube"
    assert m[2].reply_to == "1100000000000000002"
    assert m[3].text == "" and m[5].text == ""  # attachment only, sticker only
    assert m[7].text == "@ada_l the 🧲 on the 3D printer is loose again"  # <@!id>, bidi mark removed
    assert m[1].sent_at == datetime(2023, 6, 1, 8, 1, 15, 512000, tzinfo=CEST)
    assert m[2].sent_at.microsecond == 100000  # ".1" fraction
    assert m[6].sent_at == datetime(2023, 6, 1, 9, 0, tzinfo=timezone.utc)  # "Z"
    assert m[7].sent_at.utcoffset() == timedelta(hours=-4)


def test_json_lone_surrogates_are_rejoined(tmp_path):
    # Some tools write each half of an emoji's surrogate pair as UTF-8 (CESU-8): strict UTF-8
    # refuses the bytes; we read them and rejoin the halves.
    doc = json.loads(GUILD_JSON.read_text(encoding="utf-8"))
    doc["messages"][7]["content"] = "magnet \ud83e\uddf2 time"
    raw = json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    p = tmp_path / "cesu.json"
    p.write_bytes(raw)
    assert list(likeme.data.ingest.parse(p, format="discord"))[7].text == "magnet 🧲 time"
    assert discord._fix("\ud83d\ude00!") == "😀!"


def test_json_sniff_and_detection(tmp_path):
    assert discord.sniff(GUILD_JSON) and detect(GUILD_JSON) == "discord"
    assert not discord.sniff(FIX)
    tg = Path(__file__).resolve().parents[1] / "fixtures" / "telegram" / "group_chat.json"
    assert not discord.sniff(tg) and not discord.sniff(DM_CSV)
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"messages": [{"content": "hi"}], "guild": "no"}))
    assert not discord.sniff(p)


def test_json_errors_name_the_place(tmp_path):
    doc = json.loads(GUILD_JSON.read_text(encoding="utf-8"))
    doc["messages"][2]["timestamp"] = "last tuesday"
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(IngestError, match=r"messages\[2\]\.timestamp"):
        list(likeme.data.ingest.parse(p, format="discord"))


@needs_shared
def test_real_dm_sample():
    assert detect(REAL_DM) == "discord"
    m = list(likeme.data.ingest.parse(REAL_DM))
    assert [(x.author, x.text, x.kind) for x in m] == [
        ("mlomb", "blah", "text"),
        ("Someones name", "something something text", "text"),
        ("Someones name", "Started a call that lasted 251 minutes.", "system"),
    ]
    assert {x.conversation for x in m} == {"Someones name"}  # a DM: the channel's name
    assert m[0].sent_at == datetime(2019, 1, 4, 17, 52, 39, 762000, tzinfo=timezone.utc)
    assert m[2].source_id == "100"


# -- CSV ----------------------------------------------------------------------------------------

def test_csv_new_format():
    m = list(likeme.data.ingest.parse(DM_CSV, format="discord-csv"))
    assert {x.conversation for x in m} == {"sam.lee"}
    assert {x.platform for x in m} == {"discord"}
    assert [x.author for x in m] == ["ada_l", "sam.lee", "sam.lee", "ada_l", "ada_l"]
    assert [x.kind for x in m] == ["text", "text", "media", "system", "text"]
    assert m[1].text == 'yes!! "if" the train runs\nbringing the cube, too'  # quoted, multi-line, CRLF
    assert m[2].text == ""
    assert m[4].text == "see you ☺ :party:"  # content with an attachment stays text
    assert m[0].sent_at == datetime(2023, 6, 3, 20, 15, 0, 123000, tzinfo=CEST)
    assert all(x.source_id is None and x.reply_to is None for x in m)


def test_csv_old_dates_system_texts_and_discriminators():
    m = list(likeme.data.ingest.parse(OLD_CSV, format="discord-csv"))
    assert {x.conversation for x in m} == {"Makers Guild / #workshop-talk"}
    assert [x.author for x in m] == ["Grace", "Grace", "Kai", "Kai", "Grace"]
    assert [x.kind for x in m] == ["system", "system", "system", "text", "text"]
    assert m[0].text == "Changed the channel name: workshop-talk"
    assert m[3].sent_at == datetime(2021, 3, 4, 13, 6) and m[3].sent_at.tzinfo is None
    assert m[4].sent_at == datetime(2021, 3, 5, 8, 30)


def test_csv_conversation_from_file_name():
    conv = discord_csv._conversation
    assert conv(Path("Friends - Text Channels - general [123].csv")) == "Friends / #general"
    assert conv(Path("Direct Messages - Private - Sam [53].csv")) == "Sam"
    assert conv(Path("A - B - Guild - Cat - chan [9] (after 2020-01-01) [part 2].csv")) == "A - B - Guild / #chan"
    assert conv(Path("notes.csv")) == "notes"


def test_csv_sniff_and_detection(tmp_path):
    assert discord_csv.sniff(DM_CSV) and discord_csv.sniff(OLD_CSV)
    assert detect(DM_CSV) == "discord-csv"
    assert list(likeme.data.ingest.parse(OLD_CSV))[3].text == "who has the hot glue gun?"
    other = tmp_path / "table.csv"
    other.write_text("name,date,text\nA,2021-01-01,hi\n")
    assert not discord_csv.sniff(other) and not discord_csv.sniff(GUILD_JSON) and not discord_csv.sniff(FIX)


def test_csv_errors_name_the_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text('AuthorID,Author,Date,Content,Attachments,Reactions\n"1","a","2021-01-01T00:00:00+00:00","ok","",""\n'
                 '"1","a","someday","bad","",""\n')
    with pytest.raises(IngestError, match="line 3"):
        list(likeme.data.ingest.parse(p, format="discord-csv"))
    p.write_text('AuthorID,Author,Date,Content\n"1","a"\n')
    with pytest.raises(IngestError, match="line 2: expected 4 columns"):
        list(likeme.data.ingest.parse(p, format="discord-csv"))


# -- property tests -------------------------------------------------------------------------------

_JSON = GUILD_JSON.read_bytes()
_CSV = DM_CSV.read_bytes()


# precise: our own error, not a crash the core had to wrap ("cannot read as")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    splices(_JSON, max_cut=60, junk=st.binary(max_size=20)),
    field_mutations(_JSON, ["id", "type", "timestamp", "content", "author", "attachments", "reference",
                            "mentions", "stickers"], ["guild", "channel", "messages"]),
))
def test_fuzz_json(blob):
    assert_parses_or_ingest_error(blob, "export.json", "discord", precise=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=300), splices(_CSV, max_cut=60, junk=st.binary(max_size=20))))
def test_fuzz_csv(blob):
    assert_parses_or_ingest_error(blob, "chan [1].csv", "discord-csv", precise=True)
