"""Google Takeout: Hangouts (`Hangouts.json`) and Google Chat (`Google Chat/Groups/*/messages.json`).

Hangouts.json holds every conversation; both of its layouts are read:

    {"conversations": [{"conversation": {"conversation": {...participant_data...}}, "events": [...]}]}
    {"conversation_state": [{"conversation_state": {"conversation": {...}, "event": [...]}}]}  (< 2018)

Events carry a microsecond epoch `timestamp` (-> UTC-aware `sent_at`) and either a `chat_message`
(text `segment`s: TEXT / LINK / LINE_BREAK, plus `attachment`s -> "media") or a system event
(`membership_change`, `conversation_rename`, `hangout_event` = calls). Senders are named by the
participant's `fallback_name`, else their gaia id.

Google Chat writes one folder per DM or Space with `messages.json` ({"messages": [{"creator",
"created_date", "text", "attached_files", "message_id", ...}]}) and `group_info.json` ({"name",
"members"}). `created_date` reads like "Tuesday, January 2, 2024 at 10:00:00 AM UTC" (newer exports
put U+202F before AM/PM); the zone (UTC, UTC+1, GMT-05:30, ...) makes `sent_at` aware. A deleted
message (`deleted_date` or `message_state: "DELETED"`) was sent but its text is gone: like a photo,
it is a turn without text (kind "media", `text=""`, author kept).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import (
    clean_name,
    json_head,
    load_json,
    strip_invisible,
    utc_offset,
)
from likeme.errors import IngestError

NAME = "hangouts"
DESCRIPTION = "Google Takeout: Hangouts.json and Google Chat messages.json"


def sniff(path: Path) -> bool:
    """A Hangouts.json or a Google Chat messages.json (judged by the keys at the start)."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    head = json_head(path, 16384)
    if head.startswith('{"conversations":[{"conversation":{') and (
            '"conversation_state"' in head or '"events"' in head or '"participant_data"' in head):
        return True
    if head.startswith("{") and '"conversation_state":[{"conversation_id":' in head:
        return True
    return head.startswith('{"messages":[') and '"creator":{' in head and '"created_date":' in head


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of a Hangouts.json (every conversation) or of one Google Chat messages.json.

    `me` is not needed: both exports name every sender. Example (Google Chat):
        {"creator": {"name": "Ana"}, "created_date": "Tuesday, January 2, 2024 at 10:00:00 AM UTC",
         "text": "hi", "message_id": "x/y"}
        -> Message("google-chat", "<group name>", "Ana", 2024-01-02 10:00+00:00, "hi", source_id="x/y")
    """
    path = Path(path)
    data = load_json(path)
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        yield from _google_chat(path, data["messages"])
    elif isinstance(data, dict) and isinstance(data.get("conversations"), list):
        for i, item in enumerate(data["conversations"]):
            if not isinstance(item, dict):
                raise IngestError(path, f"conversations[{i}]", "expected an object")
            conv = _dig(item, "conversation", "conversation")
            if not isinstance(conv, dict):
                conv = item.get("conversation") if isinstance(item.get("conversation"), dict) else {}
            yield from _hangouts_conversation(path, f"conversations[{i}]", conv, item.get("events"))
    elif isinstance(data, dict) and isinstance(data.get("conversation_state"), list):
        for i, item in enumerate(data["conversation_state"]):
            state = _dig(item, "conversation_state")
            if not isinstance(state, dict):
                raise IngestError(path, f"conversation_state[{i}]", "expected an object with 'conversation_state'")
            conv = state.get("conversation") if isinstance(state.get("conversation"), dict) else {}
            yield from _hangouts_conversation(path, f"conversation_state[{i}]", conv, state.get("event"))
    else:
        raise IngestError(path, None, "not a Hangouts.json or Google Chat messages.json "
                          "(expected 'conversations' or 'messages' at the top)")


def _dig(obj, *keys):
    """obj[k1][k2]... or None when any step is missing or not an object."""
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _str(v) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


# ---------------------------------------------------------------------------------------- Hangouts

def _hangouts_conversation(path: Path, where: str, conv: dict, events) -> Iterator[Message]:
    if events is None:
        return
    if not isinstance(events, list):
        raise IngestError(path, f"{where}.events", "expected a list of events")
    names: dict[str, str] = {}
    order: list[str] = []
    for p in _list(conv.get("participant_data")):
        gaia = _str(_dig(p, "id", "gaia_id") or _dig(p, "id", "chat_id"))
        if gaia:
            name = clean_name(_str(_dig(p, "fallback_name")))
            names[gaia] = name or gaia
            order.append(gaia)
    self_id = _str(_dig(conv, "self_conversation_state", "self_read_state", "participant_id", "gaia_id"))

    def who(ident) -> str:
        gaia = _str(_dig(ident, "gaia_id") or _dig(ident, "chat_id"))
        return names.get(gaia, gaia)

    title = clean_name(_str(conv.get("name")))
    if not title:
        others = [names[g] for g in order if g != self_id]
        title = ", ".join(others or [names[g] for g in order]) or _str(_dig(conv, "id", "id")) or path.stem

    out: list[tuple[int, int, Message]] = []
    for j, ev in enumerate(events):
        place = f"{where}.events[{j}]"
        if not isinstance(ev, dict):
            raise IngestError(path, place, "expected an object")
        try:
            micros = int(_str(ev.get("timestamp")))
        except ValueError:
            raise IngestError(path, place, f"cannot read timestamp {ev.get('timestamp')!r} "
                              "(expected microseconds since 1970)") from None
        try:
            when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
        except OverflowError:
            raise IngestError(path, place, f"timestamp out of range: {micros}") from None
        author = who(ev.get("sender_id"))
        sid = _str(ev.get("event_id")) or None
        msg = _hangouts_event(ev, author, who)
        if msg is None:
            continue
        text, kind = msg
        out.append((micros, j, Message("hangouts", title, author, when, text, kind, None, sid)))
    out.sort(key=lambda t: (t[0], t[1]))
    for _, _, m in out:
        yield m


def _hangouts_event(ev: dict, author: str, who) -> tuple[str, str] | None:
    """(text, kind) of one event, or None for events with nothing a person would read."""
    chat = ev.get("chat_message")
    if isinstance(chat, dict):
        content = chat.get("message_content") if isinstance(chat.get("message_content"), dict) else {}
        parts = []
        for seg in _list(content.get("segment")):
            if not isinstance(seg, dict):
                continue
            if seg.get("type") == "LINE_BREAK":
                parts.append("\n")
            else:
                parts.append(_str(seg.get("text")))
        text = strip_invisible("".join(parts)).strip()
        if content.get("attachment"):
            return text, "media"
        return (text, "text") if text else None
    change = ev.get("membership_change")
    if isinstance(change, dict):
        people = ", ".join(who(p) for p in _list(change.get("participant_id")))
        if change.get("type") == "LEAVE":
            return (f"{people} left" if people and people != author else "left"), "system"
        return f"added {people}" if people else "joined", "system"
    rename = ev.get("conversation_rename")
    if isinstance(rename, dict):
        return f"renamed the conversation to {_str(rename.get('new_name'))!r}", "system"
    call = ev.get("hangout_event")
    if isinstance(call, dict):
        media = "voice call" if call.get("media_type") == "AUDIO_ONLY" else "video call"
        if call.get("event_type") == "END_HANGOUT":
            secs = call.get("hangout_duration_secs")
            try:
                return f"{media} ended ({int(secs) // 60} min {int(secs) % 60} s)", "system"
            except (TypeError, ValueError, OverflowError):
                return f"{media} ended", "system"
        return f"started a {media}", "system"
    return None


# ------------------------------------------------------------------------------------- Google Chat

_MONTHS = {m: i for i, m in enumerate(
    ("january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"), 1)}
# "Tuesday, January 2, 2024 at 10:00:00 AM UTC"; weekday optional, seconds optional, 12h or 24h.
_GC_DATE = re.compile(
    r"^(?:[A-Za-z]+, )?([A-Za-z]+) (\d{1,2}), (\d{4})(?: at|,)? (\d{1,2}):(\d{2})(?::(\d{2}))?"
    r"(?: ?([AaPp])\.? ?[Mm]\.?)?(?: (.+))?$")
# "UTC", "GMT", "UTC+1", "UTC-05:30", "GMT+0530"
_ZONE = re.compile(r"^(?:UTC|GMT|Z)(?:([+-])(\d{1,2})(?::?(\d{2}))?)?$")
# A few abbreviations Takeout writes for accounts set to US / European zones.
_ABBREVIATIONS = {"PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5, "EST": -5,
                  "EDT": -4, "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3}


def parse_google_date(s: str) -> datetime | None:
    """Google Chat's `created_date` -> datetime (aware when the zone is known), None if unreadable.

    Example: "Tuesday, January 2, 2024 at 3:05:09\u202fPM UTC+1" -> 2024-01-02 15:05:09+01:00
    """
    s = " ".join(strip_invisible(s).replace("\u202f", " ").replace("\u00a0", " ").split())
    m = _GC_DATE.match(s)
    if m is None:
        return None
    month, day, year, hour, minute, sec, ampm, zone = m.groups()
    mo = _MONTHS.get(month.lower()) or next(
        (v for k, v in _MONTHS.items() if len(month) >= 3 and k.startswith(month.lower())), None)
    if mo is None:
        return None
    h = int(hour)
    if ampm:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if ampm.lower() == "p" else 0)
    tz = None
    if zone:
        z = _ZONE.match(zone.upper())
        if z:
            sign, zh, zm = z.groups()
            try:
                tz = utc_offset(sign, zh or 0, zm or 0)
            except ValueError:  # 24 hours or more
                return None
        elif zone.upper() in _ABBREVIATIONS:
            tz = timezone(timedelta(hours=_ABBREVIATIONS[zone.upper()]))
    try:
        return datetime(int(year), mo, int(day), h, int(minute), int(sec or 0), tzinfo=tz)
    except ValueError:
        return None


def _google_chat_owner(path: Path) -> set[str]:
    """Names/emails of the export's owner from `Google Chat/Users/*/user_info.json`, when present."""
    users = path.parent.parent.parent / "Users"
    found: set[str] = set()
    try:
        infos = sorted(users.glob("*/user_info.json")) if users.is_dir() else []
    except OSError:
        return found
    for info in infos[:1]:
        try:
            user = _dig(load_json(info), "user")
        except IngestError:
            continue
        if not isinstance(user, dict):
            continue
        found |= {v for v in (_str(user.get("name")), _str(user.get("email"))) if v}
    return found


def _google_chat_title(path: Path) -> str:
    folder = clean_name(path.parent.name) or path.stem
    info_path = path.parent / "group_info.json"
    if not info_path.is_file():
        return folder
    info = load_json(info_path)
    if not isinstance(info, dict):
        return folder
    name = clean_name(_str(info.get("name")))
    if name:
        return name
    # A DM has no name: call it after the other people in it (the owner, when the export says who
    # that is, left out). `me` is not used here so that the name never depends on options.
    owner = _google_chat_owner(path)
    members = [m for m in _list(info.get("members")) if isinstance(m, dict)]
    others = [clean_name(_str(m.get("name")) or _str(m.get("email"))) for m in members
              if _str(m.get("name")) not in owner and _str(m.get("email")) not in owner]
    others = [o for o in others if o]
    return ", ".join(others) or folder


def _google_chat(path: Path, messages: list) -> Iterator[Message]:
    title = _google_chat_title(path)
    out: list[tuple[datetime, int, Message]] = []
    for i, m in enumerate(messages):
        place = f"messages[{i}]"
        if not isinstance(m, dict):
            raise IngestError(path, place, "expected an object")
        raw_date = m.get("created_date")
        when = parse_google_date(raw_date) if isinstance(raw_date, str) else None
        if when is None:
            raise IngestError(path, place, f"cannot read created_date {raw_date!r} "
                              "(expected like 'Tuesday, January 2, 2024 at 10:00:00 AM UTC'; "
                              "export Takeout with the language set to English)")
        creator = m.get("creator") if isinstance(m.get("creator"), dict) else {}
        author = clean_name(_str(creator.get("name")) or _str(creator.get("email")))
        text = strip_invisible(_str(m.get("text"))).strip()
        sid = _str(m.get("message_id")) or None
        reply = _str(_dig(m, "quoted_message_metadata", "message_id")) or None
        if m.get("deleted_date") or m.get("message_state") == "DELETED":
            kind, text = "media", ""  # sent, its text gone: a turn without text, like a photo
        elif m.get("attached_files"):
            kind = "media"
        elif text:
            kind = "text"
        else:
            continue  # nothing a person reads (e.g. a bare card from a bot)
        out.append((when, i, Message("google-chat", title, author, when, text, kind, reply, sid)))
    # Takeout lists messages oldest first; sort anyway (zones may differ), comparing in UTC.
    out.sort(key=lambda t: (_utc_key(t[0]), t[1]))
    for _, _, msg in out:
        yield msg


def _utc_key(d: datetime) -> datetime:
    return d.astimezone(timezone.utc).replace(tzinfo=None) if d.tzinfo else d
