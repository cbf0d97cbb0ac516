"""What identifies a data file: its sha256 (a folder's: its files' names and contents), for the store's
sources and a run's provenance.

    >>> file_data("labels.csv")
    {"file": "/home/ana/labels.csv", "sha256": "9f86d0..."}
"""
from __future__ import annotations

import hashlib
from pathlib import Path


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


def file_data(path: str | Path) -> dict:
    """Provenance of a data file: {"file": "/abs/labels.csv", "sha256": "..."}"""
    path = Path(path)
    return {"file": str(path.resolve()), "sha256": sha256_of(path)}
