"""Raw text for the recipes that read text, not chats (tokenizer, pretrain): documents -> one token
stream -> (block_size) blocks."""
from __future__ import annotations

from typing import Sequence

from likeme.data.examples import check_person
from likeme.data.store import file_data
from likeme.errors import LikemeError


def token_stream(documents: Sequence[Sequence[int]], eos_id: int) -> list[int]:
    """Documents' ids joined into one stream, `<|endoftext|>` (eos_id) after each (GPT-2's packing).

    Example (eos_id=0): [[5, 6], [7, 8, 9]] -> [5, 6, 0, 7, 8, 9, 0]
    """
    out: list[int] = []
    for doc in documents:
        out.extend(doc)
        out.append(eos_id)
    return out


def blocks(stream: Sequence[int], block_size: int) -> list[dict]:
    """Contiguous, non-overlapping blocks of `block_size` tokens as language-modelling examples (labels =
    input_ids: the model shifts them), no padding; the last partial block is dropped.

    Example (block_size=3): [5, 6, 0, 7, 8, 9, 0] -> [{"input_ids": [5, 6, 0], "labels": [5, 6, 0]},
                                                      {"input_ids": [7, 8, 9], "labels": [7, 8, 9]}]
    """
    out = []
    for i in range(0, len(stream) - block_size + 1, block_size):
        ids = list(stream[i: i + block_size])
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def text_documents(files: Sequence[str], db: str | None = None, name: str | None = None) -> tuple[list[str], dict]:
    """(documents, provenance) for raw-text recipes (tokenizer, pretrain): each UTF-8 file one document, or
    the store's sessions (`store_documents`) when `db` is given instead."""
    from pathlib import Path

    if bool(files) == bool(db):
        raise LikemeError("give the text to learn from: --data FILE (repeatable) or --db STORE")
    if files:
        docs = []
        for f in files:
            if not Path(f).is_file():
                raise LikemeError(f"{f}: no such file")
            try:
                docs.append(Path(f).read_text("utf-8"))
            except UnicodeDecodeError as e:
                raise LikemeError(f"{f} is not UTF-8 text ({e.reason} at byte {e.start}): convert it first, "
                                  f"e.g. iconv -f latin1 -t utf-8") from None
        return docs, {"files": [file_data(f) for f in files]}
    from likeme.data.store import Store

    with Store(db) as store:
        return store_documents(store, name), store.provenance(name)


def store_documents(store, name: str | None = None, *, gap=None) -> list[str]:
    """The store's text messages as documents, one per session ("Author: text" lines, oldest first);
    with `name`, NAME's messages only (their own text, without the name)."""
    from likeme.data.store import DEFAULT_SESSION_GAP

    if name:
        check_person(store, name)
    docs = []
    for raw in store.sessions(gap=gap or DEFAULT_SESSION_GAP):
        lines = [(m.text.strip() if name else f"{m.author}: {m.text.strip()}") for m in raw
                 if m.kind == "text" and m.text.strip() and m.author and (not name or m.author == name)]
        if lines:
            docs.append("\n".join(lines))
    return docs
