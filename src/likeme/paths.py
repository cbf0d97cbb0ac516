"""Where likeme keeps things, and writing a folder whole or not at all.

    $LIKEME_HOME (default ~/.likeme)
      likeme.db        the message store (store.py)
      models/          converted model caches (bundled.py)
      runs/            run folders written by `likeme train ...` (runs.py)

Standard library only: every other module may import this one.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from likeme.errors import LikemeError

STALE_TMP_S = 3600  # a write takes minutes at most; a temp folder older than this is a killed process's


def home() -> Path:
    """`$LIKEME_HOME`, by default `~/.likeme`."""
    return Path(os.environ.get("LIKEME_HOME") or Path.home() / ".likeme")


def models_dir() -> Path:
    return home() / "models"


def runs_dir() -> Path:
    return home() / "runs"


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, for one-line errors: ValueError("bad\\nmore") -> "bad"."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def is_disk_full(e: BaseException | None) -> bool:
    """OSError ENOSPC/EDQUOT, or safetensors' "No space left on device (os error 28)", however wrapped."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "os error 28" in str(e):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def write_error(target: Path, e: BaseException, need_bytes: int | None = None) -> LikemeError:
    """A failed write as one line that says what to do (a full disk says how much room is needed)."""
    if is_disk_full(e):
        room = f"free about {need_bytes // 2**20 + 1} MB there" if need_bytes else "free some space there"
        return LikemeError(f"no space left on the disk writing {target}: {room}, or set LIKEME_HOME to a disk with room")
    return LikemeError(f"cannot write {target} ({first_line(e)}): check that the folder is writable, or set LIKEME_HOME elsewhere")


@contextmanager
def atomic_dir(target: str | os.PathLike, *, need_bytes: int | None = None) -> Iterator[Path]:
    """Write a folder whole or not at all: yield a temp folder beside `target`, rename it there on success.

    On any error, Ctrl-C included, the temp folder is removed and `target` is left as it was; a full disk
    becomes one LikemeError that says how much room is needed. Temp folders left by a killed process
    (`.NAME.tmp-*`) are swept on the next call.

        with atomic_dir(home() / "models" / "smollm2-135m") as tmp:
            model.save_pretrained(tmp)
    """
    target = Path(target)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(parent, target.name)
        tmp = parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()  # not mkdtemp: that makes it 0700, and the folder keeps the mode it is renamed with
    except OSError as e:
        raise write_error(target, e, need_bytes) from e
    try:
        yield tmp
        for f in tmp.rglob("*"):  # on disk before the rename, so a power cut cannot expose empty files
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if target.exists():
            old = parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and is_disk_full(e):
            raise write_error(target, e, need_bytes) from e
        raise


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Replace a small text file in one step (write beside it, fsync, rename): a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from e


def _sweep_stale(parent: Path, name: str) -> None:
    now = time.time()
    for p in list(parent.glob(f".{name}.tmp-*")) + list(parent.glob(f".{name}.old-*")):
        try:
            if now - p.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
