import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from likeme.data.ingest import Message
from likeme.data.store import MIGRATIONS, Store
from likeme.errors import IngestError, LikemeError


def msg(author, minute, text, conv="chat", day=1, **kw):
    return Message("test", conv, author, datetime(2024, 1, day, 10, 0) + timedelta(minutes=minute), text, **kw)


EXPORT_1 = [msg("Ana", 0, "hi"), msg("Ben", 1, "hey"), msg("Ana", 1, "ok"), msg("Ana", 1, "ok")]
# A later export of the same chat: everything above plus two new messages.
EXPORT_2 = EXPORT_1 + [msg("Ben", 5, "see you"), msg("Ana", 6, "bye")]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "likeme.db") as s:
        yield s


def texts(store):
    return [(m.author, m.text) for m in store.messages()]


def test_reingest_adds_nothing(store):
    assert store.add_messages(EXPORT_1, path="a.txt").added == 4
    again = store.add_messages(EXPORT_1, path="a.txt")
    assert (again.added, again.skipped) == (0, 4)
    assert store.count() == 4


def test_repeated_identical_messages_are_both_kept(store):
    store.add_messages(EXPORT_1)
    assert texts(store).count(("Ana", "ok")) == 2


def test_overlapping_export_adds_only_new(store):
    store.add_messages(EXPORT_1)
    res = store.add_messages(EXPORT_2)
    assert (res.added, res.skipped) == (2, 4)
    assert texts(store) == [("Ana", "hi"), ("Ben", "hey"), ("Ana", "ok"), ("Ana", "ok"),
                            ("Ben", "see you"), ("Ana", "bye")]


def test_source_ids_deduplicate_even_when_text_was_edited(store):
    store.add_messages([msg("Ana", 0, "helo", source_id="17")])
    res = store.add_messages([msg("Ana", 0, "hello", source_id="17"), msg("Ben", 2, "hi", source_id="18")])
    assert res.added == 1 and store.count() == 2


def test_failed_ingest_leaves_store_unchanged(store, tmp_path):
    store.add_messages(EXPORT_1, path="first.txt")
    before = (store.count(), len(store.sources()), store.conversations())

    def broken():
        yield msg("Cleo", 0, "new person", conv="other chat")
        yield msg("Ana", 9, "new message")
        raise IngestError("second.txt", "line 3", "not a chat line")

    with pytest.raises(IngestError, match="second.txt: line 3"):
        store.add_messages(broken(), path="second.txt")
    assert (store.count(), len(store.sources()), store.conversations()) == before


def test_interrupted_ingest_leaves_store_unchanged(store):
    def interrupted():
        yield msg("Ana", 0, "hi")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.add_messages(interrupted())
    assert store.count() == 0 and store.sources() == []


def test_forget_deletes_everywhere_and_keeps_them_out(store):
    store.add_messages(EXPORT_1)
    store.add_messages([msg("Ben", 0, "other chat", conv="work")])
    assert store.forget("Ben") == 2
    assert {m.author for m in store.messages()} == {"Ana"}
    assert [p.author for p in store.people()] == ["Ana"]
    store.add_messages(EXPORT_2)  # a later export still has Ben in it
    assert {m.author for m in store.messages()} == {"Ana"}
    raw = store.path.read_bytes()
    assert b"see you" not in raw and b"other chat" not in raw


def test_people(store):
    store.add_messages(EXPORT_2 + [msg("Ana", 0, "x", conv="work", day=3),
                                   msg("", 0, "Ana joined", kind="system", conv="work", day=2)])
    people = {p.author: p for p in store.people()}
    assert set(people) == {"Ana", "Ben"}
    assert (people["Ana"].messages, people["Ana"].conversations) == (5, 2)
    assert people["Ana"].first.startswith("2024-01-01T10:00") and people["Ana"].last.startswith("2024-01-03")
    assert people["Ben"].messages == 2


def test_sessions_cut_at_gaps(store):
    store.add_messages([msg("Ana", 0, "a"), msg("Ben", 60, "b"),           # 1 h apart: same session
                        msg("Ana", 60 + 7 * 60, "c"),                       # 7 h later: new session
                        msg("Ben", 0, "d", day=3),
                        msg("", 1, "Ben left", kind="system", day=3)])      # notices are not turns
    assert [[m.text for m in s] for s in store.sessions()] == [["a", "b"], ["c"], ["d"]]
    assert [[m.text for m in s] for s in store.sessions(gap=timedelta(hours=8))] == [["a", "b", "c"], ["d"]]
    assert [m.session for m in store.messages(author="Ana")] == [0, 1]


def test_timezone_kept(store):
    tz = timezone(timedelta(hours=2))
    store.add_messages([Message("t", "c", "Ana", datetime(2024, 1, 1, 12, 0, tzinfo=tz), "hi")])
    (m,) = store.messages()
    assert m.sent_at == "2024-01-01T12:00:00+02:00"


def test_scrub(store):
    store.add_messages([msg("Ana", 0, "call +44 7700 900123 or ana@example.org")], scrub=True)
    (m,) = store.messages()
    assert m.text == "call <PHONE> or <EMAIL>"


def test_migrations_recorded_once(tmp_path):
    Store(tmp_path / "x.db").close()
    Store(tmp_path / "x.db").close()
    db = sqlite3.connect(tmp_path / "x.db")
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == [f.__name__ for f in MIGRATIONS]


def test_corrupt_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LikemeError, match="not a likeme database or corrupt"):
        Store(bad)
    assert bad.read_bytes() == b"this is not sqlite" * 100
