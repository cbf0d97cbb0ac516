"""Tokenized voice datasets kept BESIDE the store, so that a resume, `likeme eval`, `pairs`, `plan` and a
second run read them instead of tokenizing again.

    likeme.db.cache/                       beside likeme.db (as `use.index` keeps likeme.db.index/)
      persona-3f2a9c1e0b7d5a44.npz          one dataset: 16 hex of the sha256 of its settings and tokenizer
        input_ids, labels  (T,) int32       every example's tokens end to end, train then held-out
        ends               (N,) int64       where each example ends in them
        meta               (B,) uint8       JSON: how many are train, the sessions, replies, partner, the key

The key (in meta) is what the examples are a function of: the store's content (`Store.fingerprint`: sources'
sha256s, message count, highest id), the tokenizer (name or path, size, chat template, and its whole
serialized vocabulary and merges where it has one) and the settings. A file is written to a temporary
name and renamed, so a reader never sees half of one; a file that cannot be read is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

VERSION = 2  # part of every key: bump it when the examples' format or the way they are built changes


def cache_root(db: str | os.PathLike) -> Path:
    """`<db>.cache/`: likeme.db -> likeme.db.cache"""
    path = Path(db)
    return path.with_name(path.name + ".cache")


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides how a tokenizer turns a chat into ids (~50 ms for SmolLM2's, once per build)."""
    h = hashlib.sha256()
    template = getattr(tokenizer, "chat_template", None) or ""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    for part in (getattr(tokenizer, "name_or_path", ""), len(tokenizer), getattr(tokenizer, "vocab_size", None),
                 template if isinstance(template, str) else json.dumps(template, sort_keys=True),
                 backend.to_str() if backend is not None else ""):
        h.update(str(part).encode() + b"\0")
    return h.hexdigest()


def dataset_key(store, tokenizer, settings: dict) -> tuple[Path, str] | None:
    """(where the dataset with these settings and this tokenizer lives, the key of its content), or None
    when it is not cached (a store in memory, or an object that is not a `Store`). One file per settings
    and tokenizer: a store that changed overwrites it rather than leaving old ones behind."""
    path = getattr(store, "path", None)
    fingerprint = getattr(store, "fingerprint", None)
    if path is None or fingerprint is None or not Path(path).is_file():
        return None
    made_by = json.dumps({"version": VERSION, "tokenizer": tokenizer_fingerprint(tokenizer), "settings": settings},
                         sort_keys=True, default=str)
    name = hashlib.sha256(made_by.encode()).hexdigest()
    key = hashlib.sha256(f"{name}\n{fingerprint()}".encode()).hexdigest()
    return cache_root(path) / f"persona-{name[:16]}.npz", key


def clear(db: str | os.PathLike) -> int:
    """Delete every cached dataset beside a store (`likeme forget`: a forgotten person's words must not stay
    on disk as tokens). Returns how many files were deleted."""
    files = list(cache_root(db).glob("persona-*.npz"))
    for f in files:
        f.unlink(missing_ok=True)
    return len(files)


def load(where: tuple[Path, str] | None) -> tuple[list[dict], list[dict], dict] | None:
    """(train, held-out, meta) from a cache file; None when it is absent, unreadable or of another key."""
    if where is None or not where[0].is_file():
        return None
    path, key = where
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(f["meta"].tobytes().decode("utf-8"))
            if meta.get("key") != key:  # the store changed since: build again
                return None
            ids, labels, ends = f["input_ids"], f["labels"], f["ends"]
        starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
        examples = [{"input_ids": ids[a:b].tolist(), "labels": labels[a:b].tolist()} for a, b in zip(starts, ends)]
        n = meta["train"]
        if len(examples) != n + meta["heldout"]:
            return None
        return examples[:n], examples[n:], meta
    except Exception:  # a truncated or foreign file: build again
        return None


def save(where: tuple[Path, str] | None, train: list[dict], heldout: list[dict], meta: dict) -> None:
    """Write atomically; a store folder that cannot be written to only costs the cache."""
    if where is None:
        return
    path, key = where
    examples = train + heldout
    buf = io.BytesIO()
    np.savez(buf,
             input_ids=np.fromiter((t for e in examples for t in e["input_ids"]), dtype=np.int32),
             labels=np.fromiter((t for e in examples for t in e["labels"]), dtype=np.int32),
             ends=np.cumsum([len(e["input_ids"]) for e in examples], dtype=np.int64),
             meta=np.frombuffer(json.dumps({**meta, "key": key, "train": len(train), "heldout": len(heldout)}).encode(), np.uint8))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
