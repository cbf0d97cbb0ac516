"""Generic tables of messages: CSV, TSV, JSON Lines, or a JSON array of flat objects.

    author,text,sent_at,conversation
    Ana,hi Ben,2024-01-02T10:00:00+01:00,Weekend
    Ben,"hey, what's up",1704186060,Weekend

Columns are found by name (case-insensitive), the first alias present wins:

    author        author, sender, sender_name, from, user, speaker, name
    text          text, message, content, body, msg
    sent_at       sent_at, timestamp, time, date, datetime, created_at, date_sent
                  (ISO 8601 with or without offset, "2024-01-02 10:00", epoch seconds or
                  milliseconds; separate "date" + "time" columns are joined)
    conversation  conversation, chat, thread, channel, room, group   (default: the file's stem)
    optional      kind (text/media/system), reply_to, id / message_id (-> source_id), platform

Epoch times become UTC-aware datetimes, ISO times keep their offset, times without one stay naive.
Without a time column, rows get made-up but deterministic times one minute apart (see `_synthetic`).
A row is skipped when its text is empty, unless its kind says media or system (a photo without a
caption); a row with text but no author is kept with author "". Anything else that does not fit is
an IngestError naming the line.
"""
from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, parse_iso, read_head, strip_invisible
from likeme.errors import IngestError

NAME = "table"
DESCRIPTION = "CSV / TSV / JSON Lines / JSON array with author, text (and time) columns"
PRIORITY = 90  # generic: app-specific formats (discord-csv, Slack's JSON arrays) are tried first

AUTHOR = ("author", "sender", "sender_name", "from", "user", "speaker", "name")
TEXT = ("text", "message", "content", "body", "msg")
TIME = ("sent_at", "timestamp", "time", "date", "datetime", "created_at", "date_sent")
CONVERSATION = ("conversation", "chat", "thread", "channel", "room", "group")
REPLY = ("reply_to", "in_reply_to", "reply_to_id")
ID = ("id", "message_id")
SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")

_KINDS = {
    "text": "text", "message": "text", "chat": "text", "": None,
    "media": "media", "photo": "media", "image": "media", "video": "media", "audio": "media",
    "voice": "media", "sticker": "media", "file": "media", "gif": "media", "attachment": "media",
    "system": "system", "service": "system", "notice": "system", "event": "system", "call": "system",
}
_EPOCH = re.compile(r"^-?\d+(?:\.\d+)?$")


def _header_keys(keys) -> set[str]:
    return {strip_invisible(str(k)).strip().lower() for k in keys}


def _claims(keys: set[str]) -> bool:
    if not (keys & set(AUTHOR) and keys & set(TEXT)):
        return False
    if "authorid" in keys:  # DiscordChatExporter CSV: AuthorID,Author,Date,Content (discord-csv)
        return False
    if "ts" in keys and "type" in keys:  # a day file of a Slack export (slack)
        return False
    return True


def _delimiter(path: Path, first_line: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    return max((",", ";", "\t"), key=first_line.count)


def sniff(path: Path) -> bool:
    """A table whose header (or first record) has an author-like AND a text-like column."""
    if not path.is_file() or path.suffix.lower() not in SUFFIXES:
        return False
    suffix = path.suffix.lower()
    head = read_head(path, 65536 if suffix == ".json" else 8192)
    if suffix in (".csv", ".tsv"):
        first = head.split("\n", 1)[0].rstrip("\r")
        try:
            header = next(csv.reader([first], delimiter=_delimiter(path, first)))
        except (csv.Error, StopIteration):
            return False
        return _claims(_header_keys(header))
    if suffix in (".jsonl", ".ndjson"):
        first = next((ln for ln in head.splitlines() if ln.strip()), "")
        try:
            obj = json.loads(first)
        except ValueError:
            return False
        return isinstance(obj, dict) and _claims(_header_keys(obj))
    # .json: only an ARRAY of flat records (Telegram/Discord/Slack/Messenger write objects)
    text = head.lstrip()
    if not text.startswith("["):
        return False
    start = len(text) - len(text[1:].lstrip())
    if not text[start:start + 1] == "{":
        return False
    try:
        obj, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return False
    return isinstance(obj, dict) and _claims(_header_keys(obj))


def parse_time(v) -> datetime | None:
    """A time cell -> datetime, or None when it cannot be read.

    Examples: 1704189600 -> 2024-01-02 10:00:00+00:00;  1704189600000 -> the same (milliseconds);
    "2024-01-02T10:00:00+01:00" -> aware, +01:00;  "2024-01-02 10:00" -> naive 2024-01-02 10:00.
    """
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)) or (isinstance(v, str) and _EPOCH.match(v.strip())):
        try:
            x = float(v)
        except (ValueError, OverflowError):
            return None
        if x != x:  # NaN
            return None
        # Seconds until the year 5138; beyond that the number is in ms (or µs, ns).
        for scale in (1, 1e3, 1e6, 1e9):
            if abs(x / scale) < 1e11:
                try:
                    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=x / scale)
                except OverflowError:
                    return None
        return None
    if not isinstance(v, str):
        return None
    s = strip_invisible(v).strip()
    if re.match(r"^\d{4}/\d{1,2}/\d{1,2}", s):
        s = s.replace("/", "-", 2)
    try:
        # parse_iso first: Python 3.10's fromisoformat rejects "Z" and "+0100", which exports use
        return parse_iso(s) or datetime.fromisoformat(s)
    except ValueError:
        return None


def _cell(get: Callable, aliases: tuple) -> tuple[str | None, object]:
    """(column used, value) for the first alias present in a record."""
    for a in aliases:
        v = get(a)
        if v is not _MISSING:
            return a, v
    return None, None


_MISSING = object()


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        raise TypeError("a list or object where text was expected")
    return strip_invisible(str(v))


def _synthetic(row_index: int) -> datetime:
    # No time column: made-up but DETERMINISTIC times, one minute per row, so re-ingesting the same
    # table gives the same (author, time, text) keys and de-duplicates, and appended rows only add.
    return datetime(2000, 1, 1) + timedelta(minutes=row_index)


def _record(path: Path, where: str, get: Callable, row_index: int, stem: str) -> Message | None:
    """One message from a record; `get(alias)` returns the value or _MISSING."""
    try:
        _, author = _cell(get, AUTHOR)
        _, text = _cell(get, TEXT)
        author, text = clean_name(_text(author)), _text(text).strip()
        col, raw_time = _cell(get, TIME)
        # "date" + "time" in two columns: join them ("2024-01-02" + "10:00").
        if col == "time" and get("date") is not _MISSING:
            raw_time = f"{_text(get('date')).strip()} {_text(raw_time).strip()}"
        _, conv = _cell(get, CONVERSATION)
        _, kind_raw = _cell(get, ("kind",))
        _, reply = _cell(get, REPLY)
        _, sid = _cell(get, ID)
        _, platform = _cell(get, ("platform",))
        conv, reply, sid, platform = (_text(x).strip() for x in (conv, reply, sid, platform))
        kind_name = _text(kind_raw).strip().lower()
    except TypeError as e:
        raise IngestError(path, where, str(e)) from None
    if kind_name not in _KINDS:
        raise IngestError(path, where, f"unknown kind {kind_name!r} (use text, media or system)")
    kind = _KINDS[kind_name] or "text"
    if not text and kind == "text":
        return None
    if col is None:
        when = _synthetic(row_index)
    else:
        when = parse_time(raw_time)
        if when is None:
            raise IngestError(path, where, f"cannot read time {str(raw_time)[:60]!r} (use ISO 8601 "
                              "like 2024-01-02T10:00:00+01:00, or epoch seconds)")
    return Message(platform or "table", clean_name(conv) or stem, author, when, text, kind,
                   reply or None, sid or None)


def _rows(path: Path) -> Iterator[tuple[str, Callable]]:
    """(place, get) per record, in file order, read by the one table reader (likeme.data.tables)."""
    from likeme.data.tables import records

    checked = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    for where, record in records(path):
        if not checked:  # delimited text: the first row must have named the columns
            keys = set(_header_keys(record))
            if not (keys & set(AUTHOR) or keys & set(TEXT)):
                raise IngestError(path, where, "the first row must name the columns (author, text, sent_at, ...)")
            checked = True
        yield where, _getter(record)


def _getter(obj: dict) -> Callable:
    low = {}
    for k, v in obj.items():
        low.setdefault(strip_invisible(str(k)).strip().lower(), v)
    return lambda key: low.get(key, _MISSING)


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of a table, grouped by conversation (first seen first), each oldest first.

    Example: a CSV "author,text\\nAna,hi\\nBen,hey" ->
        Message("table", "<stem>", "Ana", 2000-01-01 00:00, "hi"),
        Message("table", "<stem>", "Ben", 2000-01-01 00:01, "hey")
    """
    path = Path(path)
    stem = clean_name(path.stem) or path.name
    by_conv: dict[str, list[Message]] = {}
    for i, (where, get) in enumerate(_rows(path)):
        msg = _record(path, where, get, i, stem)
        if msg is not None:
            by_conv.setdefault(msg.conversation, []).append(msg)
    for msgs in by_conv.values():
        msgs.sort(key=lambda m: _utc_key(m.sent_at))  # stable: equal times keep the file's order
        yield from msgs


def _utc_key(d: datetime) -> datetime:
    """Aware and naive times in one column can still be ordered (naive read as UTC)."""
    return d.astimezone(timezone.utc).replace(tzinfo=None) if d.tzinfo else d
