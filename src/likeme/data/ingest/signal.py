"""Signal Desktop chats exported with signal-export (github.com/carderne/signal-export).

Two shapes of the same line-oriented text are read:

    [2019-12-24, 12:23] Jane Doe: Hello John!          older text export (chat-miner's sample)
    [2021-08-03 13:40:58] Jane Doe: Hello John!        chat.md of current signal-export

A message runs until the next header line, so multi-line messages keep their line breaks. In
chat.md, signal-export appends attachments as `![name](./media/x.jpg)` / `[name](./media/x)`,
stickers as `[emoji](../exported_stickers/..)` or `(( emoji ))`, reactions as `(- Ana: 👍 -)`, and
puts the quoted message of a reply before the body as `> ` lines: quotes and reactions are dropped
(they are not this message's words), attachments make the message "media", and so does
"(This message was deleted)" (a turn the person sent whose text is gone: `text=""`, author kept);
call-history entries are "system". "Me" is the owner of the export; `me="Ana"` renames it. The
export records local wall time only: `sent_at` is naive.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, read_head, read_text, strip_invisible
from likeme.errors import IngestError

NAME = "signal"
DESCRIPTION = "Signal Desktop chats exported by signal-export (chat.md / index.md / text)"
# Before WhatsApp (50): both write `[date time] Name: text`; the shapes claimed here never come
# out of WhatsApp (whose ISO-dated iOS lines have a comma AND seconds).
PRIORITY = 40

# Any header signal-export has written: `[yyyy-mm-dd, HH:MM]`, `[yyyy-mm-dd HH:MM]` (2021 versions)
# and `[yyyy-mm-dd HH:MM:SS]`. The sender ends at the first ": " (or ":" ending the line).
_HEADER = re.compile(
    r"^\[(\d{4})-(\d{2})-(\d{2}),? (\d{2}):(\d{2})(?::(\d{2}))?\] (.+?):(?: (.*)|)$")
# What the sniffer accepts: with the comma no seconds, with seconds no comma. WhatsApp iOS writes
# `[2019-12-24, 12:23:45]`; `[2019-12-24 12:23]` is left to the transcript format.
_SNIFF = re.compile(r"^\[\d{4}-\d{2}-\d{2}(?:, \d{2}:\d{2}| \d{2}:\d{2}:\d{2})\] [^:\n]{1,80}:(?: |$)")
_ATTACHMENT = re.compile(r"!?\[([^\]\n]*)\]\((?:\./)?media/[^)\n]*\)")
_STICKER_LINK = re.compile(r"\[([^\]\n]*)\]\(\.\./exported_stickers/[^)\n]*\)")
_STICKER_TEXT = re.compile(r"^\(\( (.*) \)\)$")
_REACTIONS = re.compile(r"^\(- .* -\)$")
_DELETED = "(This message was deleted)"  # a sent message whose text is gone: media, text ""
# Call-history entries: "Outgoing voice call (accepted, 1m 3s)", "Missed video call", "Incoming call".
_CALL = re.compile(r"^(?:Incoming|Outgoing|Missed) (?:(?:voice|video) )?call(?: \([^)]*\))?$")


def sniff(path: Path) -> bool:
    """A .txt/.md (or extension-less) file whose first line is a signal-export header.
    Folders are not claimed: the core walks them and finds chat.md."""
    if not path.is_file() or path.suffix.lower() not in (".txt", ".md", ""):
        return False
    for line in read_head(path, 4096).splitlines():
        if line.strip():
            return bool(_SNIFF.match(line))
    return False


def _conversation(path: Path) -> str:
    if path.name.lower() in ("chat.md", "index.md") and path.parent.name:
        return clean_name(path.parent.name)
    return clean_name(path.stem)


def _body(lines: list[str]) -> tuple[str, str]:
    """(text, kind) of a message's lines: quotes/reactions dropped, attachments -> media."""
    kind = "text"
    kept = []
    for line in lines:
        if line.startswith(">"):  # the quoted message of a reply
            continue
        # Attachments are appended after the body (and after the reactions line), so they go first.
        new = _STICKER_LINK.sub("", _ATTACHMENT.sub("", line))
        if new != line:
            kind = "media"
            line = new
        line = line.rstrip()  # signal-export ends lines with two spaces (a markdown line break)
        if _REACTIONS.match(line):
            continue
        if _STICKER_TEXT.match(line):
            kind = "media"
            continue
        kept.append(line)
    text = "\n".join(kept).strip("\n")
    if kind == "text":
        stripped = text.strip()
        if stripped == _DELETED:
            return "", "media"
        if _CALL.match(stripped):
            return stripped, "system"
    return text, kind


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of one signal-export chat file, oldest first.

    Example: "[2020-01-17, 21:49] John Doe: Hello\\nJane!" ->
        Message("signal", "test_export", "John Doe", datetime(2020, 1, 17, 21, 49), "Hello\\nJane!")
    """
    path = Path(path)
    conversation = _conversation(path)
    out: list[Message] = []
    head: tuple[int, datetime, str] | None = None
    lines: list[str] = []

    def flush() -> None:
        if head is None:
            return
        _, when, author = head
        text, kind = _body(lines)
        if not text and kind == "text":
            return  # an empty line-only message carries nothing
        if author == "Me" and me:
            author = me
        out.append(Message("signal", conversation, author, when, text, kind))

    for n, raw in enumerate(read_text(path).splitlines(), 1):
        line = strip_invisible(raw)
        m = _HEADER.match(line)
        if m is None:
            if head is None:
                if line.strip():
                    raise IngestError(path, f"line {n}", "expected a signal-export line like "
                                      "'[2021-08-03 13:40:58] Name: text'")
                continue
            lines.append(line)
            continue
        flush()
        y, mo, d, h, mi, s, author, text = m.groups()
        try:
            when = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
        except ValueError:
            raise IngestError(path, f"line {n}", f"not a valid date/time: {line[:22]!r}") from None
        head = (n, when, clean_name(author))
        lines = [text or ""]
    flush()
    # signal-export writes in sent order; a stable sort keeps that and guards against clock skew.
    out.sort(key=lambda msg: msg.sent_at)
    yield from out
