"""WhatsApp exports: our own fixtures (one per quirk) and the real exports in ../shared/data."""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from fuzz import assert_parses_or_ingest_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from likeme.data.ingest import detect, parse
from likeme.data.ingest import whatsapp as wa
from likeme.errors import IngestError

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL = SHARED / "chat_exports" / "whatsapp"
needs_shared = pytest.mark.skipif(not REAL.exists(), reason="shared real exports not present")


def read(name: str, **kw):
    return list(parse(FIX / name, **kw))


def rows(msgs):
    return [(m.sent_at, m.author, m.kind, m.text) for m in msgs]


# --- fixtures: one per quirk ------------------------------------------------------------------

def test_android_24h_day_first_group_chat():
    msgs = read("WhatsApp Chat with Hiking Club (1).txt")
    assert {m.platform for m in msgs} == {"whatsapp"}
    assert {m.conversation for m in msgs} == {"Hiking Club"}  # "WhatsApp Chat with X (1)" -> X
    assert rows(msgs) == [
        (datetime(2023, 3, 14, 9, 0), "", "system",
         "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, "
         "can read or listen to them. Tap to learn more."),
        (datetime(2023, 3, 14, 9, 0), "Mara Lind", "system", 'Mara Lind created group "Hiking Club"'),
        (datetime(2023, 3, 14, 9, 1), "Mara Lind", "system", "Mara Lind added Tomás"),
        (datetime(2023, 3, 14, 9, 1), "Mara Lind", "system", "Mara Lind added +49\xa0151\xa02345\xa06789"),
        (datetime(2023, 3, 14, 9, 2), "Mara Lind", "text", "Welcome! Plan for Saturday: meet at 8, bring water."),
        (datetime(2023, 3, 14, 9, 5), "Tomás", "text",
         "Sounds good\nCan we start at 9 instead?\nTrains are slow on weekends."),
        (datetime(2023, 3, 14, 9, 6), "+49 151 2345 6789", "text", "👍"),  # U+202A/NBSP cleaned
        (datetime(2023, 3, 14, 9, 7), "Mara Lind", "media", ""),
        (datetime(2023, 3, 14, 9, 7), "Mara Lind", "media", "Map of the trail"),  # caption on the next line
        (datetime(2023, 3, 14, 9, 8), "Tomás", "media", "IMG-20230314-WA0003.jpg"),
        # deleted messages: a turn the person sent whose text is gone, like a photo
        (datetime(2023, 3, 14, 9, 9), "Tomás", "media", ""),  # "This message was deleted"
        (datetime(2023, 3, 14, 9, 10), "Mara Lind", "media", ""),  # "You deleted this message"
        (datetime(2023, 3, 14, 9, 11), "Tomás", "text", "Fine, 9 it is"),  # "<This message was edited>" dropped
        # ": " inside the quoted subject must not make "Mara Lind changed the subject …" an author
        (datetime(2023, 3, 15, 18, 30), "Mara Lind", "system",
         'Mara Lind changed the subject from "Hiking Club" to "Hiking Club: spring"'),
        (datetime(2023, 3, 15, 18, 31), "🌲🌲", "text", "Hi all, I'm the new one"),  # emoji-only name
        (datetime(2023, 3, 15, 18, 32), "Tomás", "system", "Tomás left"),
        (datetime(2023, 3, 15, 18, 40), "Mara Lind", "system", "Missed voice call"),
    ]
    assert all(m.sent_at.tzinfo is None and m.reply_to is None and m.source_id is None for m in msgs)


def test_ios_12h_narrow_nbsp_marks_and_notices_with_an_author():
    msgs = read("WhatsApp Chat - Priya Nair.txt")
    assert {m.conversation for m in msgs} == {"Priya Nair"}
    assert rows(msgs) == [
        # iOS writes the chat's name before its own notices; they are not Priya's words
        (datetime(2024, 2, 1, 9, 15, 2), "", "system",
         "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, "
         "can read or listen to them."),
        (datetime(2024, 2, 1, 9, 15, 40), "Priya Nair", "text", "Good morning! Did you get the tickets?"),
        (datetime(2024, 2, 1, 9, 16, 5), "Leo Park", "text", "Yes: two seats, row F."),
        (datetime(2024, 2, 1, 9, 16, 30), "Leo Park", "media", ""),
        (datetime(2024, 2, 1, 9, 17), "Leo Park", "media", "Seating plan.pdf • 3 pages"),
        (datetime(2024, 2, 1, 12, 1, 10), "Priya Nair", "media", ""),  # <attached: …jpg>
        (datetime(2024, 2, 1, 12, 2), "Priya Nair", "media", ""),
        (datetime(2024, 2, 1, 12, 30), "Priya Nair", "media", ""),  # "\u200eThis message was deleted."
        (datetime(2024, 2, 1, 12, 31), "Leo Park", "media", ""),  # "\u200eYou deleted this message."
        (datetime(2024, 2, 1, 12, 45), "Leo Park", "text", "See you at the entrance"),
        (datetime(2024, 2, 2, 20, 0), "", "system", "Your security code with Leo Park changed. Tap to learn more."),
        (datetime(2024, 2, 3, 0, 5), "Sam", "text", "Sorry, wrong chat"),  # "~\u202fSam": not a contact; 12 AM = 0h
        (datetime(2024, 2, 3, 7, 45), "Leo Park", "media", ""),
    ]
    assert not any("\u200e" in m.text or "\u202f" in m.author for m in msgs)


def test_us_month_first_when_every_date_fits_both_orders():
    # 1/2/23, 2/2/23, 3/3/23 go up either way; the upper-case AM/PM clock says US, so month first.
    msgs = read("us_mmdd.txt")
    assert [m.sent_at for m in msgs] == [
        datetime(2023, 1, 2, 20, 5), datetime(2023, 1, 2, 20, 7), datetime(2023, 2, 2, 0, 10),
        datetime(2023, 2, 2, 12, 15), datetime(2023, 3, 3, 9, 0),
    ]


def test_day_first_because_only_that_order_goes_up_spanish_a_m():
    # 3/4, 5/4, 2/5: day first is 3 Apr -> 5 Apr -> 2 May; month first would go back to 5 Feb.
    msgs = read("espanol_android.txt")
    assert rows(msgs) == [
        (datetime(2023, 4, 3, 9, 15), "Lucía", "text", "Hola, ¿vienes mañana?"),
        (datetime(2023, 4, 3, 9, 20), "Diego", "text", "Sí, llego a las 5"),
        (datetime(2023, 4, 5, 17, 2), "Diego", "media", ""),  # "<Multimedia omitido>", "p.\xa0m."
        (datetime(2023, 4, 5, 17, 3), "Lucía", "media", ""),  # "Se eliminó este mensaje": deleted
        (datetime(2023, 5, 2, 12, 30), "Lucía", "text", "¡Qué bien lo pasamos!"),
    ]


@pytest.mark.parametrize("header, body", [
    ("14/03/2023, 09:09 - ", "This message was deleted"),
    ("[3/14/23, 9:09:00 AM] ", "\u200eYou deleted this message."),
    ("[3/14/23, 9:09:00 AM] ", "\u200eWaiting for this message. This may take a while."),
    ("[14.03.23, 09:09:00] ", "\u200eDiese Nachricht wurde gelöscht."),
    ("14/03/2023, 09:09 - ", "Ce message a été supprimé"),
    ("14/03/2023, 09:09 - ", "Данное сообщение удалено"),
])
def test_deleted_message_is_media_without_text_and_keeps_its_author(tmp_path, header, body):
    p = tmp_path / "chat.txt"
    p.write_text(f"{header}Ana Lima: hi\n{header}Ana Lima: {body}\n{header}Ana Lima: Missed voice call\n",
                 encoding="utf-8")
    assert [(m.kind, m.text, m.author) for m in parse(p, format="whatsapp")] == [
        ("text", "hi", "Ana Lima"), ("media", "", "Ana Lima"), ("system", "Missed voice call", "Ana Lima")]


def test_iso_dates_and_bodies_with_colons():
    msgs = read("iso_dates.txt")
    assert rows(msgs) == [
        (datetime(2023, 11, 5, 7, 45), "Ines", "text", "Flight lands at 10:20"),
        (datetime(2023, 11, 5, 7, 46), "Ines", "text", "Link: https://example.org/flight?id=42"),
        (datetime(2023, 11, 6, 21, 3), "Ravi", "text", "Thanks, see you!"),
    ]


def test_german_dotted_dates_and_localized_notices():
    msgs = read("deutsch_ios.txt")
    assert [(m.sent_at, m.author, m.kind) for m in msgs] == [
        (datetime(2023, 4, 2, 10, 0, 0), "", "system"),
        (datetime(2023, 4, 2, 10, 0, 5), "Jonas Weber", "text"),
        (datetime(2023, 4, 2, 10, 1, 0), "Anke Weber", "text"),
        (datetime(2023, 4, 2, 10, 2, 30), "Anke Weber", "media"),  # "Bild weggelassen"
        (datetime(2023, 4, 2, 10, 3, 0), "Jonas Weber", "media"),  # "Diese Nachricht wurde gelöscht."
        (datetime(2023, 4, 13, 18, 20), "Anke Weber", "text"),
    ]


def test_arabic_indic_digits_rtl_marks_and_arabic_am_pm():
    msgs = read("arabic_ios.txt")
    assert rows(msgs)[1:] == [
        (datetime(2023, 6, 5, 8, 6, 10), "Omar", "text", "صباح الخير"),
        (datetime(2023, 6, 14, 21, 30), "+20 100 555 0101", "text", "مساء النور"),  # "م" = PM
        (datetime(2023, 6, 14, 21, 31), "Omar", "media", ""),  # "لم يتم إدراج الصورة"
    ]
    assert (msgs[0].kind, msgs[0].author, msgs[0].sent_at) == ("system", "", datetime(2023, 6, 5, 8, 5))


def test_crlf_and_no_final_newline():
    msgs = read("crlf_no_final_newline.txt")
    assert [(m.author, m.text) for m in msgs] == [
        ("Ada", "last train?"), ("Ben", "missed it\nwalking home"), ("Ada", "be safe")]


def test_zip_with_chat_txt_and_media_takes_the_zips_name():
    msgs = read("WhatsApp Chat - Dana Cho.zip")
    assert {m.conversation for m in msgs} == {"Dana Cho"}
    assert [(m.author, m.kind, m.text) for m in msgs] == [
        ("", "system", "Messages and calls are end-to-end encrypted. No one outside of this chat, "
                       "not even WhatsApp, can read or listen to them."),
        ("Dana Cho", "text", "Dinner at mine?"),
        ("Kim", "media", ""),
        ("Kim", "text", "Yes please"),
    ]


def test_export_folder_is_walked_not_claimed(tmp_path):
    folder = tmp_path / "WhatsApp Chat - Bo"
    folder.mkdir()
    (folder / "_chat.txt").write_text("[1/2/23, 10:00:00] Bo: hey\n", encoding="utf-8")
    (folder / "00000001-PHOTO.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\xff\xd9")
    assert not wa.sniff(folder)
    assert wa.sniff(folder / "_chat.txt")
    msgs = list(parse(folder))
    assert [(m.conversation, m.author, m.text) for m in msgs] == [("Bo", "Bo", "hey")]


@pytest.mark.parametrize("name", [p.name for p in FIX.glob("*.txt")])
def test_detection_picks_whatsapp(name):
    assert detect(FIX / name) == "whatsapp"


@pytest.mark.parametrize("text", [
    "[2019-12-24, 12:23] Jane Doe: Hello John!\n[2020-01-17, 21:49] John Doe: Hello\nJane!\n",  # signal-export
    "[2021-08-03 13:40:58] Ana: Saturday?  \n[2021-08-03 13:42:10] Me: Yes!  \n",  # signal-export chat.md
    "Jane: hello\nJohn: hi there\n",  # a transcript without dates
    "2023-01-05 10:00:01 INFO starting\n",
    "",
])
def test_sniff_leaves_other_formats_alone(tmp_path, text):
    p = tmp_path / "chat.txt"
    p.write_text(text, encoding="utf-8")
    assert not wa.sniff(p)


def test_sniff_binary_and_missing_files(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" * 50)
    assert not wa.sniff(p)
    assert not wa.sniff(tmp_path / "nope.txt")


@pytest.mark.parametrize("stem, name", [
    ("WhatsApp Chat with Sam (1)", "Sam"),
    ("WhatsApp Chat - Ana Souza", "Ana Souza"),
    ("WhatsApp Chat with +1 (571) 370-4480", "+1 (571) 370-4480"),
    ("WhatsApp%20Chat%20with%20Sue", "Sue"),
    ("notes", "notes"),
])
def test_conversation_name(stem, name):
    assert wa.conversation_name(Path(f"/x/{stem}.txt")) == name
    assert wa.conversation_name(Path(f"/x/{stem}/_chat.txt")) == name


@pytest.mark.parametrize("dates, us_clock, day_first", [
    (["01/02/23", "13/02/23"], False, True),  # a first field above 12
    (["02/01/23", "02/13/23"], False, False),  # a second field above 12
    (["03/04/23", "05/04/23", "02/05/23"], False, True),  # only day-first goes up
    (["04/03/23", "04/05/23", "05/02/23"], False, False),  # only month-first goes up
    (["01/02/23", "02/02/23"], False, True),  # a tie: day first ...
    (["01/02/23", "02/02/23"], True, False),  # ... unless the clock is US AM/PM
])
def test_infer_day_month_order(dates, us_clock, day_first):
    assert wa._infer_orders(dates, us_clock) == {"/": day_first}


@pytest.mark.parametrize("time_s, marker, expected", [
    ("9:41", "PM", (21, 41, 0)), ("12:05:09", "a. m.", (0, 5, 9)), ("12:30", "p.\xa0m.", (12, 30, 0)),
    ("13:37", "p.m.", (13, 37, 0)), ("٩:٤١", "م", (21, 41, 0)), ("下午3:45", None, (15, 45, 0)),
    ("07:15", None, (7, 15, 0)),
])
def test_clock(time_s, marker, expected):
    assert wa._clock(time_s, marker) == expected


def test_errors_name_the_line(tmp_path):
    p = tmp_path / "chat.txt"
    p.write_text("01/02/2023, 10:00 - A: hi\nmore\n31/02/2023, 10:00 - B: no such day\n", encoding="utf-8")
    with pytest.raises(IngestError, match="line 3: impossible date"):
        list(parse(p))
    p.write_text("just some notes\nwithout any header\n", encoding="utf-8")
    with pytest.raises(IngestError, match="no WhatsApp message lines"):
        list(parse(p, format="whatsapp"))


def test_out_of_order_lines_are_sorted():
    # Android puts the encryption notice first even when older messages follow.
    text = "23/03/2022, 13:31 - Messages and calls are end-to-end encrypted.\n18/03/2022, 14:56 - Dmitry: Hello\n"
    p = FIX.parent.parent / ".pytest_wa_order.txt"
    try:
        p.write_text(text, encoding="utf-8")
        assert [m.sent_at.day for m in parse(p)] == [18, 23]
    finally:
        p.unlink(missing_ok=True)



# --- time before the date: `[14:56:01, 3/18/22] Name: msg` (some iOS locales) -------------------

def iso_rows(msgs):
    return [(m.sent_at.isoformat(), m.author, m.kind, m.text) for m in msgs]


def test_ios_time_first_24h_month_first_marks_media_and_notices():
    # 3/14/22: a second field above 12, so month first for the whole file
    msgs = read("ios_time_first.txt")
    assert {m.conversation for m in msgs} == {"ios_time_first"}
    assert iso_rows(msgs) == [
        ("2022-03-14T09:15:02", "", "system",  # the chat's name before iOS's own notice
         "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, "
         "can read or listen to them."),
        ("2022-03-14T09:15:40", "Marta Ruiz", "text", "Morning! Are we still on for the museum?"),
        ("2022-03-14T09:16:05", "Jae Kim", "text", "Yes: 11:00 at the north entrance."),
        ("2022-03-14T09:16:30", "Jae Kim", "media", ""),  # "\u200eimage omitted"
        ("2022-03-14T09:17:00", "Jae Kim", "media", "Tickets.pdf • 2 pages"),  # "… \u200edocument omitted"
        ("2022-03-14T12:01:10", "Marta Ruiz", "text",
         "Perfect\nI'll bring snacks\nand the umbrella, it looks like rain"),
        ("2022-03-14T12:02:00", "Marta Ruiz", "media", ""),  # <attached: …jpg>
        # a time-first header pasted mid-line is text: headers only start lines
        ("2022-03-14T12:03:45", "Jae Kim", "text", "My sister forwarded this: [10:00, 1/2/22] x: y"),
        ("2022-03-15T18:30:00", "Jae Kim", "media", ""),  # "\u200eThis message was deleted."
        ("2022-03-15T18:31:00", "Marta Ruiz", "text", "See you tomorrow"),  # "<This message was edited>" dropped
        ("2022-03-15T20:00:00", "", "system", "Your security code with Jae Kim changed. Tap to learn more."),
        ("2022-03-16T00:05:00", "Leo", "text", "Sorry, wrong chat"),  # "~\u202fLeo"
        ("2022-03-16T07:45:00", "Jae Kim", "media", ""),  # "\u200esticker omitted"
        ("2022-03-16T07:46:12", "Marta Ruiz", "system", "Missed voice call"),
        ("2022-03-16T07:50:00", "Marta Ruiz", "text", "On my way 🚇"),
    ]
    assert not any("\u200e" in m.text or "\u202f" in m.author for m in msgs)


def test_ios_time_first_is_detected_and_parsed_without_format():
    path = FIX / "ios_time_first.txt"
    assert wa.sniff(path)
    assert detect(path) == "whatsapp"
    assert len(list(parse(path))) == 15  # no --format
    assert wa._time_first(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("text, expected", [
    # 12h with U+202F before PM, day first (18 > 12), seconds optional
    ("[9:05:12\u202fPM, 18/03/2022] Ana: hi\n[9:06\u202fPM, 18/03/2022] Bo: yo\n",
     [("2022-03-18T21:05:12", "Ana", "text", "hi"), ("2022-03-18T21:06:00", "Bo", "text", "yo")]),
    # every date fits both orders: only day first goes up (1 Feb, 3 Feb, 2 Mar)
    ("[10:00, 1/2/22] Ana: a\n[10:00, 3/2/22] Bo: b\n[10:00, 2/3/22] Ana: c\n",
     [("2022-02-01T10:00:00", "Ana", "text", "a"), ("2022-02-03T10:00:00", "Bo", "text", "b"),
      ("2022-03-02T10:00:00", "Ana", "text", "c")]),
    # ... only month first goes up (1 Feb, 3 Feb, 2 Mar)
    ("[10:00, 2/1/22] Ana: a\n[10:00, 2/3/22] Bo: b\n[10:00, 3/2/22] Ana: c\n",
     [("2022-02-01T10:00:00", "Ana", "text", "a"), ("2022-02-03T10:00:00", "Bo", "text", "b"),
      ("2022-03-02T10:00:00", "Ana", "text", "c")]),
    # a tie, with an upper-case AM/PM clock: month first (US)
    ("[8:05 PM, 1/2/23] Jordan: friday?\n[9:00 AM, 2/2/23] Casey: yes\n",
     [("2023-01-02T20:05:00", "Jordan", "text", "friday?"), ("2023-02-02T09:00:00", "Casey", "text", "yes")]),
    # Spanish "a. m."/"p.\xa0m.", 12 a. m. = 0h, CRLF, a multi-line message
    ("[12:05:09 a. m., 14/03/2023] Lucía: hola\r\n[12:30 p.\xa0m., 14/03/2023] Diego: qué tal\r\nsegunda línea\r\n",
     [("2023-03-14T00:05:09", "Lucía", "text", "hola"),
      ("2023-03-14T12:30:00", "Diego", "text", "qué tal\nsegunda línea")]),
    # dotted dates, 24h; bidi marks around the header and a number as author
    ("\u200e[21:41:35, 27.03.22] \u202a+1\xa0555\xa00100\u202c: \u200eimage omitted\n"
     "[21:42:00, 27.03.22] Dmitry S: \u200e<attached: 00000003-AUDIO-2022-03-27-21-42-00.opus>\n",
     [("2022-03-27T21:41:35", "+1 555 0100", "media", ""), ("2022-03-27T21:42:00", "Dmitry S", "media", "")]),
    # the Android-style separator after a time-first header, and a notice without an author
    ("21:41, 27/03/2022 - Ana created group \"Trip\"\n21:42, 27/03/2022 - Ana: <Media omitted>\n",
     [("2022-03-27T21:41:00", "Ana", "system", 'Ana created group "Trip"'),
      ("2022-03-27T21:42:00", "Ana", "media", "")]),
])
def test_time_first_headers_read_like_date_first_ones(tmp_path, text, expected):
    p = tmp_path / "chat.txt"
    p.write_bytes(text.encode("utf-8"))
    assert wa.sniff(p) and detect(p) == "whatsapp"
    assert iso_rows(parse(p)) == expected


def test_time_first_and_date_first_files_agree(tmp_path):
    date_first = FIX / "WhatsApp Chat - Priya Nair.txt"
    swapped = re.sub(r"^(\u200e?)\[([^,\]]+), ([^\]]+)\]", r"\1[\3, \2]", date_first.read_text(encoding="utf-8"),
                     flags=re.M)
    assert swapped != date_first.read_text(encoding="utf-8")
    p = tmp_path / "WhatsApp Chat - Priya Nair.txt"
    p.write_text(swapped, encoding="utf-8")
    assert rows(parse(p)) == rows(parse(date_first))


def test_a_header_of_the_other_form_stays_text(tmp_path):
    # The form is chosen once per file: a pasted time-first header at the start of a line in a
    # date-first file (or the reverse) is part of the message above, never a message of its own.
    p = tmp_path / "chat.txt"
    p.write_text("[3/14/22, 10:00:00] Ana: look what Bo sent\n[10:00, 1/2/22] x: y\n[3/14/22, 10:01:00] Bo: ha\n",
                 encoding="utf-8")
    assert [(m.author, m.text) for m in parse(p)] == [
        ("Ana", "look what Bo sent\n[10:00, 1/2/22] x: y"), ("Bo", "ha")]
    p.write_text("[10:00:00, 3/14/22] Ana: look what Bo sent\n[1/2/22, 10:00] x: y\n[10:01:00, 3/14/22] Bo: ha\n",
                 encoding="utf-8")
    assert [(m.author, m.text) for m in parse(p)] == [
        ("Ana", "look what Bo sent\n[1/2/22, 10:00] x: y"), ("Bo", "ha")]


@pytest.mark.parametrize("text, time_first", [
    ("[14:56:01, 3/18/22] Ana: hi\n", True),
    ("[3/18/22, 14:56:01] Ana: hi\n", False),
    ("\ufeff\u200e[9:05\u202fPM, 18/03/2022] Ana: hi\n", True),
    ("exported by a tool\n[14:56:01, 3/18/22] Ana: hi\n[3/18/22, 14:56:01] Bo: pasted\n", True),  # the first header
    ("exported by a tool\n[3/18/22, 14:56:01] Ana: hi\n[14:56:01, 3/18/22] Bo: pasted\n", False),
    ("no headers at all\n", False),
])
def test_time_first_is_decided_by_the_first_header(text, time_first):
    assert wa._time_first(text) is time_first


# --- hypothesis: any bytes either parse or raise IngestError ----------------------------------

SEED = (FIX / "WhatsApp Chat with Hiking Club (1).txt").read_bytes() + (FIX / "arabic_ios.txt").read_bytes()


@st.composite
def mutated(draw):
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        i = draw(st.integers(0, len(data)))
        if op == "flip" and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b"\n", b"\r", b": ", b"/", b"]", b"\xe2\x80\x8e", b"99", b"\xff",
                                              b"12:61", b" PM", b"\n31/02/2023, 10:00 - X: y"]))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 20))]
        elif op == "dup":
            data[i:i] = data[max(0, i - 40):i]
    return bytes(data)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.binary(max_size=300)))
def test_any_bytes_parse_or_raise_ingest_error(data):
    msgs = assert_parses_or_ingest_error(data, "chat.txt", "whatsapp")
    if msgs is not None:
        assert [m.sent_at for m in msgs] == sorted(m.sent_at for m in msgs)


# --- the real exports --------------------------------------------------------------------------

def nonsystem(path):
    return [m for m in parse(path) if m.kind != "system"]


@needs_shared
@pytest.mark.parametrize("name", ["test_[mmddyy]_24hrs.txt", "test_ddmmyy_24hrs.txt", "test_mmddyy_24hrs.txt",
                                  "test_mmddyyyy_12hrs.txt", "test_yyyymmdd_24hrs.txt"])
def test_real_chat_miner_exports_match_its_target(name):
    folder = REAL / "chat-miner" / "test" / "whatsapp"
    target = json.loads((folder / "target.json").read_text(encoding="utf-8"))
    expected = sorted((datetime.fromisoformat(t["timestamp"]), t["author"], t["message"]) for t in target)
    got = sorted((m.sent_at, m.author, m.text.replace("\n", " ")) for m in nonsystem(folder / name))
    assert got == expected
    assert detect(folder / name) == "whatsapp"


@needs_shared
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_real_chat_miner_old_exports_match_its_csv(n):
    folder = REAL / "chat-miner_71990a9" / "test" / "whatsapp"
    with open(folder / f"test_dateformat{n}_target.csv", encoding="utf-8", newline="") as f:
        expected = sorted(
            (datetime.fromisoformat(r["timestamp"]), r["author"], r["message"]) for r in csv.DictReader(f)
            if r["author"] != "System" and r["message"] != "<Disappearing Message>")
    got = sorted((m.sent_at, m.author, m.text.replace("\n", " ")) for m in nonsystem(folder / f"test_dateformat{n}.txt"))
    assert got == expected


@needs_shared
def test_real_chat_miner_unicode_export():
    folder = REAL / "chat-miner_71990a9" / "test" / "whatsapp"
    with open(folder / "test_unicode_target.csv", encoding="utf-8", newline="") as f:
        expected = sorted((datetime.fromisoformat(r["timestamp"]), r["author"], r["message"]) for r in csv.DictReader(f))
    got = sorted((m.sent_at, m.author, unicodedata.normalize("NFKC", m.text)) for m in nonsystem(folder / "test_unicode.txt"))
    assert got == expected  # "10:37 p.\xa0m." -> 22:37, day first (09/10/22 -> 9 Oct)


IOS = ["english_ios.txt", "deutch_ios.txt", "french_ios.txt", "spanish_ios.txt", "arabic_ios.txt"]


@needs_shared
@pytest.mark.parametrize("name", IOS)
def test_real_whats_json_ios_languages_agree(name):
    """The same chat exported from iOS in five languages reads the same: kinds, authors, minutes."""
    folder = REAL / "whats_json" / "test" / "data" / "languages"
    english = list(parse(folder / "english_ios.txt"))
    msgs = list(parse(folder / name))
    assert [m.kind for m in msgs] == [m.kind for m in english]
    assert [m.sent_at.replace(second=0) for m in msgs] == [m.sent_at.replace(second=0) for m in english]
    other = {"Elon Musk", "+40 521 028 61 88"}  # the other person, saved under a number on the Arabic phone
    assert [("other" if m.author in other else m.author) for m in msgs] == [
        ("other" if m.author in other else m.author) for m in english]
    kinds = [m.kind for m in msgs]
    assert (kinds.count("text"), kinds.count("media"), kinds.count("system")) == (6, 16, 1)  # 2 deleted: media
    assert msgs[0].kind == "system" and msgs[0].author == ""  # the encryption notice, with the chat as author
    assert [m.text for m in msgs if m.kind == "media" and m.text][:1] == ["Some file.txt"]
    assert detect(folder / name) == "whatsapp"


@needs_shared
def test_real_whats_json_english_ios_details():
    msgs = list(parse(REAL / "whats_json" / "test" / "data" / "languages" / "english_ios.txt"))
    assert msgs[1].sent_at == datetime(2022, 3, 27, 21, 41, 35)
    assert [(m.author, m.text) for m in msgs if m.kind == "system"] == [
        ("", "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, "
             "can read or listen to them.")]
    # "You deleted this message." and "This message was deleted.": turns without text, author kept
    by_time = {m.sent_at: m for m in msgs}
    deleted = [by_time[datetime(2022, 3, 27, 21, 50, 54)], by_time[datetime(2022, 3, 27, 21, 54, 45)]]
    assert [(m.kind, m.text, m.author) for m in deleted] == [("media", "", "Dmitry S"), ("media", "", "Elon Musk")]
    # Elon Musk's only non-system message is the deleted one
    assert [(m.kind, m.text) for m in msgs if m.author == "Elon Musk"] == [("media", "")]
    assert msgs[-1].text == "Location: https://maps.google.com/?q=51.5021456,-0.127397"


@needs_shared
@pytest.mark.parametrize("name", ["english_android.txt", "russian_android.txt"])
def test_real_whats_json_android_languages(name):
    msgs = list(parse(REAL / "whats_json" / "test" / "data" / "languages" / name))
    english = list(parse(REAL / "whats_json" / "test" / "data" / "languages" / "english_android.txt"))
    assert [m.sent_at for m in msgs] == [m.sent_at for m in english]
    assert [m.kind for m in msgs] == [m.kind for m in english]
    assert {m.author for m in msgs} == {"Dmitry S", "Elon", ""}
    # 11 notices before deleted messages became media: 8 deleted messages, 3 notices stay system
    assert len(msgs) == 60 and sum(m.kind == "system" for m in msgs) == 3
    assert [m.author for m in msgs if m.kind == "system"] == ["", "Dmitry S", "Dmitry S"]  # encryption, 2 calls
    # the 8 "This message was deleted" / "You deleted this message" lines: turns without text, author kept
    deleted = [msgs[i] for i in (16, 27, 30, 40, 44, 48, 52, 55)]
    assert [(m.author, m.kind, m.text) for m in deleted] == [("Dmitry S", "media", ""), ("Elon", "media", "")] + [
        ("Dmitry S", "media", "")] * 5 + [("Elon", "media", "")]
    assert [(m.sent_at.hour, m.sent_at.minute) for m in deleted] == [
        (13, 44), (15, 14), (15, 21), (21, 46), (21, 49), (21, 50), (21, 52), (21, 54)]
    pimlico = next(m for m in msgs if m.text.startswith("Pimlico"))
    assert pimlico.text == "Pimlico Gardens\nLondon, United Kingdom\nhttps://foursquare.com/v/4e89af95e5fa82ad4c0aa03b"


@needs_shared
def test_real_langchain_exports():
    mixed = nonsystem(REAL / "langchain-community/libs/community/tests/examples/whatsapp_chat.txt")
    # one file mixing iOS, Android, 12h with "_AM" and U+202F, dotted and yyyy/m/d dates
    assert [(m.sent_at, m.author) for m in sorted(mixed, key=lambda m: m.sent_at)] == [
        (datetime(2021, 1, 24, 12, 41, 3), "User name 2"), (datetime(2021, 11, 8, 9, 41, 32), "User name"),
        (datetime(2022, 7, 19, 23, 32), "User 1"), (datetime(2022, 7, 20, 11, 32), "User 2"),
        (datetime(2023, 1, 23, 3, 19), "User 2"), (datetime(2023, 1, 23, 3, 22), "User 1"),
        (datetime(2023, 4, 20, 9, 42), "User 3"), (datetime(2023, 5, 4, 16, 13, 23), "User 2"),
        (datetime(2023, 5, 5, 15, 48, 11), "James"),
        (datetime(2023, 6, 29, 0, 16), "User 4"),  # "This message was deleted": media, text ""
    ]
    birds = list(parse(REAL / "langchain-community/libs/community/tests/unit_tests/chat_loaders/data/whatsapp_chat.txt"))
    assert [m.kind for m in birds].count("media") == 3 and birds[0].kind == "system"
    assert {m.author for m in birds if m.kind == "text"} == {"Dr. Feather", "Jungle Jane"}
    assert birds[-1].text == "Looking forward to it! Keep up the great work."
