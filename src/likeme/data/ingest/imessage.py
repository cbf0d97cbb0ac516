"""macOS iMessage/SMS database `~/Library/Messages/chat.db` (SQLite), read-only.

Tables read: message, handle, chat, chat_message_join (chat and chat_message_join are optional:
some copies hold only message and handle; then each handle is one conversation). Columns that an
older macOS lacks (attributedBody, reply_to_guid, thread_originator_guid, associated_message_type,
group_action_type ...) are read as NULL.

Quirks handled:
- Since macOS Ventura `text` is often NULL and the words live only in `attributedBody`, an
  NSArchiver "typedstream" blob: see `attributed_text`.
- `date` is nanoseconds since 2001-01-01 UTC (before High Sierra: seconds; a value below 1e11 is
  taken as seconds) -> UTC-aware datetime.
- Author: `me` (default "me") for `is_from_me`, else the handle's id (phone number or e-mail).
- Conversation: chat.display_name, else chat.chat_identifier, else the handle.
- kinds: attachments only (text is U+FFFC placeholders) -> media, with the rest as caption; voice
  messages and stickers -> media; group events (`item_type` != 0: renames, joins, leaves) and
  `group_action_type` -> system; tapbacks ("Loved “…”", associated_message_type 2000-3007) -> system.
  A row with neither text nor an attachment (an unsent message: `date_retracted`/`date_edited` set
  and the text cleared, or one the Mac never downloaded) was sent but its words are gone: like a
  photo, it is a turn without text -> media with text "", author kept.
- `source_id` = guid; `reply_to` = thread_originator_guid / reply_to_guid of an inline reply.
  (On the Mac `reply_to_guid` is set on most messages and points at the previous one, whether or
  not the person replied inline; we keep it, as the export says.)
- Messages are yielded conversation by conversation (oldest conversation first), in date order.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from likeme.data.ingest import Message
from likeme.data.ingest._io import clean_name
from likeme.errors import IngestError

NAME = "imessage"
DESCRIPTION = "macOS iMessage chat.db (SQLite: message, handle, chat)"

_MAGIC = b"SQLite format 3\x00"
_EPOCH = datetime(2001, 1, 1, tzinfo=timezone.utc)
_OBJ = "\ufffc"  # where an attachment sits in the text
_COLUMNS = ("ROWID", "guid", "text", "attributedBody", "handle_id", "is_from_me", "date", "item_type",
            "group_action_type", "associated_message_type", "reply_to_guid", "thread_originator_guid",
            "cache_has_attachments", "is_audio_message", "is_system_message")


def _connect(path: Path, timeout: float = 1.0) -> sqlite3.Connection:
    # mode=ro: never write to the user's database. A short busy timeout: a database that Messages
    # holds locked is better copied out than waited for (see `_hint`).
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=timeout)
    # One badly encoded row must not cost the whole history: read it with U+FFFD in place.
    db.text_factory = lambda b: b.decode("utf-8", "replace")
    return db


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def sniff(path: Path) -> bool:
    """A SQLite file with iMessage's `message` (with `is_from_me`) and `handle` tables."""
    path = Path(path)
    try:
        if not path.is_file():
            return False
        with open(path, "rb") as f:
            if f.read(16) != _MAGIC:
                return False
        db = _connect(path, timeout=0.1)
        try:
            if not {"message", "handle"} <= _tables(db):
                return False
            cols = {r[1] for r in db.execute("PRAGMA table_info(message)")}
            return {"is_from_me", "guid", "handle_id"} <= cols
        finally:
            db.close()
    except Exception:  # locked, corrupt, not ours: not a claim
        return False


def attributed_text(blob: bytes | None) -> str | None:
    """The plain string inside an `attributedBody` typedstream blob, or None.

    Layout: ... b"NSString" <class info> b"\\x01+" <length> <UTF-8 bytes> ...; the length is one
    byte, or 0x81 + 2 bytes little-endian, or 0x82 + 4 bytes little-endian (typedstream's integer
    encoding). Example: b"...NSString\\x01\\x94\\x84\\x01+\\x03Yeh\\x86..." -> "Yeh".
    """
    if not blob:
        return None
    blob = bytes(blob)
    start = blob.find(b"NSString")
    if start < 0:
        return None
    plus = blob.find(b"\x01+", start + 8, start + 8 + 32)  # NSMutableString puts a class chain between
    if plus < 0:
        return None
    i = plus + 2
    if i >= len(blob):
        return None
    n = blob[i]
    if n == 0x81:
        n, i = int.from_bytes(blob[i + 1:i + 3], "little"), i + 3
    elif n == 0x82:
        n, i = int.from_bytes(blob[i + 1:i + 5], "little"), i + 5
    elif n >= 0x80:  # other tags are not a string length
        return None
    else:
        i += 1
    if n == 0 or i + n > len(blob):
        return None
    return blob[i:i + n].decode("utf-8", "replace")


def _when(value, path: Path, where: str) -> datetime:
    if value is None:
        raise IngestError(path, where, "message without a date")
    try:
        if isinstance(value, int) and abs(value) >= 1e11:  # integer nanoseconds: keep the microseconds exact
            return _EPOCH + timedelta(microseconds=value // 1000)
        value = float(value)
        return _EPOCH + timedelta(seconds=value if abs(value) < 1e11 else value / 1e9)
    except (TypeError, ValueError, OverflowError):
        raise IngestError(path, where, f"unreadable date {value!r}") from None


def _query(db: sqlite3.Connection) -> str:
    """The SELECT for this database's schema: missing columns and tables read as NULL."""
    tables = _tables(db)

    def have(table: str) -> set[str]:
        return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}

    msg_cols = have("message")
    cols = [f"m.{c}" if c in msg_cols else f"NULL AS {c}" for c in _COLUMNS]
    cols.append("h.id AS handle" if "id" in have("handle") else "NULL AS handle")
    joins = "LEFT JOIN handle h ON h.ROWID = m.handle_id"
    if "chat_message_join" in tables:
        joins += " LEFT JOIN chat_message_join cmj ON cmj.message_id = m.ROWID"
        cols.append("cmj.chat_id AS chat_rowid")
        if "chat" in tables:
            chat_cols = have("chat")
            joins += " LEFT JOIN chat c ON c.ROWID = cmj.chat_id"
            cols += [f"c.{c} AS chat_{c}" if c in chat_cols else f"NULL AS chat_{c}" for c in ("display_name", "chat_identifier")]
        else:
            cols += ["NULL AS chat_display_name", "NULL AS chat_chat_identifier"]
    else:
        cols += ["NULL AS chat_rowid", "NULL AS chat_display_name", "NULL AS chat_chat_identifier"]
    return f"SELECT {', '.join(cols)} FROM message m {joins} ORDER BY m.date, m.ROWID"


def _hint(e: sqlite3.Error) -> str:
    msg = str(e)
    if "locked" in msg or "busy" in msg:
        return (f"database is locked ({msg}): quit Messages, or copy chat.db (with chat.db-wal and "
                "chat.db-shm) out of ~/Library/Messages and point at the copy")
    if "unable to open" in msg or "authoriz" in msg or "permission" in msg.lower():
        return (f"cannot open ({msg}): give your terminal Full Disk Access (System Settings > Privacy "
                "& Security), or copy chat.db out of ~/Library/Messages first")
    return f"not a readable iMessage database ({msg}); copy chat.db out of ~/Library/Messages again"


def _int(v) -> int:
    """A flag or enum column as int; anything unexpected counts as 0."""
    return v if isinstance(v, int) else 0


def _kind_text(row: dict) -> tuple[str, str]:
    text = row["text"]
    if not isinstance(text, str) or not text.strip():
        blob = row["attributedBody"]
        text = attributed_text(blob if isinstance(blob, bytes) else None) or (text if isinstance(text, str) else "")
    assoc = _int(row["associated_message_type"])
    if _int(row["item_type"]) != 0 or _int(row["group_action_type"]) != 0 or _int(row["is_system_message"]):
        return "system", text
    if 2000 <= assoc < 4000:  # tapbacks and their removal: reactions, not words
        return "system", text
    caption = text.replace(_OBJ, "").strip()
    # cache_has_attachments alone is not enough: rich link previews set it on a plain URL message.
    if _OBJ in text or _int(row["is_audio_message"]) or assoc == 1000 or (_int(row["cache_has_attachments"]) and not caption):
        return "media", caption
    if not text.strip():
        # Neither text nor an attachment: an unsent (retracted) message or one the Mac never
        # downloaded. The person did send something, its words are gone: a turn without text.
        return "media", ""
    return "text", text


def parse(path: Path, *, me: str | None = None, **_) -> Iterator[Message]:
    """Messages of every conversation in a chat.db."""
    path = Path(path)
    me = me or "me"
    try:
        with open(path, "rb") as f:
            if f.read(16) != _MAGIC:
                raise IngestError(path, None, "not a SQLite database; point at chat.db from ~/Library/Messages")
    except OSError as e:
        raise IngestError(path, None, f"cannot read: {e.strerror or e}") from None
    try:
        db = _connect(path)
    except sqlite3.Error as e:
        raise IngestError(path, None, _hint(e)) from None
    try:
        try:
            if not {"message", "handle"} <= _tables(db):
                raise IngestError(path, None, "no message/handle tables: this SQLite file is not an iMessage chat.db")
            cur = db.execute(_query(db))
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur]
        except sqlite3.Error as e:
            raise IngestError(path, None, _hint(e)) from None
        except UnicodeDecodeError:  # sqlite's own error message about a corrupt schema, undecodable
            raise IngestError(path, None, "corrupt database schema; copy chat.db out of ~/Library/Messages again") from None
    finally:
        db.close()
    conversations: dict[object, list[Message]] = {}
    titles: dict[object, str] = {}
    seen: set = set()
    for row in rows:
        # A message joined to two chats (rare, after merges) is read once, in the first.
        if row["ROWID"] in seen:
            continue
        seen.add(row["ROWID"])
        where = f"message ROWID {row['ROWID']}"
        handle = row["handle"] if isinstance(row["handle"], str) else None
        chat_key, title = _chat(row, handle)
        title = titles.setdefault(chat_key, title)  # one name per chat, even where a row lacks it
        kind, text = _kind_text(row)
        author = me if row["is_from_me"] else clean_name(handle or "") or ("" if kind == "system" else "unknown")
        reply = row["thread_originator_guid"] or row["reply_to_guid"]
        conversations.setdefault(chat_key, []).append(Message(
            platform="imessage", conversation=title, author=author, sent_at=_when(row["date"], path, where),
            text=text, kind=kind, reply_to=str(reply) if reply else None,
            source_id=str(row["guid"]) if row["guid"] is not None else None,
        ))
    # The query orders by the raw `date`; sorting again by time puts seconds-era and
    # nanoseconds-era rows of a database migrated across macOS versions in their true order.
    chats = [sorted(msgs, key=lambda m: m.sent_at) for msgs in conversations.values()]
    for msgs in sorted(chats, key=lambda ms: ms[0].sent_at):
        yield from msgs


def _chat(row: dict, handle: str | None) -> tuple[object, str]:
    """(key, title) of the row's conversation: its chat when joined to one, else its handle."""
    if row["chat_rowid"] is not None:
        title = next((clean_name(v) for v in (row["chat_display_name"], row["chat_chat_identifier"], handle)
                      if isinstance(v, str) and clean_name(v)), f"chat {row['chat_rowid']}")
        return ("chat", row["chat_rowid"]), title
    title = clean_name(handle) if handle else "iMessage"
    return ("handle", title), title
