"""Plain transcripts written by hand (or pasted from anywhere):

    Ana: are you coming tonight?
    Ben: yes!
    I'll bring the cake            <- no "Name:" at the start: continues Ben's message
    [2024-01-02 10:00] Ana: great  <- an optional leading timestamp is honoured

    Ana: a blank line starts a new conversation

A speaker is the text before the first ": " at the start of a line, when it looks like a name: at
most 40 characters and 5 words, no digits-only strings, no times ("10:00") or dates, no slashes or
brackets, no URL schemes, no sentence punctuation. `**Ana:**` / `**Ana**:` (markdown bold) are read
too. Conversations are named after the file: "notes", then "notes #2", "notes #3", ...
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, read_head, read_text, strip_invisible
from likeme.errors import IngestError

NAME = "transcript"
DESCRIPTION = "hand-written transcripts: 'Name: message' lines, blank line = new conversation"
PRIORITY = 90  # a catch-all: every app-specific text format is tried first

SUFFIXES = (".txt", ".md", ".text", "")

# [2024-01-02 10:00] / 2024-01-02 10:00:05 / 2024-01-02T10:00, then optionally " - ".
_STAMP = re.compile(r"^\[?(\d{4})-(\d{2})-(\d{2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\]?\s+(?:-\s+)?")
_BOLD = re.compile(r"^\*\*([^*\n]+?)(?::\*\*|\*\*:)(?: (.*)|\s*)$")
_SPEAKER = re.compile(r"^(.+?):(?: (.*)|\s*)$")
_NOT_NAME = re.compile(
    r"\d{1,2}:\d{2}"          # a time: "10:00 - Ana"
    r"|\d+[/.\-]\d"           # a date: "12/03/2024", "18.03.2022"
    r"|[\[\]<>{}()/\\|=_#*`\"?!;,@]"  # brackets, paths, markup, sentence punctuation
    r"|^[-+>~]"               # list items and quotes
)
_NUMERIC = re.compile(r"^[\d\s.,:+-]+$")
_URL_SCHEMES = {"http", "https", "ftp", "ftps", "mailto", "file", "tel", "sms", "data", "ws", "wss"}
# Header-like keys that are not speakers (e-mail headers pasted into a .txt).
_HEADERS = {"from", "to", "cc", "bcc", "subject", "date", "sent", "reply-to", "re", "fwd"}


def _is_name(s: str) -> bool:
    """Does `s` (the text before the first ": ") look like a person's name?

    Example: "Ana" -> True, "Dr. Maria Lopes" -> True, "12/03/2024, 10:00 - Ana" -> False,
    "https" -> False, "10" -> False.
    """
    if not s or len(s) > 40 or s != s.strip() or len(s.split()) > 5:
        return False
    if _NUMERIC.match(s) or _NOT_NAME.search(s):
        return False
    # Letters or emoji ("🤓" is a name people use); no control characters (joiners are fine).
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") for c in s):
        return False
    if not any(c.isalpha() or unicodedata.category(c) == "So" for c in s):
        return False
    return s.lower() not in _URL_SCHEMES


def _speaker_line(line: str) -> tuple[tuple | None, str, str] | None:
    """(timestamp parts or None, name, text) when `line` starts a message, else None."""
    if not line or line[0].isspace():
        return None  # indented lines continue the previous message
    stamp = None
    m = _STAMP.match(line)
    if m:
        stamp = m.groups()
        line = line[m.end():]
    b = _BOLD.match(line) or _SPEAKER.match(line)
    if b is None:
        return None
    name = b.group(1)  # the lazy match stops at the first ": " (or a ":" ending the line)
    if not _is_name(name) or name.lower() in _HEADERS:
        return None
    return stamp, name, b.group(2) or ""


def sniff(path: Path) -> bool:
    """Most of the first 20 non-empty lines look like "Name: message", from few, recurring names."""
    if not path.is_file() or path.suffix.lower() not in SUFFIXES:
        return False
    head = read_head(path, 8192)
    lines = head.splitlines()
    if len(head.encode("utf-8", "ignore")) >= 8000 and lines:
        lines = lines[:-1]  # the last line may be cut off
    lines = [strip_invisible(ln).rstrip() for ln in lines if ln.strip()][:20]
    names = Counter()
    for line in lines:
        found = _speaker_line(line)
        if found is not None:
            names[found[1]] += 1
    matched = sum(names.values())
    if matched < 2 or matched < 0.6 * len(lines) or len(names) > 20:
        return False
    # A chat has people who speak more than once; "Key: value" metadata files have no repeats.
    return matched < 4 or max(names.values()) >= 2


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of a transcript, one conversation per blank-line-separated block.

    Example: "Ana: hi\\nBen: hey\\n\\nAna: later" ->
        ("t", "Ana", 2000-01-01 00:00, "hi"), ("t", "Ben", 2000-01-01 00:01, "hey"),
        ("t #2", "Ana", 2000-01-02 00:00, "later")
    """
    path = Path(path)
    stem = clean_name(path.stem) or path.name
    blocks: list[list[list]] = []  # each block: [line_no, stamp, name, [text lines]]
    current: list[list] = []
    for n, raw in enumerate(read_text(path).splitlines(), 1):
        line = strip_invisible(raw).rstrip()
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        found = _speaker_line(line)
        if found is not None:
            stamp, name, text = found
            current.append([n, stamp, clean_name(name), [text]])
        elif current:
            current[-1][3].append(line.strip())  # indentation only lined it up under the name
        # else: a title or note before the first speaker of a block; not anyone's words
    if current:
        blocks.append(current)
    found_any = False
    for b, block in enumerate(blocks):
        conversation = stem if b == 0 else f"{stem} #{b + 1}"
        out: list[Message] = []
        last: datetime | None = None
        for i, (n, stamp, name, lines) in enumerate(block):
            if stamp is not None:
                y, mo, d, h, mi, s = stamp
                try:
                    last = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
                except ValueError:
                    raise IngestError(path, f"line {n}", "not a valid date/time "
                                      f"{y}-{mo}-{d} {h}:{mi}; write it as [YYYY-MM-DD HH:MM]") from None
                when = last
            elif last is not None:
                when = last  # an undated line inside a dated block: as the line above it
            else:
                # No times in the file: made-up but DETERMINISTIC ones, a day per block and a minute
                # per message, so re-ingesting the same file yields the same (author, time, text)
                # keys and de-duplicates, and lines appended later only add new messages.
                when = datetime(2000, 1, 1) + timedelta(days=b) + timedelta(minutes=i)
            text = "\n".join(lines).strip()
            if text:
                out.append(Message("transcript", conversation, name, when, text))
        out.sort(key=lambda m: m.sent_at)  # stable: same-time lines keep their order
        found_any = found_any or bool(out)
        yield from out
    if not found_any:
        raise IngestError(path, None, "no 'Name: message' lines found; is this a chat transcript?")
