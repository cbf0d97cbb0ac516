"""Telegram Desktop HTML export: `messages.html`, `messages2.html`, ... in one chat folder.

    <div class="page_header"><div class="content"><div class="text bold">Sam</div></div></div>
    <div class="message default clearfix" id="message12">
      <div class="body">
        <div class="pull_right date details" title="02.01.2023 10:00:00 UTC+01:00">10:00</div>
        <div class="from_name">Sam</div>
        <div class="reply_to details">In reply to <a href="#go_to_message11">this message</a></div>
        <div class="text">Hi <strong>there</strong><br>second line</div>
      </div>
    </div>

- `message default clearfix joined` has no `from_name`: the previous message's author goes on.
- `message service` (`id="message-1"`, negative) is a day separator and is skipped; other service
  messages ("Sam pinned a message") are kind "system" with author "" (the HTML does not mark the
  actor) and the time of the message before them (the HTML gives them none).
- `media_wrap` -> kind "media", caption in `text`. A forwarded message's inner `from_name` (the
  original author) is ignored; its text is the message's text.
- `title` dates: "DD.MM.YYYY HH:MM:SS UTC+01:00" -> aware; older exports without the offset -> naive.

Parsed with the stdlib `html.parser`; a folder's pages are read in numeric order as one conversation.
"""
from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import (
    clean_name,
    read_head,
    read_text,
    strip_invisible,
    utc_offset,
)
from likeme.errors import IngestError

NAME = "telegram-html"
DESCRIPTION = "Telegram Desktop HTML export (messages.html, messages2.html, ... in a chat folder)"
PLATFORM = "telegram"

_PAGE = re.compile(r"messages(\d*)\.html?", re.IGNORECASE)
_DATE = re.compile(
    r"(\d\d)\.(\d\d)\.(\d{4}) (\d\d):(\d\d)(?::(\d\d))?(?:\s*(?:UTC|GMT)\s*([+-])(\d\d):?(\d\d))?"
)
_GOTO = re.compile(r"go_to_message(\d+)")
_MSG_ID = re.compile(r"message(-?\d+)$")
_RAW_SPACE = re.compile(r"[ \t\r\f]*\n\s*")
_VOID = {"br", "img", "meta", "link", "hr", "input", "source", "wbr", "area", "base", "col", "embed",
         "param", "track"}


def sniff(path: Path) -> bool:
    """A `messages*.html` page with Telegram's markup, or a folder whose `messages.html` is one."""
    path = Path(path)
    if path.is_dir():
        path = path / "messages.html"
        if not path.is_file():
            return False
    elif not (path.is_file() and _PAGE.fullmatch(path.name)):
        return False
    head = read_head(path)
    return '"page_wrap"' in head and (
        '"page_header"' in head or "message default" in head or "message service" in head
    ) and ("chat_page" in head or '"history"' in head or "message default" in head)


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """One conversation: the folder's pages in order (messages.html, messages2.html, ...), or a page."""
    path = Path(path)
    if path.is_dir():
        pages = _pages(path)
        if not pages:
            raise IngestError(path, None, "no messages.html in this folder")
        fallback, seed = path.name, None
    else:
        # A single page: its first messages may be "joined" to the last author of the page before.
        pages, fallback = [path], path.parent.name or path.stem
        siblings = _pages(path.parent)
        seed = siblings[siblings.index(path) - 1] if path in siblings and siblings.index(path) > 0 else None
    reader = _Reader()
    if seed is not None:
        try:
            _feed(reader, seed)
        except IngestError:  # the page asked for is still readable without its predecessor
            reader.reset()
        reader.rows = []
    for page in pages:
        _feed(reader, page)
    conversation = reader.title or clean_name(fallback)
    rows = _date_services(reader.rows)
    for row in rows:
        if row.get("sent_at") is None:
            continue  # a day separator, or a chat of service notices only that nothing dates
        yield Message(PLATFORM, conversation, row["author"], row["sent_at"], row["text"], row["kind"],
                      row["reply_to"], row["source_id"])


def _pages(folder: Path) -> list[Path]:
    """messages.html, messages2.html, ..., messages10.html in numeric order."""
    try:
        found = [p for p in folder.iterdir() if _PAGE.fullmatch(p.name) and p.is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(_PAGE.fullmatch(p.name).group(1) or 1))


def _feed(reader: "_Reader", page: Path) -> None:
    reader.page = page
    try:
        reader.feed(read_text(page))
        reader.close()
    except IngestError:
        raise
    except Exception as e:  # html.parser copes with almost anything; be precise if it does not
        raise IngestError(page, f"line {reader.getpos()[0]}", f"cannot read the HTML: {e}") from None
    reader.reset()


def _date_services(rows: list[dict]) -> list[dict]:
    """Service notices carry no time: take the previous message's on the same day (rows with
    "separator" mark a new day), else the next message's on that day, else any neighbour's."""
    for order, reset in ((rows, True), (rows[::-1], True), (rows, False)):
        last = None
        for row in order:
            if row.get("separator"):
                last = None if reset else last
            elif row["sent_at"] is None:
                row["sent_at"] = last
            else:
                last = row["sent_at"]
    return rows


def _parse_date(title: str, page: Path, line: int) -> datetime:
    """ "02.01.2023 10:00:00 UTC+01:00" -> 2023-01-02 10:00:00+01:00; without the zone -> naive."""
    d = _DATE.search(title)
    if not d:
        raise IngestError(page, f"line {line}", f"not a date like 02.01.2023 10:00:00: {title!r}")
    day, month, year, hh, mm, ss, sign, oh, om = d.groups()
    try:
        naive = datetime(int(year), int(month), int(day), int(hh), int(mm), int(ss or 0))
        if sign is None:
            return naive
        return naive.replace(tzinfo=utc_offset(sign, oh, om))
    except ValueError:
        raise IngestError(page, f"line {line}", f"not a valid date: {title!r}") from None


class _Reader(HTMLParser):
    """Walks the pages keeping a stack of open <div>s; each `message` div becomes one row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page: Path | None = None
        self.title = ""
        self.rows: list[dict] = []
        self.author = ""  # the last named author, for "joined" messages
        self.stack: list[tuple[str, set]] = []
        self.msg: dict | None = None
        self.msg_depth = 0
        self.capture: str | None = None  # "title", "from", "text", "service"
        self.capture_depth = 0
        self.buf: list[str] = []
        self.skip_depth = 0  # inside a <span class="details"> of from_name ("via @bot", a date)

    def reset(self):
        super().reset()
        self.stack, self.msg, self.capture, self.buf, self.skip_depth = [], None, None, [], 0

    # -- structure -----------------------------------------------------------------------------
    def _in(self, cls: str) -> bool:
        return any(cls in c for _, c in self.stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = set((a.get("class") or "").split())
        if tag == "br":
            if self.capture in ("text", "service"):
                self.buf.append("\n")
            return
        if self.capture == "from" and tag == "span" and "details" in cls and not self.skip_depth:
            self.skip_depth = len(self.stack) + 1
        if self.msg is not None and tag == "a" and self._in("reply_to"):
            m = _GOTO.search(a.get("href") or "") or _GOTO.search(a.get("onclick") or "")
            if m and self.msg["reply_to"] is None:
                self.msg["reply_to"] = m.group(1)
        if tag in _VOID:
            return
        self.stack.append((tag, cls))
        if tag != "div":
            return
        if "message" in cls and self.msg is None:
            self._start_message(a, cls)
        elif self.msg is not None and self.capture is None:
            forwarded = self._in("forwarded")
            if "from_name" in cls and not forwarded:
                self._capture("from")
            elif "text" in cls and not self._in("reply_to") and not self._in("media_wrap"):
                self._capture("text")
            elif "date" in cls and "details" in cls and a.get("title") and not forwarded \
                    and self.msg["date"] is None:
                self.msg["date"] = (a["title"], self.getpos()[0])
            elif "media_wrap" in cls:
                self.msg["media"] = True
            elif self.msg["service"] and "body" in cls and "details" in cls:
                self._capture("service")
        elif self.msg is None and self.capture is None and "text" in cls and "bold" in cls \
                and self._in("page_header") and not self.title:
            self._capture("title")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in _VOID or not any(t == tag for t, _ in self.stack):
            return  # a stray closing tag: ignore it, as browsers do
        while self.stack:
            t, _ = self.stack.pop()
            depth = len(self.stack)
            if self.skip_depth and depth < self.skip_depth:
                self.skip_depth = 0
            if self.capture is not None and depth < self.capture_depth:
                self._end_capture()
            if self.msg is not None and depth < self.msg_depth:
                self._end_message()
            if t == tag:
                break

    def handle_data(self, data):
        if self.capture is not None and not self.skip_depth:
            # Raw newlines are the exporter's indentation (a line break in the text is a <br>).
            self.buf.append(_RAW_SPACE.sub(" ", data))

    def close(self):
        super().close()
        while self.stack:  # a truncated page: close what is open
            self.handle_endtag(self.stack[-1][0])

    # -- messages ------------------------------------------------------------------------------
    def _start_message(self, attrs: dict, cls: set):
        m = _MSG_ID.search(attrs.get("id") or "")
        self.msg = {
            "id": m.group(1) if m else None, "service": "service" in cls,
            "author": None, "date": None, "text": [], "media": False, "reply_to": None,
        }
        self.msg_depth = len(self.stack)

    def _capture(self, what: str):
        self.capture, self.capture_depth, self.buf = what, len(self.stack), []

    def _end_capture(self):
        value = "".join(self.buf)
        what, self.capture, self.buf = self.capture, None, []
        if what == "title":
            self.title = clean_name(_flatten(value))
        elif self.msg is None:
            return
        elif what == "from":
            self.msg["author"] = clean_name(_flatten(value))
        else:
            self.msg["text"].append(_flatten_text(value))

    def _end_message(self):
        msg, self.msg = self.msg, None
        if self.capture is not None:
            self._end_capture()
        if msg["service"]:
            if msg["id"] is None or msg["id"].startswith("-"):
                self.rows.append({"separator": True})  # a day separator ("2 January 2023")
                return
            text = "\n".join(t for t in msg["text"] if t)
            self.rows.append({"author": "", "sent_at": None, "text": text, "kind": "system",
                              "reply_to": None, "source_id": msg["id"]})
            return
        # Telegram always writes the title; a hand-edited page without one borrows a neighbour's time.
        sent_at = _parse_date(msg["date"][0], self.page, msg["date"][1]) if msg["date"] else None
        if msg["author"]:
            self.author = msg["author"]
        author = msg["author"] or self.author
        text = "\n".join(t for t in msg["text"] if t)
        self.rows.append({"author": author, "sent_at": sent_at, "text": text,
                          "kind": "media" if msg["media"] else "text",
                          "reply_to": msg["reply_to"], "source_id": msg["id"]})


def _flatten(s: str) -> str:
    return " ".join(strip_invisible(s).split())


def _flatten_text(s: str) -> str:
    """Runs of spaces collapse as a browser shows them; <br> newlines kept; ends stripped."""
    lines = [" ".join(line.split()) for line in strip_invisible(s).split("\n")]
    return "\n".join(lines).strip()
