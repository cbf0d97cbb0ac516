"""Every real export under ../shared/data/chat_exports parses, with the counts and authors that
ingest_expected.json gives for it (the same checks as shared/tools/score_ingest.py, file by file)."""
import json
import re

import pytest
from conftest import SHARED, needs_shared

from likeme.data.ingest import parse

EXPECTED = json.loads((SHARED / "ingest_expected.json").read_text("utf-8")) if SHARED.exists() else {}
TARGETS = re.compile(r"(target\.json|_target\.csv)$")
ALL_EXPORTS = sorted(
    p.relative_to(SHARED).as_posix() for p in (SHARED / "chat_exports").rglob("*")
    if p.is_file() and not TARGETS.search(p.name)) if SHARED.exists() else []


def norm(name):
    name = re.sub("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", "", name or "")
    return re.sub("[\u00a0\u202f\u2007]", " ", name).strip()


@needs_shared
@pytest.mark.parametrize("rel", ALL_EXPORTS)
def test_every_shared_export_parses(rel):
    msgs = list(parse(SHARED / rel))
    assert msgs, f"{rel}: no messages"
    assert all(m.kind in ("text", "media", "system") for m in msgs)
    # chronological within each conversation
    for conv in {m.conversation for m in msgs}:
        times = [m.sent_at for m in msgs if m.conversation == conv]
        assert times == sorted(times), f"{rel}: {conv} not in time order"


@needs_shared
@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_shared_export_matches_expectations(rel):
    e = EXPECTED[rel]
    msgs = [m for m in parse(SHARED / rel) if m.kind != "system"]
    authors = {norm(m.author) for m in msgs}
    assert e["min_messages"] <= len(msgs) <= e["max_messages"]
    assert {norm(a) for a in e["authors_required"]} <= authors
    if e["authors_allowed"] is not None:
        assert authors <= {norm(a) for a in e["authors_allowed"]}
    assert sum(1 for m in msgs if m.text.strip()) >= e.get("min_nonempty_text", 0)
