"""Property-test pieces shared by the tests/test_ingest_*.py files: damaged exports either parse or
raise an IngestError, never anything else.

A plain module (not a conftest) so any test can import it: `from fuzz import mutations, ...`.

    >>> @settings(max_examples=80, deadline=None)
    ... @given(mutations(VALID))
    ... def test_random_input_parses_or_raises_ingest_error(data):
    ...     assert_parses_or_ingest_error(data, "message_1.json", "messenger")
"""
from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path

from hypothesis import strategies as st

import likeme.data.ingest
from likeme.data.ingest import KINDS, Message
from likeme.errors import IngestError


def _set_bytes(valid: bytes, changes: list[tuple[int, int]]) -> bytes:
    buf = bytearray(valid)
    for i, b in changes:
        buf[i] = b
    return bytes(buf)


def mutations(valid: bytes, *, max_bytes: int = 300, max_changes: int = 8,
              prefix: bytes = b"") -> st.SearchStrategy[bytes]:
    """Random bytes (after `prefix`, e.g. a file's magic), `valid` with up to `max_changes` bytes
    set to random values, or `valid` cut short.

    Example draws for valid=b'{"a": 1}': b"\\x07\\xff", b'{"a"\\x00 1}', b'{"a'
    """
    return st.one_of(
        st.binary(max_size=max_bytes).map(lambda b: prefix + b),
        st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), max_size=max_changes).map(
            lambda changes: _set_bytes(valid, changes)),
        st.integers(0, len(valid)).map(lambda n: valid[:n]),
    )


def splices(valid: bytes, *, max_cut: int = 30,
            junk: st.SearchStrategy[bytes] = st.binary(max_size=20)) -> st.SearchStrategy[bytes]:
    """`valid` with up to `max_cut` bytes somewhere replaced by `junk`.

    Example draw for valid=b"[2024-01-02 10:00] Ana: hi": b"[2024-01-\\x00:00] Ana: hi"
    """
    return st.tuples(st.integers(0, len(valid)), st.integers(0, max_cut), junk).map(
        lambda t: valid[:t[0]] + t[2] + valid[t[0] + t[1]:])


# A JSON value of some other kind than the field expects.
JSON_JUNK = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                      st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@st.composite
def field_mutations(draw, valid: bytes, keys: list[str], top_keys: list[str]) -> bytes:
    """`valid`, a JSON object with a "messages" list, with one message's field (one of `keys`) and
    maybe one top-level field (one of `top_keys`) set to a JSON_JUNK value.

    Example draw for keys=["date"]: ... "messages": [..., {"id": 2, "date": [7], ...}, ...] ...
    """
    doc = json.loads(valid)
    i = draw(st.integers(0, len(doc["messages"]) - 1))
    doc["messages"][i][draw(st.sampled_from(keys))] = draw(JSON_JUNK)
    if draw(st.booleans()):
        doc[draw(st.sampled_from(top_keys))] = draw(JSON_JUNK)
    return json.dumps(doc).encode()


def assert_parses_or_ingest_error(data: bytes, filename: str, format: str, *, precise: bool = False,
                                  direct: bool = False, beside: dict[str, bytes] | None = None,
                                  target: str | None = None) -> list[Message] | None:
    """Write `data` to `filename` in a fresh folder and parse it as `format`: either every message
    is well formed (a kind of KINDS, str author and text, a datetime) and the list is returned, or
    an IngestError is raised and None is returned. Anything else fails the test.

    precise: the error must be the parser's own, not the core's "cannot read as <format>" wrapper
        around a stray exception.
    direct:  call the format module's own `parse`, without the core's safety net: only its own
        IngestErrors may escape and they must name the file; the core must then give the same messages.
    beside:  other files to write first, by path relative to the folder ("export/users.json": ...).
    target:  what to parse, relative to the folder, when it is not `filename` ("export", ".").
    """
    with tempfile.TemporaryDirectory() as d:
        for name, blob in {**(beside or {}), filename: data}.items():
            (Path(d) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(d) / name).write_bytes(blob)
        path = Path(d) / (filename if target is None else target)
        try:
            if direct:
                msgs = list(likeme.data.ingest.formats()[format].parse(path))
            else:
                msgs = list(likeme.data.ingest.parse(path, format=format))
        except IngestError as e:
            if direct:
                assert str(path) in str(e), e
            if precise:
                assert "cannot read as" not in str(e), e
            return None
        for m in msgs:
            assert m.kind in KINDS, m
            assert isinstance(m.author, str) and isinstance(m.text, str), m
            assert isinstance(m.sent_at, datetime), m
        if direct:
            assert list(likeme.data.ingest.parse(path, format=format)) == msgs
        return msgs
