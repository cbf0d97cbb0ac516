"""Slack workspace export: users, channels, DMs, threads, bots, markup, kinds; folder and zip."""
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, mutations
from hypothesis import HealthCheck, given, settings

from likeme.data.ingest import detect, parse, slack
from likeme.errors import IngestError

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "slack" / "export"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL_ZIP = SHARED / "chat_exports" / "slack" / "langchain-community" / "libs" / "community" / "tests" / "examples" / "slack_export.zip"


def by_conversation(msgs):
    out = {}
    for m in msgs:
        out.setdefault(m.conversation, []).append(m)
    return out


def test_folder_export_channels_dms_and_order():
    msgs = list(parse(EXPORT))
    assert {m.platform for m in msgs} == {"slack"}
    convs = by_conversation(msgs)
    # channels "#name", private channels too; DMs and group DMs by member names
    assert list(convs) == ["ana.r, Sam Okafor", "#general", "ana.r, Sam Okafor, kim", "#secret-plans"]
    for ms in convs.values():
        assert [m.sent_at for m in ms] == sorted(m.sent_at for m in ms)
    assert [(m.author, m.text) for m in convs["ana.r, Sam Okafor"]] == [("Sam Okafor", "lunch?"), ("ana.r", "yes, 12:30")]
    assert len(msgs) == 15


def test_dm_title_leaves_out_me():
    convs = by_conversation(parse(EXPORT, me="ana.r"))
    assert "Sam Okafor" in convs and "Sam Okafor, kim" in convs


def test_general_channel_authors_markup_kinds_threads():
    gen = by_conversation(parse(EXPORT))["#general"]
    got = [(m.author, m.kind, m.text, m.reply_to, m.source_id) for m in gen]
    assert got == [
        ("kim", "system", "@kim has joined the channel", None, "1709287200.000100"),
        ("ana.r", "text",
         "Hi @kim! Rules are in #random & #general, see the rules (https://example.org/rules) "
         "or https://example.org or example.org", None, "1709287260.000200"),
        ("kim", "text", "thanks <3 @here @devs kim@example.org", "1709287260.000200", "1709287320.000300"),
        ("Deploy Bot", "text", "Deployed v1.2 :rocket:", None, "1709287380.000400"),  # bot_message + username
        ("Weather", "text", "Sunny, 18°C", None, "1709287440.000500"),  # bot_profile.name, no user
        ("ana.r", "system", "set the channel topic: launch week", None, "1709287500.000600"),
        ("Sam Okafor", "media", "", None, "1709373600.000700"),  # a file, no text
        ("ana.r", "media", "the new logo", None, "1709373660.000800"),  # file_share with a caption
        ("Guest Person", "text", "guest here, hi @channel", None, "1709373720.000900"),  # user_profile fallback
        ("Sam Okafor", "system", "@Sam Okafor pinned a message to this channel.", None, "1709373780.001000"),
        ("Sam Okafor", "text", "also sent to the channel", "1709287260.000200", "1709373840.001100"),
    ]
    assert gen[0].sent_at == datetime(2024, 3, 1, 10, 0, 0, 100, tzinfo=timezone.utc)


@pytest.mark.parametrize("raw, shown", [
    ("<@U01ANA>", "@ana.r"),
    ("<@U01ANA|ana>", "@ana"),
    ("<@UNKNOWN>", "@UNKNOWN"),
    ("<#C01GEN|general>", "#general"),
    ("<#C02RND>", "#random"),
    ("<https://a.org/x|docs>", "docs (https://a.org/x)"),
    ("<https://a.org/x>", "https://a.org/x"),
    ("<http://a.org/|a.org>", "a.org"),
    ("<!here>", "@here"),
    ("<!channel>", "@channel"),
    ("<!everyone>", "@everyone"),
    ("<!subteam^S1|@team>", "@team"),
    ("<!date^1392734382^{date}|Feb 18th>", "Feb 18th"),
    ("a &lt;b&gt; &amp;amp; c", "a <b> &amp; c"),  # one level of unescaping only
    ("<https://a.org/?q=1&amp;r=2|search>", "search (https://a.org/?q=1&r=2)"),
])
def test_markup(raw, shown):
    ws = slack._Workspace(EXPORT, None)
    assert ws.render(raw) == shown


def test_zip_built_from_the_folder(tmp_path):
    z = tmp_path / "Acme Slack export Mar 1 2024 - Mar 2 2024.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(EXPORT.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(EXPORT).as_posix())
    from_zip = [(m.conversation, m.author, m.text, m.kind, m.sent_at) for m in parse(z)]
    from_dir = [(m.conversation, m.author, m.text, m.kind, m.sent_at) for m in parse(EXPORT)]
    assert from_zip == from_dir


def test_single_channel_folder(tmp_path):
    ch = tmp_path / "design"
    shutil.copytree(EXPORT / "general", ch)
    assert detect(ch) == "slack"
    msgs = list(parse(ch))
    assert {m.conversation for m in msgs} == {"#design"}
    assert len(msgs) == 11
    # without users.json, names come from the ids (or the message's own profile)
    assert msgs[1].author == "U01ANA" and msgs[8].author == "Guest Person"


def test_sniff():
    assert slack.sniff(EXPORT)
    assert not slack.sniff(EXPORT / "users.json")
    assert not slack.sniff(EXPORT / "general" / "2024-03-01.json")
    with tempfile.TemporaryDirectory() as d:
        assert not slack.sniff(Path(d))
        (Path(d) / "users.json").write_text("[]")
        assert not slack.sniff(Path(d))  # users.json alone is not an export


@pytest.mark.parametrize("day, where", [
    ('[{"type": "message", "user": "U1", "text": "x"}]', "[0]"),          # no ts
    ('[{"type": "message", "user": "U1", "text": "x", "ts": "soon"}]', "[0]"),
    ('[{"type": "message", "ts": "1.0"}, 7]', "[1]"),
    ('{"type": "message"}', None),
    ('[{"type": "message",', "line 1"),
])
def test_malformed_day_file(tmp_path, day, where):
    root = tmp_path / "export"
    shutil.copytree(EXPORT, root)
    (root / "general" / "2024-03-02.json").write_text(day)
    with pytest.raises(IngestError) as e:
        list(parse(root))
    assert "2024-03-02.json" in str(e.value)
    if where:
        assert where in str(e.value)


@pytest.mark.skipif(not REAL_ZIP.exists(), reason="shared sample exports not present")
def test_real_langchain_export():
    msgs = list(parse(REAL_ZIP))
    words = [m for m in msgs if m.kind != "system"]
    assert [(m.conversation, m.text) for m in words] == [
        ("#example-channel", "Example message"),
        ("#general", "Hello, world!"),
        ("#general", "Example in general"),
        ("#random", "Example random message"),
    ]
    # the user is missing from users.json: the name comes from the message's user_profile
    assert {m.author for m in msgs} == {"Example User"}
    system = [m for m in msgs if m.kind == "system"]
    assert [(m.text, m.conversation) for m in system] == [("@Example User has joined the channel", "#example-channel")]
    assert words[1].sent_at == datetime(2023, 4, 13, 19, 15, 17, 397479, tzinfo=timezone.utc)
    assert words[1].source_id == "1681413317.397479"


_VALID = (EXPORT / "general" / "2024-03-01.json").read_bytes()


_BESIDE = {f"export/{name}": (EXPORT / name).read_bytes() for name in ("users.json", "channels.json")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations(_VALID, max_bytes=300, max_changes=8))
def test_random_day_file_parses_or_raises_ingest_error(data):
    msgs = assert_parses_or_ingest_error(data, "export/general/2024-03-01.json", "slack",
                                         beside=_BESIDE, target="export")
    assert all(m.platform == "slack" for m in msgs or [])
