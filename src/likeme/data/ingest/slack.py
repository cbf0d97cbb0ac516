"""Slack workspace export: a zip (extracted by `likeme.data.ingest.parse`) or its folder.

    users.json  channels.json  groups.json  dms.json  mpims.json
    general/2023-04-13.json   <- a list of {"type": "message", "user": "U1", "text": "...", "ts": "1681413317.397479"}
    D0123ABCD/2023-04-13.json <- a DM, named by its id in dms.json
    mpdm-ana--sam--kim-1/...  <- a group DM, named as in mpims.json

Quirks handled:
- Authors: `users.json` id -> profile.display_name, else profile.real_name / real_name, else name;
  users missing there fall back to the message's own `user_profile`, else the id. Bot messages
  (no `user`; `bot_id` or subtype `bot_message`) are by `username`, else `bot_profile.name`.
- Markup is rendered as a reader sees it: `<@U1>` -> "@Ana", `<@U1|ana>` -> "@ana",
  `<#C1|general>` / `<#C1>` -> "#general", `<!here>` `<!channel>` `<!everyone>` -> "@here" ...,
  `<!subteam^S1|@devs>` -> "@devs", `<!date^...|fallback>` -> fallback, `<url>` -> url and
  `<url|label>` -> "label (url)", or just the label when it is the url itself without its scheme
  (Slack's auto-links: `<http://example.com|example.com>` -> "example.com"); then `&lt; &gt; &amp;`.
- Threads: a reply (`thread_ts` != `ts`) has reply_to = `thread_ts`, the parent's `source_id`
  (`ts`, unique within a channel).
- kinds: plain, bot, /me, thread-broadcast messages -> text; messages with `files` (subtype
  `file_share` included) -> media, the text as caption; every other subtype (channel_join/leave,
  topic, purpose, name, pinned_item, archive, bot_add, reminders, tombstones ...) -> system.
- `sent_at` from `ts` (epoch seconds as a string) -> UTC-aware datetime.
- Conversation: "#name" for channels and private channels; for DMs and group DMs the member names
  (without `me` when given), from dms.json/mpims.json, else from the "mpdm-a--b-1" folder name,
  else the folder name. Channel folders are read in name order, day files in date order, and each
  channel's messages are sorted by `ts`.
- A single channel folder (only YYYY-MM-DD.json day files) is read too, as "#<folder name>".
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name, json_head, load_json
from likeme.errors import IngestError

NAME = "slack"
DESCRIPTION = "Slack workspace export (zip or folder: users.json, channels.json, channel/YYYY-MM-DD.json)"

_TS = re.compile(r"(\d{1,12})(?:\.(\d*))?")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\.json")
_MARKUP = re.compile(r"<([^<>\n]*)>")
# Slack escapes exactly these three in message text (api.slack.com "Formatting text").
_ENTITY = re.compile(r"&(?:lt|gt|amp);")
_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&"}
_WORD_SUBTYPES = {None, "bot_message", "me_message", "thread_broadcast", "reply_broadcast",
                  "file_share", "file_comment", "slackbot_response"}
_LIST_FILES = ("channels.json", "groups.json", "dms.json", "mpims.json")


def _day_files(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if _DAY.fullmatch(p.name) and p.is_file())
    except OSError:
        return []


def _looks_like_day(path: Path) -> bool:
    head = json_head(path, 4096)
    return head.startswith("[") and ('"ts":"' in head) and ('"type":"message"' in head)


def sniff(path: Path) -> bool:
    """A folder with users.json beside channels.json (or groups/dms/mpims.json, or channel folders
    of YYYY-MM-DD.json day files); or a single channel folder of day files."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "users.json").is_file():
        if any((path / n).is_file() for n in _LIST_FILES):
            return json_head(path / "users.json", 256).startswith("[")
        for sub in sorted(path.iterdir())[:200]:
            if sub.is_dir() and any(_looks_like_day(d) for d in _day_files(sub)[:3]):
                return True
        return False
    days = _day_files(path)
    return bool(days) and any(_looks_like_day(d) for d in days[:3])


def _load_list(path: Path) -> list:
    if not path.is_file():
        return []
    data = load_json(path)
    if not isinstance(data, list):
        raise IngestError(path, None, "expected a JSON list; is this an unmodified Slack export?")
    return [d for d in data if isinstance(d, dict)]


def _str(v) -> str:
    return v if isinstance(v, str) else ""


def _user_name(u: dict) -> str:
    prof = u.get("profile") if isinstance(u.get("profile"), dict) else {}
    for v in (prof.get("display_name"), prof.get("real_name"), u.get("real_name"), u.get("name")):
        if isinstance(v, str) and clean_name(v):
            return clean_name(v)
    return ""


class _Workspace:
    """Lookups from the export's top-level lists."""

    def __init__(self, root: Path, me: str | None):
        self.users: dict[str, str] = {}
        for u in _load_list(root / "users.json"):
            if isinstance(u.get("id"), str) and (name := _user_name(u)):
                self.users[u["id"]] = name
        self.channel_names: dict[str, str] = {}   # id -> name, for <#C1> without a label
        self.folders: dict[str, str] = {}          # folder name -> conversation
        for fn in ("channels.json", "groups.json"):
            for c in _load_list(root / fn):
                name = _str(c.get("name"))
                if name:
                    self.folders[name] = f"#{name}"
                    if isinstance(c.get("id"), str):
                        self.channel_names[c["id"]] = name
                        self.folders.setdefault(c["id"], f"#{name}")
        for fn in ("dms.json", "mpims.json"):
            for c in _load_list(root / fn):
                members = c.get("members") if isinstance(c.get("members"), list) else []
                members = [self.users.get(m, m) for m in members if isinstance(m, str)]
                others = [m for m in members if m != me] if me else members
                title = ", ".join(others) or ", ".join(members)
                for key in (c.get("id"), c.get("name")):
                    if isinstance(key, str) and key and title:
                        self.folders[key] = title

    def conversation(self, folder: str) -> str:
        if folder in self.folders:
            return self.folders[folder]
        if folder.startswith("mpdm-"):  # "mpdm-ana--sam--kim-1" -> "ana, sam, kim"
            return ", ".join(n for n in re.sub(r"-\d+$", "", folder[5:]).split("--") if n)
        if re.fullmatch(r"D[A-Z0-9]{6,}", folder):
            return folder
        return f"#{folder}"

    def render(self, text: str) -> str:
        """Slack markup -> readable text: "hi <@U1>, see <https://x.org|docs> &amp; <#C2|random>"
        -> "hi @Ana, see docs (https://x.org) & #random"."""
        if "<" in text:
            text = _MARKUP.sub(self._token, text)
        return _ENTITY.sub(lambda m: _ENTITIES[m.group(0)], text) if "&" in text else text

    def _token(self, m: re.Match) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or self.users.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or self.channel_names.get(target[1:], target[1:]))
        if target.startswith("!"):
            if target.startswith("!subteam^"):
                return label if label.startswith("@") else "@" + (label or target[9:])
            if target.startswith("!date^"):
                return label
            return "@" + (label.lstrip("@") or target[1:])
        if not label:
            return target
        bare = re.sub(r"^(?:https?://|mailto:|tel:)", "", target).rstrip("/")
        if label == target or label.rstrip("/") == bare:
            return label
        return f"{label} ({target})"


def _when(ts, path: Path, where: str) -> datetime:
    """ts "1681413317.397479" -> 2023-04-13 19:15:17.397479+00:00, exact to the microsecond (no float)."""
    m = _TS.fullmatch(ts) if isinstance(ts, str) else None
    try:
        if m:
            micro = int((m.group(2) or "").ljust(6, "0")[:6])
            return datetime.fromtimestamp(int(m.group(1)), tz=timezone.utc) + timedelta(microseconds=micro)
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            return datetime.fromtimestamp(ts, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    raise IngestError(path, where, f"message without a valid ts ({ts!r}); is this an unmodified Slack export?")


def _author(msg: dict, ws: _Workspace) -> str:
    user = msg.get("user") if isinstance(msg.get("user"), str) else None
    bot = msg.get("bot_profile") if isinstance(msg.get("bot_profile"), dict) else {}
    names = []
    if msg.get("subtype") == "bot_message" or (user is None and msg.get("bot_id")):
        names += [msg.get("username"), bot.get("name")]
    if user:
        names.append(ws.users.get(user))
    prof = msg.get("user_profile")
    if isinstance(prof, dict):
        names.append(_user_name(prof | {"profile": prof}))
    names += [msg.get("username"), bot.get("name"), user, msg.get("bot_id")]
    return next((clean_name(n) for n in names if isinstance(n, str) and clean_name(n)), "")


def _channel(folder: Path, ws: _Workspace) -> Iterator[Message]:
    conversation = ws.conversation(folder.name)
    days = []
    for day in _day_files(folder):
        data = load_json(day)
        if not isinstance(data, list):
            raise IngestError(day, None, "expected a list of messages; is this an unmodified Slack export?")
        days.append((day, data))
        # users.json often lacks people (guests, deleted and external users) whose messages carry
        # their own `user_profile`: learn them first so that their mentions read as names too.
        for msg in data:
            if isinstance(msg, dict) and isinstance(msg.get("user"), str) and msg["user"] not in ws.users:
                prof = msg.get("user_profile")
                if isinstance(prof, dict) and (name := _user_name(prof | {"profile": prof})):
                    ws.users[msg["user"]] = name
    rows = []
    for day, data in days:
        for i, msg in enumerate(data):
            where = f"[{i}]"
            if not isinstance(msg, dict):
                raise IngestError(day, where, "expected a message object")
            if msg.get("type", "message") != "message":
                continue
            ts = msg.get("ts")
            sent_at = _when(ts, day, where)
            subtype = msg.get("subtype")
            if subtype is not None and not isinstance(subtype, str):
                subtype = "?"  # not Slack's: read it as a notice, not as someone's words
            text = ws.render(_str(msg.get("text")))
            if subtype not in _WORD_SUBTYPES:
                kind = "system"
            elif msg.get("files") or subtype == "file_share":
                kind = "media"
            else:
                kind = "text"
            thread = msg.get("thread_ts")
            reply_to = str(thread) if thread and thread != ts else None
            rows.append((sent_at, Message(
                platform="slack", conversation=conversation, author=_author(msg, ws), sent_at=sent_at,
                text=text, kind=kind, reply_to=reply_to, source_id=str(ts),
            )))
    rows.sort(key=lambda r: r[0])
    for _, m in rows:
        yield m


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of every channel and DM of a Slack export folder, channel by channel."""
    path = Path(path)
    if not path.is_dir():
        raise IngestError(path, None, "a Slack export is a folder or a .zip; point at the whole export")
    if not (path / "users.json").is_file() and _day_files(path):
        ws = _Workspace(path.parent if (path.parent / "users.json").is_file() else path, me)
        yield from _channel(path, ws)
        return
    ws = _Workspace(path, me)
    for folder in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("__MACOSX")):
        yield from _channel(folder, ws)
