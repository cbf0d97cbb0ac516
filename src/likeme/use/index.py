"""A vector index of the store's text messages, for `likeme search`: kept BESIDE the store, never in it.

    likeme.db.index/                      beside likeme.db
      robin-embedder-3f2a9c1e/            one folder per model (name + hash of its folder's path)
        meta.json      model name and path, weights fingerprint, dimension, count
        ids.npy        (N,) int64          message ids in the store
        vectors.npy    (N, D) float32      unit-length embeddings: row i is message ids[i]

Files, not a table: store.py owns the messages' SQL, and one contiguous matrix makes a search a
single matrix-vector product (numpy, memory-mapped: 1M messages x 384 dims = 1.5 GB read on demand).

Kept in step lazily: each `update` (every search, and `likeme index`) embeds only the messages whose
ids are not indexed yet and drops the rows of messages the store no longer has (`likeme forget`).
`prune(db)` drops those rows from every index beside a store without loading any model: what
`forget` can call so that a forgotten person's vectors do not wait for the next search. A model
retrained in the same folder changes its weights' fingerprint, and its index is rebuilt.

    >>> hits = search("robin-embedder", "see you there", k=3, db="chats.db")
    >>> [(round(h.score, 2), h.author, h.text) for h in hits]
    [(0.91, 'Robin', 'see you there then'), (0.84, 'Robin', 'see you at 8'), (0.77, 'Sam', 'see you!')]
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from likeme.errors import LikemeError

CHUNK = 1024  # messages embedded per call: a progress step, and what an interruption can lose


@dataclass
class Hit:
    score: float  # cosine similarity to the query, -1..1
    id: int
    sent_at: str
    conversation: str
    author: str
    text: str


@dataclass
class Updated:
    path: Path
    total: int  # vectors in the index now
    added: int
    dropped: int


def index_root(db: str | os.PathLike | None = None) -> Path:
    """`<db>.index/`: likeme.db -> likeme.db.index"""
    from likeme.data.store import default_db_path

    path = Path(db) if db else default_db_path()
    return path.with_name(path.name + ".index")


def index_dir(db, model_name) -> Path:
    """The folder of one model's index: <db>.index/<name>-<sha1 of the model folder's path>."""
    from likeme import models

    ref = models.resolve(model_name)
    folder = models.weights_path(ref).resolve()
    label = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(str(ref.name)).name)[:40] or "model"
    return index_root(db) / f"{label}-{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"


def _fingerprint(folder: Path) -> str:
    """Names, sizes and times of the model's files: changes when it is retrained in place."""
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _load(folder: Path, fingerprint: str):
    """(ids, vectors) of a saved index, or empty ones when there is none or it is stale / damaged."""
    import numpy as np

    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
        if meta.get("fingerprint") != fingerprint:
            raise ValueError("the model changed")
        ids = np.load(folder / "ids.npy")
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        if ids.shape[0] != vectors.shape[0] or meta.get("count") != ids.shape[0]:
            raise ValueError("damaged")
        return ids, vectors
    except (OSError, ValueError):
        return np.zeros(0, dtype=np.int64), None


def _save(folder: Path, ids, vectors, meta: dict) -> None:
    """Whole or not at all: written into a temp folder and renamed (paths.atomic_dir)."""
    import numpy as np

    from likeme.paths import atomic_dir

    with atomic_dir(folder, need_bytes=int(vectors.nbytes + ids.nbytes)) as tmp:
        np.save(tmp / "ids.npy", np.ascontiguousarray(ids, dtype=np.int64))
        np.save(tmp / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32))
        (tmp / "meta.json").write_text(json.dumps({**meta, "count": int(len(ids))}, indent=2) + "\n", "utf-8")


def _text_messages(store) -> dict:
    """id -> StoredMessage for every text message with some text: what the index covers."""
    return {m.id: m for m in store.messages(kinds=("text",)) if m.text.strip()}


def update(model_name, db=None, *, model=None, progress: bool = False) -> Updated:
    """Bring the index of `model_name` in step with the store. Loads the model only when there is
    something new to embed.

    Example: update("robin-embedder", "chats.db") -> Updated(path=.../robin-embedder-3f2a9c1e, total=3535,
      added=3535, dropped=0) the first time, added=0 the next.
    """
    return _update(model_name, db, model=model, progress=progress, messages=None)[0]


def _update(model_name, db, *, model, progress, messages):
    import numpy as np

    from likeme import models
    from likeme.data.store import Store

    ref = models.resolve(model_name)
    weights = models.weights_path(ref)
    folder = index_dir(db, model_name)
    fingerprint = _fingerprint(weights)
    if messages is None:
        with Store(db) as store:
            messages = _text_messages(store)
    ids, vectors = _load(folder, fingerprint)
    keep = np.isin(ids, np.fromiter(messages.keys(), dtype=np.int64, count=len(messages)))
    dropped = int((~keep).sum())
    have = set(ids[keep].tolist())
    new_ids = [i for i in messages if i not in have]
    if vectors is not None and dropped:
        ids, vectors = ids[keep], np.asarray(vectors[keep])
    meta = {"model": str(ref.name), "weights": str(Path(weights).resolve()), "fingerprint": fingerprint}
    if new_ids:
        from likeme.use.embedder import embed, load_model

        model = model or load_model(ref)
        parts, done, interrupted = [], [], False
        bar = None
        if progress and len(new_ids) > CHUNK:
            import sys

            from tqdm import tqdm

            bar = tqdm(total=len(new_ids), unit=" msg", unit_scale=True, desc="indexing", file=sys.stderr)
        try:
            for i in range(0, len(new_ids), CHUNK):
                chunk = new_ids[i: i + CHUNK]
                parts.append(embed(model, [messages[j].text for j in chunk]))  # (n, D)
                done.extend(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        except KeyboardInterrupt:
            interrupted = True  # keep what was embedded: the next search goes on from there
        finally:
            if bar is not None:
                bar.close()
        if done:
            dim = parts[0].shape[1]
            old = np.asarray(vectors) if vectors is not None else np.zeros((0, dim), dtype=np.float32)
            if old.shape[1:] != (dim,):  # a damaged index of another width: start over
                ids, old = np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
            ids = np.concatenate([ids, np.asarray(done, dtype=np.int64)])
            vectors = np.concatenate([old, *parts])  # (N_old + n_new, D)
            _save(folder, ids, vectors, {**meta, "dim": int(dim)})
        if interrupted:
            raise KeyboardInterrupt
    elif dropped:
        _save(folder, ids, vectors, {**meta, "dim": int(vectors.shape[1])})
    return Updated(folder, int(len(ids)), len(new_ids), dropped), ids, vectors, model


def search(model_name, query: str, *, k: int = 10, author: str | None = None, db=None, model=None,
           progress: bool = False) -> list[Hit]:
    """The `k` messages of the store most similar to `query` (cosine), best first; the index is
    updated first. `author` keeps only that person's messages."""
    import numpy as np

    from likeme.data.store import Store
    from likeme.use.embedder import embed, load_model

    if not query.strip():
        raise LikemeError("nothing to search for: give some text")
    if k < 1:
        raise LikemeError("--k must be at least 1")
    with Store(db) as store:
        messages = _text_messages(store)
        if author is not None and not any(m.author == author for m in messages.values()):
            people = sorted({m.author for m in messages.values()})
            close = sorted(people, key=lambda p: (p.lower() != author.lower(), p))[:5]
            raise LikemeError(f"no text messages by {author!r} in the store; people there include: "
                              f"{', '.join(close) or 'nobody yet (run likeme ingest)'}")
    if not messages:
        raise LikemeError("the store has no text messages to search: run likeme ingest EXPORT first")
    _, ids, vectors, model = _update(model_name, db, model=model, progress=progress, messages=messages)
    model = model or load_model(model_name)
    q = embed(model, [query])[0]  # (D,)
    scores = np.asarray(vectors) @ q  # (N, D) @ (D,) -> (N,)
    if author is not None:
        scores = np.where([messages[int(i)].author == author for i in ids], scores, -np.inf)
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, k - 1)[:k] if k else []
    top = sorted(top, key=lambda i: -scores[i])
    out = []
    for i in top:
        m = messages[int(ids[i])]
        out.append(Hit(float(scores[i]), m.id, m.sent_at, m.conversation, m.author, m.text))
    return out


def prune(db=None) -> int:
    """Drop the vectors of messages no longer in the store from every index beside it, loading no
    model; returns how many rows went. For `likeme forget`: a forgotten person's messages leave the
    indexes at once."""
    import numpy as np

    from likeme.data.store import Store

    root = index_root(db)
    if not root.is_dir():
        return 0
    with Store(db) as store:
        present = np.fromiter((m.id for m in store.messages(kinds=("text",))), dtype=np.int64)
    gone = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
            ids = np.load(folder / "ids.npy")
            vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        except (OSError, ValueError):
            continue
        keep = np.isin(ids, present)
        if not keep.all():
            gone += int((~keep).sum())
            _save(folder, ids[keep], np.asarray(vectors[keep]), meta)
    return gone
