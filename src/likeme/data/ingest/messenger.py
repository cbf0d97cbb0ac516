"""Facebook Messenger and Instagram "Download your information" JSON (`message_1.json`, ...).

    {"participants": [{"name": "Ana"}, {"name": "Sam"}],
     "messages": [{"sender_name": "Sam", "timestamp_ms": 1579294140000, "content": "Hi"}, ...],
     "title": "Sam", "thread_path": "inbox/sam_123", ...}

Quirks handled:
- Every string is UTF-8 stored as Latin-1 code points ("Ã©" for "é"): each one is repaired with
  `s.encode("latin-1").decode("utf-8")`, kept as it is when that fails (already-correct files exist).
- Messages are newest first, and a long chat is split over `message_1.json`, `message_2.json`, ...
  (message_1 holds the newest). A FOLDER holding `message_1.json` is one conversation: all its
  `message_N.json` are merged and yielded oldest first. A single FILE is parsed on its own.
- The platform is "instagram" when the path (or the zip it came from: Instagram names its downloads
  `instagram-<user>-<date>.zip`, Facebook `facebook-<user>-<date>.zip`) mentions "instagram", or the
  chat's `joinable_mode` link is an ig.me / instagram.com link; otherwise "messenger". The JSON
  itself has no reliable marker: both apps write the same keys and `thread_path: "inbox/name_123"`.
- kinds: `content` -> text; photos/videos/gifs/audio_files/files/sticker -> media (caption, if any,
  in text; "X sent a photo." boilerplate dropped); a `share` with a link -> text with the link;
  calls (`type: Call`, `call_duration`), joins/leaves (`Subscribe`/`Unsubscribe`), reactions
  notices ("Liked a message", "Reacted ❤ to your message"), "X sent an attachment.", group
  renames, nicknames, themes and polls -> system. A message with no content at all (a
  disappearing/view-once message, an unsupported attachment) -> media with empty text, and so is an
  unsent message (`is_unsent: true`, "X unsent a message."): the person sent it, its text is gone,
  so it is a turn without text like a photo (author kept).
- `sent_at` from `timestamp_ms` (older exports: `timestamp` in seconds) -> UTC-aware datetime.
- Conversation: `title`, else the participants other than `me` (all of them when `me` is not
  given), else the thread_path's name, else the file or folder name. There are no message ids, so
  `source_id`/`reply_to` are None.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, json_head, load_json
from likeme.errors import IngestError

NAME = "messenger"
DESCRIPTION = "Facebook Messenger / Instagram JSON (message_1.json, message_2.json, ...)"

_MESSAGE_FILE = re.compile(r"message_(\d+)\.json", re.IGNORECASE)
_MEDIA_KEYS = ("photos", "videos", "gifs", "audio_files", "files", "sticker")
# English notices Messenger and Instagram write as `content` of an ordinary message. Anchored to
# the whole content so that a person writing "I left the group" mid-sentence stays text.
_SYSTEM = re.compile(
    r"^(?:"
    r".{1,100}? sent an attachment\."
    r"|Liked a message"
    r"|(?:.{1,100}? )?[Rr]eacted .{1,20} to (?:your|a|their|his|her) message"
    r"|.{1,100}? (?:joined|left) the (?:group|conversation|video chat|call)\."
    r"|.{1,100}? (?:added|removed) .{1,200} (?:to|from) the (?:group|conversation)\."
    r"|.{1,100}? (?:named|renamed) the (?:group|conversation)\b.*"
    r"|.{1,100}? changed the (?:group photo|group name|chat theme|theme|emoji|quick reaction)\b.*"
    r"|.{1,100}? (?:set|cleared) (?:the|your|his|her|their) (?:own )?nickname\b.*"
    r"|.{1,100}? set the (?:emoji|quick reaction) to .*"
    r"|.{1,100}? (?:started|joined|ended) (?:a|the) (?:video chat|call|video call|audio call)\."
    r"|The (?:video chat|call|video call|audio call) ended\."
    r"|.{0,100}?[Mm]issed (?:a|your) (?:video |audio )?(?:call|chat)\b.*"
    r"|.{1,100}?'s? poll has multiple updates\."
    r"|This poll is no longer available\."
    r"|.{1,100}? (?:created a poll|voted for|changed (?:their|his|her|your) vote)\b.*"
    r"|.{1,100}? pinned a message\."
    r"|.{1,100}? turned (?:on|off) disappearing messages\b.*"
    r"|.{1,100}? (?:is now an admin|made .{1,100} an admin|removed .{1,100} as an admin)\b.*"
    r"|Messages and calls are secured with end-to-end encryption\b.*"
    r")\s*$",
    re.DOTALL,
)
# An unsent message: sent, then taken back; a turn without text (media, text "").
_UNSENT = re.compile(r"^.{1,100}? unsent a message\.\s*$", re.DOTALL)
_SYSTEM_TYPES = {"call", "subscribe", "unsubscribe"}
# "Sam sent a photo." and friends: the text of a media message that carries no caption.
_MEDIA_BOILERPLATE = re.compile(
    r"^.{1,100}? sent (?:a|an|\d+) (?:photos?|videos?|attachments?|GIFs?|stickers?|voice messages?|audio(?: clip)?|files?|live location)\.\s*$",
    re.DOTALL,
)


def _fix(s: str) -> str:
    """Latin-1 mojibake -> text: "J\u00e2\u009d\u00a4\u00ef\u00b8\u008fhn" -> "J❤️hn"; "été" stays."""
    try:
        return s.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return s


def _sniff_file(path: Path) -> bool:
    head = json_head(path)
    if not head.startswith("{"):
        return False
    if head.startswith('{"participants":[{"name":'):
        return True
    return '"sender_name":' in head and ('"timestamp_ms":' in head or '"timestamp":' in head) and '"messages":[' in head


def sniff(path: Path) -> bool:
    """A folder holding `message_1.json`, or one JSON file with Messenger's keys."""
    path = Path(path)
    if path.is_dir():
        first = path / "message_1.json"
        return first.is_file() and _sniff_file(first)
    return path.is_file() and _sniff_file(path)


def _files(path: Path) -> list[Path]:
    """The files of one conversation, message_1.json first."""
    if not path.is_dir():
        return [path]
    found = [(int(m.group(1)), p) for p in path.iterdir() if (m := _MESSAGE_FILE.fullmatch(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def _is_instagram(path: Path, data: dict) -> bool:
    # Only the export's own part of the path (zip name/your_instagram_activity/messages/inbox/chat/
    # file): a home folder that happens to contain "instagram" says nothing.
    if any("instagram" in part.lower() for part in path.resolve().parts[-7:]):
        return True
    mode = data.get("joinable_mode")
    link = mode.get("link") if isinstance(mode, dict) else None
    return isinstance(link, str) and ("ig.me/" in link or "instagram.com" in link)


def _str(value, path: Path, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise IngestError(path, where, f"expected a string, found {type(value).__name__}; is this an unmodified Messenger/Instagram export?")
    return _fix(value)


def _when(msg: dict, path: Path, where: str) -> datetime:
    ms = msg.get("timestamp_ms")
    seconds = msg.get("timestamp") if ms is None else None
    try:
        if isinstance(ms, int) and not isinstance(ms, bool):  # exact milliseconds, no float rounding
            return datetime.fromtimestamp(ms // 1000, tz=timezone.utc) + timedelta(milliseconds=ms % 1000)
        if isinstance(ms, float):
            seconds = ms / 1000
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise IngestError(path, where, "message without a numeric timestamp_ms; is this an unmodified Messenger/Instagram export?")
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise IngestError(path, where, f"timestamp out of range: {seconds!r}") from None


def _classify(msg: dict, content: str, path: Path, where: str) -> tuple[str, str]:
    """(kind, text) of one message."""
    mtype = msg.get("type")
    if msg.get("is_unsent") is True or _UNSENT.match(content):
        return "media", ""
    if (isinstance(mtype, str) and mtype.lower() in _SYSTEM_TYPES) or "call_duration" in msg:
        return "system", content
    share = msg.get("share")
    link = share.get("link") if isinstance(share, dict) else None
    if isinstance(link, str) and link:
        link = _fix(link)
        if link in content:
            return "text", content
        if not content or _SYSTEM.match(content) or _MEDIA_BOILERPLATE.match(content):
            return "text", link
        return "text", f"{content}\n{link}"
    if any(msg.get(k) for k in _MEDIA_KEYS):
        return "media", "" if _MEDIA_BOILERPLATE.match(content) or _SYSTEM.match(content) else content
    if not content:
        # Nothing readable: a disappearing/view-once message or an attachment type the export
        # does not describe. Someone sent something, but no words.
        return "media", ""
    if _SYSTEM.match(content):
        return "system", content
    return "text", content


def _conversation(data: dict, path: Path, me: str | None) -> str:
    title = data.get("title")
    if isinstance(title, str) and clean_name(_fix(title)):
        return clean_name(_fix(title))
    names = []
    participants = data.get("participants")
    if isinstance(participants, list):
        for p in participants:
            name = p.get("name") if isinstance(p, dict) else p if isinstance(p, str) else None
            if isinstance(name, str) and clean_name(_fix(name)):
                names.append(clean_name(_fix(name)))
    others = [n for n in names if n != me] if me else names
    if others:
        return ", ".join(others)
    thread = data.get("thread_path")
    if isinstance(thread, str) and thread.strip("/"):
        # "inbox/samsmith_123456" -> "samsmith" (the folder is the name, "_", the thread id)
        return thread.strip("/").rsplit("/", 1)[-1].rsplit("_", 1)[0] or thread
    return path.name if path.is_dir() else path.stem


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of one Messenger/Instagram conversation (a message_N.json file or its folder)."""
    path = Path(path)
    files = _files(path)
    if not files:
        raise IngestError(path, None, "no message_N.json in this folder; point at a conversation folder of the export")
    rows: list[tuple[datetime, Message]] = []
    conversation = platform = None
    # message_1.json holds the newest messages, each file newest first: walking files from the
    # last to the first and each file backwards gives oldest first, which the stable sort keeps
    # for messages that share a timestamp.
    for f in reversed(files):
        data = load_json(f)
        if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
            raise IngestError(f, None, 'expected an object with a "messages" list (a Messenger/Instagram message_N.json)')
        if conversation is None or f == files[0]:
            conversation = _conversation(data, path, me)
            platform = "instagram" if _is_instagram(f, data) else "messenger"
        msgs = data["messages"]
        for i in range(len(msgs) - 1, -1, -1):
            msg = msgs[i]
            where = f"messages[{i}]"
            if not isinstance(msg, dict):
                raise IngestError(f, where, "expected an object; is this an unmodified Messenger/Instagram export?")
            sent_at = _when(msg, f, where)
            content = _str(msg.get("content"), f, f"{where}.content")
            author = clean_name(_str(msg.get("sender_name"), f, f"{where}.sender_name"))
            kind, text = _classify(msg, content, f, where)
            rows.append((sent_at, Message(platform="", conversation="", author=author, sent_at=sent_at, text=text, kind=kind)))
    rows.sort(key=lambda r: r[0])
    for _, m in rows:
        m.platform, m.conversation = platform, conversation
        yield m
