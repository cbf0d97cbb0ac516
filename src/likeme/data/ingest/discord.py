"""DiscordChatExporter JSON: one channel (or DM) per file.

    {"guild": {"id": "0", "name": "Direct Messages"},
     "channel": {"id": "53", "type": "DirectTextChat", "category": "Private", "name": "Sam"},
     "messages": [{"id": "7", "type": "Reply", "timestamp": "2019-01-04T17:52:39.762+00:00",
                   "content": "hi <@44>", "author": {"id": "11", "name": "ana", "nickname": "Ana"},
                   "attachments": [], "stickers": [], "reference": {"messageId": "6"},
                   "mentions": [{"id": "44", "name": "sam", "nickname": "Sam"}]}]}

Choices:
- author: the account `name` (the username), not the per-server `nickname`: the same person keeps
  one name across servers and DMs, which is what "who am I in this data" needs (the shared
  expectations for the real DM sample ask for the name too).
- conversation: the channel's name for DMs and group DMs, "Guild / #channel" for servers.
- `Default`/`Reply` (and bot command replies) are words: "text", or "media" when there is no
  content but attachments/stickers/embeds; every other type (Call, ChannelNameChange,
  ChannelPinnedMessage, RecipientAdd, GuildMemberJoin, ThreadCreated, ...) is "system".
- `<@123>` mentions become "@name" from `mentions`; custom emoji `<:wave:123>` become ":wave:";
  lone UTF-16 surrogates (emoji split into escaped halves) are rejoined.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import (
    clean_name,
    decode,
    fix_mojibake,
    json_head,
    loads_json,
    parse_iso,
    read_bytes,
    strip_invisible,
)
from likeme.errors import IngestError

NAME = "discord"
DESCRIPTION = "DiscordChatExporter JSON (a channel or DM per file)"
PLATFORM = "discord"

_WORD_TYPES = {"Default", "Reply", "ChatInputCommand", "ContextMenuCommand"}
_DM_TYPES = {"DirectTextChat", "DirectGroupTextChat"}
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<a?(:\w+:)\d+>")
_SURROGATE = re.compile("[\ud800-\udfff]")


def sniff(path: Path) -> bool:
    """A JSON object that starts with DiscordChatExporter's `guild` and `channel` blocks."""
    path = Path(path)
    if not path.is_file():
        return False
    head = json_head(path)
    return head.startswith("{") and '"guild":{' in head and '"channel":{' in head and (
        '"messages":[' in head or '"dateRange":' in head or '"exportedAt":' in head
    )


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """The channel's messages in the export's (chronological) order."""
    path = Path(path)
    data = _load(path)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise IngestError(path, None, 'not a DiscordChatExporter JSON: no "messages" list')
    conversation = _conversation(path, data.get("guild"), data.get("channel"))
    for i, m in enumerate(data["messages"]):
        yield _message(path, m, f"messages[{i}]", conversation)


def _load(path: Path):
    """JSON with place-of-error; also bytes where an emoji's two surrogate halves were each
    encoded as UTF-8 (CESU-8), which a strict UTF-8 decoder refuses."""
    raw = read_bytes(path)
    try:
        text = decode(raw, path)
    except IngestError:
        try:
            text = fix_mojibake(raw.decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise IngestError(path, None, "not UTF-8 text; export the channel again") from None
    return loads_json(text, path)


def _fix(s) -> str:
    """A string field, surrogate halves rejoined: "\\ud83d\\ude00" (two code points) -> "😀"."""
    if not isinstance(s, str):
        return "" if s is None else str(s)
    if _SURROGATE.search(s):
        s = s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return s


def _conversation(path: Path, guild, channel) -> str:
    guild = guild if isinstance(guild, dict) else {}
    channel = channel if isinstance(channel, dict) else {}
    name = clean_name(_fix(channel.get("name"))) or path.stem
    gname = clean_name(_fix(guild.get("name")))
    if channel.get("type") in _DM_TYPES or str(guild.get("id")) == "0" or not gname \
            or gname == "Direct Messages":
        return name
    return f"{gname} / #{name}"


def _user(u) -> str:
    if not isinstance(u, dict):
        return ""
    return clean_name(_fix(u.get("name"))) or clean_name(_fix(u.get("nickname")))


def _message(path: Path, m, where: str, conversation: str) -> Message:
    if not isinstance(m, dict):
        raise IngestError(path, where, "expected a message object")
    sent_at = _when(path, m.get("timestamp"), f"{where}.timestamp")
    author = _user(m.get("author"))
    mentioned = m.get("mentions") if isinstance(m.get("mentions"), list) else []
    mentions = {str(u.get("id")): _user(u) for u in mentioned if isinstance(u, dict)}
    text = _render(_fix(m.get("content")), mentions)
    kind = "text"
    mtype = m.get("type") or "Default"
    if not isinstance(mtype, str) or mtype not in _WORD_TYPES:
        kind = "system"
    elif not text and any(m.get(k) for k in ("attachments", "stickers", "embeds")):
        kind = "media"
    ref = m.get("reference")
    reply = ref.get("messageId") if isinstance(ref, dict) else None
    return Message(PLATFORM, conversation, author, sent_at, text, kind,
                   None if reply is None else str(reply),
                   None if m.get("id") is None else str(m["id"]))


def _render(text: str, mentions: dict) -> str:
    """ "hi <@44> <:wave:123>" -> "hi @sam :wave:" (an unknown id stays as written)."""
    text = _USER_MENTION.sub(lambda g: f"@{mentions[g.group(1)]}" if mentions.get(g.group(1)) else g.group(0), text)
    text = _CUSTOM_EMOJI.sub(r"\1", text)
    return strip_invisible(text).strip()


def _when(path: Path, value, where: str) -> datetime:
    """ "2019-01-04T17:52:39.762+00:00" -> aware datetime (naive when the export has no zone)."""
    try:
        t = parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        raise IngestError(path, where, f"not a valid date: {value!r}") from None
    if t is None:
        raise IngestError(path, where, f"not an ISO date like 2019-01-04T17:52:39+00:00: {value!r}")
    return t
