"""The message store: SQLite (stdlib) at `$LIKEME_HOME/likeme.db` (default `~/.likeme/likeme.db`).

Nothing else in likeme touches SQL. The schema only ever grows through the migrations below, each a
named function applied once and recorded in `_migrations` (simonw/llm's `migrations.py`).

    >>> from likeme.data.store import Store
    >>> store = Store()                       # or Store("chats.db")
    >>> store.ingest_path("WhatsApp Chat with Sam.txt").added
    1204
    >>> [p.author for p in store.people()][:2]
    ['Sam', 'Ana']
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from likeme.errors import LikemeError
from likeme.paths import home

DEFAULT_SESSION_GAP = timedelta(hours=6)  # a pause of 6 h starts a new session: overnight breaks split, a busy afternoon does not


def default_db_path() -> Path:
    return home() / "likeme.db"


# ---------------------------------------------------------------------------------------------
# Migrations: append new ones at the end, never edit one that has shipped.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run `;`-separated statements inside the caller's transaction (`executescript` would commit)."""
    for stmt in sql.split(";"):
        if stmt.strip():
            db.execute(stmt)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE,
            format TEXT NOT NULL,
            ingested_at TEXT NOT NULL,
            messages_added INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            name TEXT NOT NULL,
            UNIQUE (platform, name)
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            source_id INTEGER REFERENCES sources(id),
            author TEXT NOT NULL,
            sent_at TEXT NOT NULL,          -- ISO 8601, with its UTC offset when the export had one
            ts REAL NOT NULL,               -- seconds since the epoch, for ordering (naive times read as UTC)
            text TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('text', 'media', 'system')),
            reply_to TEXT,
            source_msg_id TEXT,
            dedup_key TEXT NOT NULL,        -- what makes a message the same one in a later export
            UNIQUE (conversation_id, dedup_key)
        );
        CREATE INDEX messages_conv_ts ON messages (conversation_id, ts);
        CREATE INDEX messages_author ON messages (author);
        -- People taken out with `likeme forget`: later ingests skip them too.
        CREATE TABLE forgotten (author TEXT PRIMARY KEY, forgotten_at TEXT NOT NULL);
    """)


@migration
def m002_sources_scrubbed(db: sqlite3.Connection) -> None:
    """Whether each export was ingested with --scrub (NULL: ingested before this was recorded)."""
    db.execute("ALTER TABLE sources ADD COLUMN scrubbed INTEGER")


# ---------------------------------------------------------------------------------------------
@dataclass
class IngestResult:
    path: str
    format: str
    added: int = 0
    skipped: int = 0               # already in the store (re-ingest or an overlapping export)
    already_ingested: bool = False  # the very same file (by sha256) was ingested before
    conversations: set = field(default_factory=set)


@dataclass
class Person:
    author: str
    messages: int
    conversations: int
    first: str
    last: str


@dataclass
class StoredMessage:
    id: int
    platform: str
    conversation: str
    author: str
    sent_at: str
    text: str
    kind: str
    reply_to: str | None
    session: int | None = None


def _ts(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents, in sorted order)."""
    h = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        if p != path:
            h.update(p.relative_to(path).as_posix().encode() + b"\0")
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


class Store:
    """A likeme database. Every ingest is one transaction: a file that fails leaves it as it was."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)  # we open transactions ourselves
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise LikemeError(f"{self.path}: not a likeme database or corrupt ({e}); pass another --db") from None
        except OSError as e:
            raise LikemeError(f"{self.path}: cannot open the store ({e.strerror or e}); pass another --db") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _migrate(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {r[0] for r in self.db.execute("SELECT name FROM _migrations")}
        for fn in MIGRATIONS:
            if fn.__name__ not in done:
                with self._transaction():
                    fn(self.db)
                    self.db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, _now()))

    def _transaction(self):
        return _Transaction(self.db)

    # -- writing ------------------------------------------------------------------------------
    def ingest_path(self, path, format: str | None = None, *, scrub: bool = False,
                    progress: Callable[[int], None] | None = None, **options) -> IngestResult:
        """Parse an export and add its new messages, all in one transaction.

        The same file twice adds nothing (recognised by sha256); a later export that overlaps an
        earlier one adds only the messages that are new. `scrub` replaces e-mail addresses, phone
        numbers, URLs and card/IBAN numbers with placeholders before anything is stored."""
        from likeme.data import ingest

        path = Path(path)
        digest = sha256_of(path) if path.exists() else None
        if digest:
            row = self.db.execute("SELECT format FROM sources WHERE sha256 = ?", (digest,)).fetchone()
            if row:
                return IngestResult(str(path), row[0], already_ingested=True)
        messages = ingest.parse(path, format=format, **options)
        return self.add_messages(messages, path=path, sha256=digest, format=format, scrub=scrub, progress=progress)

    def add_messages(self, messages: Iterable, *, path="<memory>", sha256: str | None = None,
                     format: str | None = None, scrub: bool = False,
                     progress: Callable[[int], None] | None = None) -> IngestResult:
        """Store `Message`s (one transaction). Dedup key: the export's message id where it has one,
        else (time, author, text, n-th repeat of that triple): WhatsApp has no ids, and "ok" twice in
        the same minute is two messages. `format` defaults to the platforms of the messages."""
        if scrub:
            from likeme.data.scrub import scrub as scrub_text
        else:
            scrub_text = None
        result = IngestResult(str(path), format or "")
        try:
            return self._add(messages, result, path, sha256, scrub_text, progress)
        except sqlite3.Error as e:
            what = "free some disk space and" if "full" in str(e) else "check the store and"
            raise LikemeError(f"{self.path}: {e}; nothing from {path} was stored; {what} run again") from None

    def _add(self, messages, result, path, sha256, scrub_text, progress) -> IngestResult:
        forgotten = {r[0] for r in self.db.execute("SELECT author FROM forgotten")}
        conv_ids: dict[tuple[str, str], int] = {}
        repeats: dict[tuple, int] = {}
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO sources (path, sha256, format, ingested_at, scrubbed) VALUES (?, ?, ?, ?, ?)",
                (str(path), sha256 or f"unhashed:{uuid.uuid4().hex}", result.format, _now(), int(scrub_text is not None)))
            source_row = cur.lastrowid
            batch = []
            n = 0
            for m in messages:
                n += 1
                if progress and n % 1000 == 0:
                    progress(1000)
                if m.author in forgotten:
                    continue
                key = (m.platform, m.conversation)
                cid = conv_ids.get(key)
                if cid is None:
                    self.db.execute("INSERT OR IGNORE INTO conversations (platform, name) VALUES (?, ?)", key)
                    cid = self.db.execute("SELECT id FROM conversations WHERE platform = ? AND name = ?", key).fetchone()[0]
                    conv_ids[key] = cid
                    result.conversations.add(m.conversation)
                text = scrub_text(m.text) if scrub_text else m.text
                sent = m.sent_at.isoformat()
                if m.source_id is not None:
                    dedup = f"id:{m.source_id}"
                else:
                    triple = (cid, sent, m.author, m.text)
                    k = repeats.get(triple, 0)
                    repeats[triple] = k + 1
                    dedup = hashlib.blake2b(f"{sent}\0{m.author}\0{m.text}\0{k}".encode(), digest_size=16).hexdigest()
                batch.append((cid, source_row, m.author, sent, _ts(m.sent_at), text, m.kind, m.reply_to,
                              m.source_id, dedup))
                if len(batch) >= 5000:
                    result.added += self._insert(batch)
                    batch.clear()
            if batch:
                result.added += self._insert(batch)
            if progress:
                progress(n % 1000)
            result.skipped = n - result.added
            result.format = result.format or ",".join(sorted({p for p, _ in conv_ids})) or "empty"
            self.db.execute("UPDATE sources SET messages_added = ?, format = ? WHERE id = ?",
                            (result.added, result.format, source_row))
        return result

    def _insert(self, rows: list[tuple]) -> int:
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO messages (conversation_id, source_id, author, sent_at, ts, text, kind,"
            " reply_to, source_msg_id, dedup_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return self.db.total_changes - before

    def forget(self, author: str) -> int:
        """Delete every message by `author`, everywhere, and keep them out of later ingests.
        Returns how many messages were deleted. Deleted text is overwritten on disk (secure_delete)."""
        self.db.execute("PRAGMA secure_delete = ON")
        with self._transaction():
            n = self.db.execute("DELETE FROM messages WHERE author = ?", (author,)).rowcount
            self.db.execute("INSERT OR REPLACE INTO forgotten VALUES (?, ?)", (author, _now()))
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    # -- reading ------------------------------------------------------------------------------
    def people(self) -> list[Person]:
        """Authors with their message counts (system notices left out), most active first."""
        rows = self.db.execute("""
            SELECT author, COUNT(*), COUNT(DISTINCT conversation_id), MIN(ts), MAX(ts)
            FROM messages WHERE kind != 'system' AND author != ''
            GROUP BY author ORDER BY COUNT(*) DESC, author""").fetchall()
        out = []
        for author, n, convs, lo, hi in rows:
            first = self.db.execute("SELECT sent_at FROM messages WHERE author = ? AND kind != 'system' AND ts = ? LIMIT 1", (author, lo)).fetchone()[0]
            last = self.db.execute("SELECT sent_at FROM messages WHERE author = ? AND kind != 'system' AND ts = ? LIMIT 1", (author, hi)).fetchone()[0]
            out.append(Person(author, n, convs, first, last))
        return out

    def conversations(self) -> list[dict]:
        return [dict(id=i, platform=p, name=n, messages=c) for i, p, n, c in self.db.execute("""
            SELECT c.id, c.platform, c.name, COUNT(m.id) FROM conversations c
            LEFT JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.name""")]

    def messages(self, author: str | None = None, conversation: str | None = None,
                 limit: int | None = None, kinds: Iterable[str] = ("text", "media", "system"),
                 session_gap: timedelta = DEFAULT_SESSION_GAP) -> Iterator[StoredMessage]:
        """Messages in time order, each with its session number inside its conversation."""
        kinds = tuple(kinds)
        sql = f"""SELECT m.id, c.platform, c.name, m.author, m.sent_at, m.text, m.kind, m.reply_to,
                         m.ts, m.conversation_id
                  FROM messages m JOIN conversations c ON c.id = m.conversation_id
                  WHERE m.kind IN ({','.join('?' * len(kinds))})"""
        args: list = list(kinds)
        if conversation is not None:
            sql += " AND c.name = ?"
            args.append(conversation)
        sql += " ORDER BY m.conversation_id, m.ts, m.id"
        gap = session_gap.total_seconds()
        count = 0
        state: dict[int, tuple[float, int]] = {}
        for row in self.db.execute(sql, args):
            cid, ts = row[9], row[8]
            prev = state.get(cid)
            session = 0 if prev is None else prev[1] + (ts - prev[0] > gap)
            state[cid] = (ts, session)
            if author is not None and row[3] != author:
                continue
            yield StoredMessage(*row[:8], session=session)
            count += 1
            if limit is not None and count >= limit:
                return

    def sessions(self, conversation: str | None = None,
                 gap: timedelta = DEFAULT_SESSION_GAP) -> list[list[StoredMessage]]:
        """Conversations cut into sessions wherever two messages are more than `gap` apart.
        System notices are left out (they are not turns); media stays (a photo is a turn)."""
        out: list[list[StoredMessage]] = []
        key = None
        for m in self.messages(conversation=conversation, kinds=("text", "media"), session_gap=gap):
            if (m.conversation, m.session) != key:
                out.append([])
                key = (m.conversation, m.session)
            out[-1].append(m)
        return out

    def sources(self) -> list[dict]:
        return [dict(id=i, path=p, sha256=s, format=f, ingested_at=t, messages_added=n) for i, p, s, f, t, n in
                self.db.execute("SELECT id, path, sha256, format, ingested_at, messages_added FROM sources ORDER BY id")]

    def provenance(self, author: str | None = None) -> dict:
        """Where a dataset came from, for a run's run.yaml: this store's path, the exports (name, sha256)
        whose messages were used and the text messages per author. With `author`, only the
        conversations that person writes in count (what a voice or a style of theirs is built from).

        Example: {"store": "/home/ana/.likeme/likeme.db",
                  "sources": [{"name": "WhatsApp Chat with Sam.txt", "sha256": "3f2a...", "format": "whatsapp"}],
                  "messages": {"Ana": 1204, "Sam": 980}}
        """
        where, args = "m.kind = 'text'", []
        if author is not None:
            where += " AND m.conversation_id IN (SELECT conversation_id FROM messages WHERE author = ?)"
            args.append(author)
        sources = self.db.execute(f"""
            SELECT s.path, s.sha256, s.format FROM sources s WHERE s.id IN
              (SELECT DISTINCT m.source_id FROM messages m WHERE {where}) ORDER BY s.id""", args).fetchall()
        counts = self.db.execute(f"""
            SELECT m.author, COUNT(*) FROM messages m WHERE {where} AND m.author != ''
            GROUP BY m.author ORDER BY COUNT(*) DESC, m.author""", args).fetchall()
        return {"store": str(self.path.resolve()) if self.path else None,
                "sources": [{"name": Path(p).name, "sha256": h, "format": f} for p, h, f in sources],
                "messages": dict(counts)}

    def provenance_card(self, author: str | None = None) -> dict:
        """`provenance` and more, for a run's provenance.json: per source its platforms, date range and
        whether it was scrubbed; the people forgotten (likeme forget) before the run, when.

        Example: {..., "sources": [{"name": "WhatsApp Chat with Sam.txt", "sha256": "3f2a...", "format":
                  "whatsapp", "platforms": ["whatsapp"], "first": "2023-01-02T10:00:00", "last": "2024-05-01T22:13:00",
                  "messages": 2184, "scrubbed": true}], "forgotten": [{"author": "Bo", "at": "2024-06-01T..."}]}
        """
        where, args = "m.kind = 'text'", []
        if author is not None:
            where += " AND m.conversation_id IN (SELECT conversation_id FROM messages WHERE author = ?)"
            args.append(author)
        rows = self.db.execute(f"""
            SELECT s.path, s.sha256, s.format, s.scrubbed, GROUP_CONCAT(DISTINCT c.platform), MIN(m.sent_at),
                   MAX(m.sent_at), COUNT(*)
            FROM messages m JOIN sources s ON s.id = m.source_id JOIN conversations c ON c.id = m.conversation_id
            WHERE {where} GROUP BY s.id ORDER BY s.id""", args).fetchall()
        card = self.provenance(author)
        card["sources"] = [{"name": Path(p).name, "sha256": h, "format": f, "platforms": sorted(set((pl or "").split(","))),
                            "first": first, "last": last, "messages": n, "scrubbed": None if sc is None else bool(sc)}
                           for p, h, f, sc, pl, first, last, n in rows]
        card["forgotten"] = [{"author": a, "at": at} for a, at in
                             self.db.execute("SELECT author, forgotten_at FROM forgotten ORDER BY forgotten_at")]
        return card

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    def fingerprint(self) -> str:
        """What the store holds, in one line that every ingest and `forget` changes (messages are never
        edited in place): its sources' sha256s, the message count and the highest message id.
        Example: "3f2a9c1e...,77b0d4e2...|8643|8650" """
        n, top = self.db.execute("SELECT COUNT(*), MAX(id) FROM messages").fetchone()
        sources = ",".join(s for (s,) in self.db.execute("SELECT sha256 FROM sources ORDER BY id"))
        return f"{sources}|{n}|{top}"


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def file_data(path: str | Path) -> dict:
    """Provenance of a data file: {"file": "/abs/labels.csv", "sha256": "..."}"""
    path = Path(path)
    return {"file": str(path.resolve()), "sha256": sha256_of(path)}
