"""DiscordChatExporter CSV: one channel (or DM) per file.

    AuthorID,Author,Date,Content,Attachments,Reactions
    "11","ana#1234","2021-03-04T10:11:12.123+01:00","hi ""you""
    second line","",""

- Date: ISO with offset in current versions ("2021-03-04T10:11:12.123+01:00" -> aware); older
  versions wrote "04-Mar-21 10:11 AM" (local wall time -> naive).
- Author: the old "#1234" discriminator is dropped, so "ana#1234" matches the JSON export's "ana".
- Conversation: from the file name DiscordChatExporter writes, "Guild - Category - channel [id].csv":
  the channel for DMs ("Direct Messages - Private - Sam [53].csv" -> "Sam"), "Guild / #channel"
  for servers (the same names the JSON format gives); any other name -> the file's stem.
- The CSV has no message type: DiscordChatExporter's fixed texts for calls, renames, pins, joins
  and group changes ("Started a call that lasted 5 minutes.", "Pinned a message.") -> "system";
  no content but attachments -> "media". No message ids (source_id None). Newer versions already
  write mentions and custom emoji as "@name" / ":name:"; raw "<:name:id>" is shortened the same way.
"""
from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, parse_iso, read_head, strip_invisible
from likeme.errors import IngestError

NAME = "discord-csv"
DESCRIPTION = "DiscordChatExporter CSV (AuthorID,Author,Date,Content,Attachments,Reactions)"
PLATFORM = "discord"

_HEADERS = (("authorid", "author", "date", "content"), ("author", "date", "content", "attachments"))
_STEM = re.compile(r"^(?P<base>.*?) \[\d+\](?: \([^)]*\))?(?: \[part \d+\])?$")
_DISCRIMINATOR = re.compile(r"#\d{4}$")
_CUSTOM_EMOJI = re.compile(r"<a?(:\w+:)\d+>")  # "<:party:1234>" -> ":party:", as in the JSON format
# DiscordChatExporter's fallback texts for system messages (MessageKind -> content).
_SYSTEM = re.compile(
    r"Started a call(?: that lasted [\d,.\s]+ minutes?)?\."
    r"|Changed the channel name(?:: .*|\.)"
    r"|Changed the channel icon\."
    r"|Pinned a message\."
    r"|Added .+ to the group\.|Added a recipient\."
    r"|Removed .+ from the group\.|Removed a recipient\.|Left the group\."
    r"|Joined the server\.|Started a thread\.",
    re.DOTALL,
)
_OLD_FORMATS = ("%d-%b-%y %I:%M %p", "%d-%b-%y %H:%M", "%d-%b-%Y %I:%M %p", "%d-%b-%Y %H:%M",
                "%m/%d/%Y %I:%M %p", "%d/%m/%Y %H:%M", "%d-%b-%y %I:%M:%S %p")


def sniff(path: Path) -> bool:
    """A .csv whose header is DiscordChatExporter's."""
    path = Path(path)
    if not (path.is_file() and path.suffix.lower() == ".csv"):
        return False
    first = read_head(path, 1024).splitlines()[:1]
    if not first:
        return False
    try:
        header = [c.strip().lower() for c in next(csv.reader(first))]
    except (csv.Error, StopIteration):
        return False
    return any(tuple(header[:4]) == h for h in _HEADERS)


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """The channel's rows in file (chronological) order, read by the one table reader (likeme.data.tables)."""
    from likeme.data.tables import cell, has_column, records

    path = Path(path)
    conversation = _conversation(path)
    for where, row in records(path):
        missing = [c for c in ("author", "date", "content") if not has_column(row, c)]
        if missing:
            raise IngestError(path, "line 1", f"not a DiscordChatExporter CSV: no {', '.join(missing)} column")
        if any(cell(row, c) is None for c in ("author", "date", "content")):
            raise IngestError(path, where, f"expected {len(row)} columns, found {sum(v is not None for v in row.values())}")
        content = _CUSTOM_EMOJI.sub(r"\1", strip_invisible(cell(row, "content")).replace("\r\n", "\n")).strip()
        attachments = (cell(row, "attachments") or "").strip()
        if _SYSTEM.fullmatch(content):
            kind = "system"
        elif not content and attachments:
            kind = "media"
        else:
            kind = "text"
        author = _DISCRIMINATOR.sub("", clean_name(cell(row, "author"))).strip()
        yield Message(PLATFORM, conversation, author, _when(path, cell(row, "date"), where), content, kind)


def _conversation(path: Path) -> str:
    """ "Friends - Text Channels - general [123].csv" -> "Friends / #general";
    "Direct Messages - Private - Sam [53].csv" -> "Sam"; "notes.csv" -> "notes"."""
    stem = clean_name(path.stem)
    m = _STEM.match(stem)
    if not m:
        return stem
    parts = m.group("base").split(" - ")
    if len(parts) < 3:
        return parts[-1] or stem
    guild, channel = " - ".join(parts[:-2]), parts[-1]
    return channel if guild == "Direct Messages" else f"{guild} / #{channel}"


def _when(path: Path, value: str, where: str) -> datetime:
    value = value.strip()
    try:
        t = parse_iso(value)
    except ValueError:
        raise IngestError(path, where, f"not a valid date: {value!r}") from None
    if t is not None:
        return t
    for fmt in _OLD_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise IngestError(path, where, f"not a date like 2021-03-04T10:11:12+01:00 or 04-Mar-21 10:11 AM: {value!r}")
