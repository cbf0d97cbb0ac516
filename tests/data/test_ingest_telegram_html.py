"""Telegram Desktop HTML export: a hand-written two-page chat folder and an older one-page export."""
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error, splices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import likeme.data.ingest
from likeme.data.ingest import detect, telegram_html
from likeme.errors import IngestError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "telegram_html"
CHAT = FIX / "Hiking_Club"
OLD = FIX / "old_export"
CEST = timezone(timedelta(hours=2))


def msgs(path):
    return list(likeme.data.ingest.parse(path, format="telegram-html"))


def test_two_pages_read_in_order_as_one_conversation():
    m = msgs(CHAT)
    assert [x.source_id for x in m] == [str(i) for i in range(101, 112)]
    assert {x.conversation for x in m} == {"Hiking Club & Friends"}  # entity unescaped
    assert {x.platform for x in m} == {"telegram"}
    assert [x.kind for x in m] == ["system", "text", "text", "text", "media", "media", "text",
                                   "system", "text", "text", "media"]
    assert [x.author for x in m] == ["", "Lena Fischer", "Lena Fischer", "Tomás Ortega", "Lena Fischer",
                                     "Tomás Ortega", "Tomás Ortega", "", "Aiko Kato", "Aiko Kato",
                                     "Lena Fischer"]


def test_text_markup_becomes_plain_text():
    by_id = {x.source_id: x for x in msgs(CHAT)}
    assert by_id["102"].text == ("Morning all! Route for Saturday is Rocky Ridge <12 km>\n"
                                 "Meet at 7 at the car park, details: example.org/ridge")
    assert by_id["107"].text == 'He\'s very "well behaved"'  # &#39; and &quot;
    assert by_id["109"].text == "so cute"  # <em>
    # "via @gif" in from_name is not part of the name.
    assert by_id["109"].author == "Aiko Kato"
    # A forwarded message keeps the forwarder as author and the forwarded words as text.
    assert (by_id["110"].author, by_id["110"].text) == ("Aiko Kato", "Saturday: sunny, 18°C, light wind")


def test_joined_messages_continue_the_author_even_across_pages():
    by_id = {x.source_id: x for x in msgs(CHAT)}
    assert by_id["103"].author == "Lena Fischer"
    assert by_id["107"].author == "Tomás Ortega"  # first message of messages2.html
    # Parsing the second page on its own still knows who wrote the joined message.
    alone = msgs(CHAT / "messages2.html")
    assert alone[0].source_id == "107" and alone[0].author == "Tomás Ortega"
    assert len(alone) == 5


def test_media_replies_and_service_messages():
    by_id = {x.source_id: x for x in msgs(CHAT)}
    assert (by_id["105"].kind, by_id["105"].text) == ("media", "The view from last time")
    assert (by_id["106"].kind, by_id["106"].text) == ("media", "")  # sticker: "Sticker" title is not text
    assert (by_id["111"].kind, by_id["111"].text) == ("media", "")  # voice message
    assert by_id["104"].reply_to == "102"
    assert by_id["109"].reply_to == "106"  # reply pointing into the previous page
    assert by_id["101"].text == "Lena Fischer created group «Hiking Club & Friends»"
    assert by_id["108"].text == "Lena Fischer pinned this message"
    # Service messages have no time of their own: the next message of the same day dates them.
    assert by_id["101"].sent_at == by_id["102"].sent_at
    assert by_id["108"].sent_at == by_id["109"].sent_at  # 15 May, not the 14 May message before it


def test_dates_with_and_without_utc_offset():
    by_id = {x.source_id: x for x in msgs(CHAT)}
    assert by_id["102"].sent_at == datetime(2023, 5, 14, 9, 15, 2, tzinfo=CEST)
    assert by_id["102"].sent_at.utcoffset() == timedelta(hours=2)
    old = msgs(OLD)
    assert [(x.author, x.sent_at) for x in old] == [("Priya Raman", datetime(2019, 2, 3, 21, 4, 59)),
                                                    ("You", datetime(2019, 2, 3, 21, 10, 12))]
    assert old[0].sent_at.tzinfo is None
    assert old[1].text == "yes, thanks!\n\nthe train was late though"
    assert {x.conversation for x in old} == {"Priya Raman"}


def test_sniff_and_detection(tmp_path):
    assert telegram_html.sniff(CHAT) and telegram_html.sniff(CHAT / "messages.html")
    assert telegram_html.sniff(CHAT / "messages2.html")
    assert detect(CHAT) == "telegram-html" and detect(OLD / "messages.html") == "telegram-html"
    other = tmp_path / "index.html"
    other.write_text("<html><body><div class='page_wrap'>hi</div></body></html>")
    renamed = tmp_path / "chat.html"
    shutil.copy(CHAT / "messages.html", renamed)
    assert not telegram_html.sniff(other) and not telegram_html.sniff(renamed)
    assert not telegram_html.sniff(tmp_path) and not telegram_html.sniff(FIX)
    # A full export folder: the core walks into chats/chat_001 and the folder is claimed there.
    export = tmp_path / "DataExport_2023-05-16"
    shutil.copytree(CHAT, export / "chats" / "chat_001")
    shutil.copytree(OLD, export / "chats" / "chat_002")
    (export / "export_results.html").write_text("<html><body>Exported Data</body></html>")
    got = list(likeme.data.ingest.parse(export))
    assert [x.conversation for x in got].count("Hiking Club & Friends") == 11
    assert got[-1].conversation == "Priya Raman"


def test_bad_date_is_an_ingest_error(tmp_path):
    page = (OLD / "messages.html").read_text().replace("03.02.2019 21:10:12", "31.02.2019 21:10:12")
    (tmp_path / "messages.html").write_text(page)
    with pytest.raises(IngestError, match=r"messages\.html: line \d+: not a valid date"):
        msgs(tmp_path)


_PAGES = [(CHAT / "messages.html").read_bytes(), (CHAT / "messages2.html").read_bytes()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_pages_raise_only_ingest_errors(data):
    page = data.draw(st.sampled_from(_PAGES))
    if data.draw(st.booleans()):
        filler = st.sampled_from([b"", b"<div>", b"</div>", b'<div class="message default">',
                                  b'title="99.99.2023 10:00:00 UTC+01:00"', b"\xff\xfe", b"<br>"])
        page = data.draw(splices(page, max_cut=200, junk=st.tuples(filler, st.binary(max_size=10)).map(b"".join)))
    else:
        page = data.draw(st.binary(max_size=300))
    assert_parses_or_ingest_error(page, "messages.html", "telegram-html", target=".", precise=True)
