"""The store's schema: migrations applied once each, in order, by `Store` (simonw/llm's `migrations.py`).
Append new ones at the end; never edit one that has shipped."""
from __future__ import annotations

import sqlite3
from typing import Callable

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


@migration
def m003_sources_scrub(db: sqlite3.Connection) -> None:
    """What was scrubbed from each export ("patterns,names,blocklist", scrub.KINDS; "" none, NULL unknown);
    `scrubbed` stays, 1 when anything was."""
    db.execute("ALTER TABLE sources ADD COLUMN scrub TEXT")
    db.execute("UPDATE sources SET scrub = CASE scrubbed WHEN 1 THEN 'patterns' WHEN 0 THEN '' END")
