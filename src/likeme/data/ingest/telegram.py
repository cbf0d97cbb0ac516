"""Telegram Desktop JSON export (`result.json`): one chat, or a full export with many.

    {"name": "Sam", "type": "personal_chat", "id": 42, "messages": [
        {"id": 7, "type": "message", "date": "2023-01-02T10:00:00", "date_unixtime": "1672650000",
         "from": "Sam", "from_id": "user42", "text": ["see ", {"type": "link", "text": "x.org"}],
         "reply_to_message_id": 6}]}

A full export ("Export Telegram data") has `{"about": ..., "chats": {"list": [chat, ...]},
"left_chats": {"list": [...]}}`; each chat becomes its own conversation.

Choices:
- `text` may be a string or a list of strings and `{type, text}` entities; the entities' text is
  joined as written. A `text_link` ("click [here](https://x.org)") keeps only its label "here": the
  person typed the label and the link sits behind it, so "here (https://x.org)" would put words in
  their mouth (a label that is empty or blank falls back to the URL).
- `date` is the exporting computer's wall time and `date_unixtime` the instant; with both, the
  offset between them (rounded to 15 minutes) becomes the timezone, so `sent_at` shows the wall
  time the person saw *and* is aware. Only the epoch -> UTC; only `date` -> naive.
- Media (photo, file, sticker, voice, video, location, poll, contact) -> kind "media", caption in
  `text` (a poll with no caption gets its question). Service messages -> "system", author = actor.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, json_head, load_json, strip_invisible
from likeme.errors import IngestError

NAME = "telegram"
DESCRIPTION = "Telegram Desktop JSON export (result.json: one chat or a full export)"
PLATFORM = "telegram"

# Chat "type" values written by Telegram Desktop.
_CHAT_TYPES = ("personal_chat|bot_chat|private_group|private_supergroup|public_supergroup|"
               "private_channel|public_channel|saved_messages|replies")
_SNIFF_CHAT = re.compile(r'"type":"(?:%s)"' % _CHAT_TYPES)
_SNIFF_MSG = re.compile(r'"type":"(?:message|service)"')
_SNIFF_TG = re.compile(
    r'"date_unixtime":"\d+"|"from_id":"(?:user|channel|chat)\d+"|"actor_id":"|"text_entities":\['
    r'|"date":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"'
)
# Other apps' JSON that also has "messages": Discord (DiscordChatExporter), Messenger/Instagram.
_NOT_TG = re.compile(r'"guild":\{|"sender_name":|"participants":\[|"timestamp_ms":')
_MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "location_information",
               "contact_information", "poll", "place_name", "game_title", "invoice_information")
_DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)")


def sniff(path: Path) -> bool:
    """A JSON file whose head has Telegram's keys. A folder is never claimed (its result.json is)."""
    path = Path(path)
    if not path.is_file():
        return False
    head = json_head(path)
    if not head.startswith("{") or _NOT_TG.search(head):
        return False
    if head.startswith('{"about":"') and ("Telegram" in head[:600] or '"personal_information":' in head):
        return True
    if '"chats":{"about":' in head or '"chats":{"list":[' in head or '"left_chats":{' in head:
        return True
    if '"messages":[' not in head:
        return False
    if _SNIFF_MSG.search(head):
        return bool(_SNIFF_TG.search(head))
    # A chat with no messages yet: {"name":"Sam","type":"personal_chat","id":1,"messages":[]}
    return bool(_SNIFF_CHAT.search(head))


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of every chat in the file, chat by chat, each in the export's (chronological) order."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict):
        raise IngestError(path, None, "not a Telegram export: expected a JSON object at the top")
    if "chats" in data or "left_chats" in data:
        info = data.get("personal_information")
        if me is None and isinstance(info, dict):
            full = " ".join(str(info.get(k) or "") for k in ("first_name", "last_name")).strip()
            me = full or None
        for key in ("chats", "left_chats"):
            section = data.get(key)
            if section is None:
                continue
            chats = section.get("list") if isinstance(section, dict) else None
            if not isinstance(chats, list):
                raise IngestError(path, f"{key}.list", "expected a list of chats")
            for i, chat in enumerate(chats):
                yield from _chat(path, chat, f"{key}.list[{i}]", me)
    elif "messages" in data:
        yield from _chat(path, data, "", me)
    else:
        raise IngestError(path, None, 'not a Telegram export: no "messages" or "chats" key')


def _chat(path: Path, chat, where: str, me: str | None) -> Iterator[Message]:
    if not isinstance(chat, dict):
        raise IngestError(path, where or None, "expected a chat object")
    messages = chat.get("messages")
    if not isinstance(messages, list):
        raise IngestError(path, f"{where}.messages" if where else "messages", "expected a list of messages")
    conversation = _conversation(path, chat, messages, me, bool(where))
    prefix = f"{where}.messages" if where else "messages"
    for i, m in enumerate(messages):
        msg = _message(path, m, f"{prefix}[{i}]", conversation)
        if msg is not None:
            yield msg


def _conversation(path: Path, chat: dict, messages: list, me: str | None, nested: bool) -> str:
    """The chat's title. Nameless chats: Saved Messages are named so, a personal chat (the other
    person deleted their account) after the other author, else "chat ID" inside a full export and
    the file's stem for a single-chat file."""
    name = chat.get("name")
    if isinstance(name, str) and clean_name(name):
        return clean_name(name)
    kind = chat.get("type")
    if kind == "saved_messages":
        return "Saved Messages"
    if kind in ("personal_chat", "bot_chat"):
        mine = clean_name(me) if me else None
        for m in messages:
            if isinstance(m, dict) and m.get("type", "message") == "message" and "from" in m:
                who = _author(m.get("from"))
                if who != mine:
                    return who
        return "Deleted Account"
    if nested and chat.get("id") is not None:
        return f"chat {chat['id']}"
    return path.stem


def _message(path: Path, m, where: str, conversation: str) -> Message | None:
    if not isinstance(m, dict):
        raise IngestError(path, where, "expected a message object")
    sent_at = _when(path, m, where)
    text = _text(path, m, where)
    source_id = None if m.get("id") is None else str(m["id"])
    reply = m.get("reply_to_message_id")
    reply_to = None if reply is None or isinstance(reply, (dict, list)) else str(reply)
    if m.get("type") == "service":
        actor = m.get("actor")
        author = clean_name(actor) if isinstance(actor, str) else ""
        return Message(PLATFORM, conversation, author, sent_at, text or _action_text(m),
                       "system", reply_to, source_id)
    kind = "media" if any(m.get(k) for k in _MEDIA_KEYS) else "text"
    if kind == "media" and not text and isinstance(m.get("poll"), dict):
        q = m["poll"].get("question")
        text = strip_invisible(q).strip() if isinstance(q, str) else ""
    return Message(PLATFORM, conversation, _author(m.get("from")), sent_at, text, kind, reply_to, source_id)


def _author(value) -> str:
    """`from` is null for deleted accounts: Telegram itself shows them as "Deleted Account"."""
    if value is None:
        return "Deleted Account"
    return clean_name(str(value)) or "Deleted Account"


def _text(path: Path, m: dict, where: str) -> str:
    """`text` (or `text_entities` when `text` is missing) as a person reads it.

    Example: ["Link: ", {"type": "text_link", "text": "here", "href": "https://x.org"}] -> "Link: here"
    """
    value = m.get("text")
    if value is None:
        value = m.get("text_entities") or ""
    if isinstance(value, str):
        return strip_invisible(value).strip()
    if not isinstance(value, list):
        raise IngestError(path, f"{where}.text", "expected a string or a list of text parts")
    parts = []
    for part in value:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            t = part.get("text")
            t = t if isinstance(t, str) else ""
            if part.get("type") == "text_link" and not t.strip() and isinstance(part.get("href"), str):
                t = part["href"]
            parts.append(t)
        elif part is not None:
            raise IngestError(path, f"{where}.text", "expected strings and {type, text} entities")
    return strip_invisible("".join(parts)).strip()


def _action_text(m: dict) -> str:
    """A readable line for a service message: {"action": "invite_members", "members": ["Ana"]}
    -> "invite members: Ana"."""
    action = m.get("action")
    words = action.replace("_", " ") if isinstance(action, str) else "service message"
    details = []
    for key in ("title", "new_title"):
        if isinstance(m.get(key), str):
            details.append(m[key])
    members = m.get("members")
    if isinstance(members, list):
        details.append(", ".join(str(x) if x is not None else "Deleted Account" for x in members))
    if isinstance(m.get("duration_seconds"), int):
        details.append(f"{m['duration_seconds']} s")
    return f"{words}: {'; '.join(details)}" if details else words


def _when(path: Path, m: dict, where: str) -> datetime:
    local = _local(m.get("date"))
    unix = m.get("date_unixtime")
    epoch = None
    if isinstance(unix, (str, int)) and not isinstance(unix, bool):
        try:
            epoch = datetime.fromtimestamp(int(unix), timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise IngestError(path, f"{where}.date_unixtime", f"not a Unix time: {unix!r}") from None
    if epoch is not None and local is not None:
        # local - utc is the exporting computer's offset; seconds may differ by a tick, and zones
        # are whole quarter hours (Nepal +05:45), so round to 15 minutes.
        quarters = round((local - epoch.replace(tzinfo=None)).total_seconds() / 900)
        if abs(quarters) <= 14 * 4:
            return epoch.astimezone(timezone(timedelta(minutes=15 * quarters)))
        return epoch
    if epoch is not None:
        return epoch
    if local is not None:
        return local
    if "date" in m:
        raise IngestError(path, f"{where}.date", f"not a date like 2023-01-02T10:00:00: {m.get('date')!r}")
    raise IngestError(path, where, "message has no \"date\" or \"date_unixtime\"")


def _local(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    d = _DATE.match(value)
    if not d:
        return None
    try:
        return datetime(*map(int, d.groups()))
    except ValueError:
        return None
