"""The message store: SQLite (stdlib) at `$LIKEME_HOME/likeme.db` (default `~/.likeme/likeme.db`).

Nothing else in likeme touches SQL (but `migrations.py`). The schema only ever grows through the
migrations there, each a named function applied once and recorded in `_migrations` (simonw/llm's
`migrations.py`).

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

from likeme.data.files import file_data, sha256_of  # noqa: F401 (file_data: read from here by the recipes)
from likeme.data.migrations import MIGRATIONS

from likeme.errors import LikemeError
from likeme.paths import home

DEFAULT_SESSION_GAP = timedelta(hours=6)  # a pause of 6 h starts a new session: overnight breaks split, a busy afternoon does not


def default_db_path() -> Path:
    return home() / "likeme.db"


# ---------------------------------------------------------------------------------------------
@dataclass
class IngestResult:
    path: str
    format: str
    added: int = 0
    skipped: int = 0               # already in the store (re-ingest or an overlapping export)
    already_ingested: bool = False  # the very same file (by sha256) was ingested before
    conversations: set = field(default_factory=set)
    scrub: str = ""                # what was scrubbed from this export, all ingests of it together (scrub.record)
    rescrubbed: int = 0            # the same file again, scrubbed more: stored messages whose text was replaced


@dataclass
class Person:
    author: str
    messages: int
    conversations: int
    first: str
    last: str
    scrubbed: str = ""        # scrubbed from every export their messages come from: "patterns,names"
    partly_scrubbed: str = ""  # scrubbed from some of those exports only


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
    def ingest_path(self, path, format: str | None = None, *, scrub=None, blocklist: Iterable[str] = (),
                    progress: Callable[[int], None] | None = None, **options) -> IngestResult:
        """Parse an export and add its new messages, all in one transaction.

        The same file twice adds nothing (recognised by sha256); a later export that overlaps an
        earlier one adds only the messages that are new. `scrub` (see `add_messages`) takes personal
        data out before anything is stored; the same file again with more to scrub replaces the stored
        text of its messages with the text scrubbed more (`result.rescrubbed`), adding none."""
        from likeme.data import ingest
        from likeme.data.scrub import kinds_of, scrubber_for

        scrubber = scrubber_for(scrub, blocklist)
        path = Path(path)
        digest = sha256_of(path) if path.exists() else None
        if digest:
            row = self.db.execute("SELECT id, format, scrub FROM sources WHERE sha256 = ?", (digest,)).fetchone()
            if row:
                # a blocklist may hold other words than last time: it is applied again whenever given
                if not scrubber.kinds - kinds_of(row[2]) - {"blocklist"} and not scrubber.blocked:
                    return IngestResult(str(path), row[1], already_ingested=True, scrub=row[2] or "")
                messages = ingest.parse(path, format=format, **options)
                return self._rescrub(messages, row[0], row[1], kinds_of(row[2]), scrubber, path)
        messages = ingest.parse(path, format=format, **options)
        return self.add_messages(messages, path=path, sha256=digest, format=format, scrub=scrubber, progress=progress)

    def add_messages(self, messages: Iterable, *, path="<memory>", sha256: str | None = None,
                     format: str | None = None, scrub=None, blocklist: Iterable[str] = (),
                     progress: Callable[[int], None] | None = None) -> IngestResult:
        """Store `Message`s (one transaction). Dedup key: the export's message id where it has one,
        else (time, author, text, n-th repeat of that triple): WhatsApp has no ids, and "ok" twice in
        the same minute is two messages. `format` defaults to the platforms of the messages.

        `scrub`: True or "patterns" (e-mails, phone, card and IBAN numbers, URLs), "names" (people other
        than the export's authors, places), "all", a set of scrub.KINDS or a `scrub.Scrubber`; with
        `blocklist`, those words and phrases too. The raw text is never stored; the dedup key is made from
        it, so a message is the same one however it was scrubbed."""
        from likeme.data.scrub import scrubber_for

        scrubber = scrubber_for(scrub, blocklist)
        result = IngestResult(str(path), format or "")
        try:
            return self._add(messages, result, path, sha256, scrubber, progress)
        except sqlite3.Error as e:
            what = "free some disk space and" if "full" in str(e) else "check the store and"
            raise LikemeError(f"{self.path}: {e}; nothing from {path} was stored; {what} run again") from None

    def _add(self, messages, result, path, sha256, scrubber, progress) -> IngestResult:
        from likeme.data.scrub import record, scrubbed

        forgotten = {r[0] for r in self.db.execute("SELECT author FROM forgotten")}
        conv_ids: dict[tuple[str, str], int] = {}
        repeats: dict[tuple, int] = {}
        result.scrub = record(scrubber.kinds)
        with self._transaction():
            cur = self.db.execute(
                "INSERT INTO sources (path, sha256, format, ingested_at, scrubbed, scrub) VALUES (?, ?, ?, ?, ?, ?)",
                (str(path), sha256 or f"unhashed:{uuid.uuid4().hex}", result.format, _now(), int(bool(scrubber)),
                 result.scrub))
            source_row = cur.lastrowid
            batch = []
            n = 0
            for m, text in scrubbed(messages, scrubber):
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
                sent = m.sent_at.isoformat()
                batch.append((cid, source_row, m.author, sent, _ts(m.sent_at), text, m.kind, m.reply_to,
                              m.source_id, _dedup(m, cid, repeats)))
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

    def _rescrub(self, messages, source_id: int, format: str, done: frozenset, scrubber, path) -> IngestResult:
        """Scrub the stored text of an export's messages with what `scrubber` adds to `done`, in one
        transaction. Messages are found by their dedup key, so those an overlapping export stored count too."""
        from likeme.data.scrub import Scrubber, record

        messages = list(messages)
        more = Scrubber((scrubber.kinds - done) | ({"blocklist"} if scrubber.blocked else set()), scrubber.words)
        convs = {(p, n): i for i, p, n in self.db.execute("SELECT id, platform, name FROM conversations")}
        repeats: dict[tuple, int] = {}
        rows = []
        for m in messages:
            cid = convs.get((m.platform, m.conversation))
            row = cid and self.db.execute("SELECT id, text FROM messages WHERE conversation_id = ? AND dedup_key = ?",
                                          (cid, _dedup(m, cid, repeats))).fetchone()
            if row:
                rows.append(row)
        more.learn(t for _, t in rows)
        texts = more.texts([t for _, t in rows], {m.author for m in messages if m.author})
        changed = [(new, i) for (i, old), new in zip(rows, texts) if new != old]
        kinds = record(done | scrubber.kinds)
        try:
            with self._transaction():
                self.db.executemany("UPDATE messages SET text = ? WHERE id = ?", changed)
                self.db.execute("UPDATE sources SET scrub = ?, scrubbed = 1 WHERE id = ?", (kinds, source_id))
        except sqlite3.Error as e:
            raise LikemeError(f"{self.path}: {e}; nothing from {path} was changed; check the store and run again") from None
        return IngestResult(str(path), format, skipped=len(rows), already_ingested=True, scrub=kinds,
                            rescrubbed=len(changed))

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
        from likeme.data.scrub import kinds_of, record

        scrubs: dict[str, list[frozenset]] = {}  # per author, what was scrubbed from each export of theirs
        for author, scrub in self.db.execute("""SELECT DISTINCT m.author, s.scrub FROM messages m
                LEFT JOIN sources s ON s.id = m.source_id WHERE m.kind != 'system' AND m.author != ''"""):
            scrubs.setdefault(author, []).append(kinds_of(scrub))
        out = []
        for author, n, convs, lo, hi in rows:
            first = self.db.execute("SELECT sent_at FROM messages WHERE author = ? AND kind != 'system' AND ts = ? LIMIT 1", (author, lo)).fetchone()[0]
            last = self.db.execute("SELECT sent_at FROM messages WHERE author = ? AND kind != 'system' AND ts = ? LIMIT 1", (author, hi)).fetchone()[0]
            every, some = frozenset.intersection(*scrubs[author]), frozenset.union(*scrubs[author])
            out.append(Person(author, n, convs, first, last, record(every), record(some - every)))
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
        what was scrubbed from it; the people forgotten (likeme forget) before the run, when.

        Example: {..., "sources": [{"name": "WhatsApp Chat with Sam.txt", "sha256": "3f2a...", "format":
                  "whatsapp", "platforms": ["whatsapp"], "first": "2023-01-02T10:00:00", "last": "2024-05-01T22:13:00",
                  "messages": 2184, "scrubbed": true, "scrub": ["patterns", "names"]}], "forgotten": [{"author": "Bo", "at": "2024-06-01T..."}]}
        """
        where, args = "m.kind = 'text'", []
        if author is not None:
            where += " AND m.conversation_id IN (SELECT conversation_id FROM messages WHERE author = ?)"
            args.append(author)
        rows = self.db.execute(f"""
            SELECT s.path, s.sha256, s.format, s.scrubbed, s.scrub, GROUP_CONCAT(DISTINCT c.platform), MIN(m.sent_at),
                   MAX(m.sent_at), COUNT(*)
            FROM messages m JOIN sources s ON s.id = m.source_id JOIN conversations c ON c.id = m.conversation_id
            WHERE {where} GROUP BY s.id ORDER BY s.id""", args).fetchall()
        card = self.provenance(author)
        card["sources"] = [{"name": Path(p).name, "sha256": h, "format": f, "platforms": sorted(set((pl or "").split(","))),
                            "first": first, "last": last, "messages": n, "scrubbed": None if sc is None else bool(sc),
                            "scrub": None if kinds is None else [k for k in kinds.split(",") if k]}
                           for p, h, f, sc, kinds, pl, first, last, n in rows]
        card["forgotten"] = [{"author": a, "at": at} for a, at in
                             self.db.execute("SELECT author, forgotten_at FROM forgotten ORDER BY forgotten_at")]
        return card

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    def fingerprint(self) -> str:
        """What the store holds, in one line that every ingest and `forget` changes (messages are edited in
        place only by scrubbing an export more, which its source's scrub records): its sources' sha256s and
        what was scrubbed from each, the message count and the highest message id.
        Example: "3f2a9c1e...:patterns,77b0d4e2...:patterns,names|8643|8650" """
        n, top = self.db.execute("SELECT COUNT(*), MAX(id) FROM messages").fetchone()
        sources = ",".join(f"{s}:{k or ''}" for s, k in self.db.execute("SELECT sha256, scrub FROM sources ORDER BY id"))
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


def _dedup(m, cid: int, repeats: dict) -> str:
    """What makes a message the same one in a later export: its id in the export, else (time, author, raw
    text, the n-th repeat of them in this export), counted in `repeats`."""
    if m.source_id is not None:
        return f"id:{m.source_id}"
    sent = m.sent_at.isoformat()
    triple = (cid, sent, m.author, m.text)
    k = repeats.get(triple, 0)
    repeats[triple] = k + 1
    return hashlib.blake2b(f"{sent}\0{m.author}\0{m.text}\0{k}".encode(), digest_size=16).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
