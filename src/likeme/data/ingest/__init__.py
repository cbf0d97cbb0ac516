"""Reading chat exports into `Message`s.

    >>> from likeme.data.ingest import parse
    >>> for m in parse("WhatsApp Chat with Sam.zip"):
    ...     print(m.sent_at, m.author, m.text)

Each format is a module (or object) with `NAME`, `sniff(path) -> bool` and
`parse(path, **options) -> Iterator[Message]`, registered in the `likeme.formats` entry-point group;
the built-in ones register exactly the way a third-party package would (see pyproject.toml).
`parse` accepts a file, a `.zip` or an export folder and detects the format from the content.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

from likeme.errors import IngestError, UnknownFormatError

__all__ = ["Message", "parse", "detect", "formats", "IngestError", "UnknownFormatError"]

KINDS = ("text", "media", "system")


@dataclass(slots=True)
class Message:
    """One message, whatever app it came from.

    platform:     "whatsapp", "telegram", ... (the format's NAME without variants)
    conversation: the chat's name (group title, channel, the other person, or the file's name)
    author:       who wrote it, as the export names them (for system notices: the actor or "")
    sent_at:      when; timezone-aware when the export records the zone, naive otherwise
    text:         the text as a person reads it (mentions and links rendered, entities joined)
    kind:         "text", "media" (a photo, video, sticker, file or voice note (caption in `text`),
                  or a deleted message (text "")) or "system" (joins, leaves, renames, calls,
                  encryption notices: not a person's words)
    reply_to:     the `source_id` of the message this one answers, when the export says so
    source_id:    the export's own id for the message, when it has one
    """

    platform: str
    conversation: str
    author: str
    sent_at: datetime
    text: str
    kind: str = "text"
    reply_to: str | None = None
    source_id: str | None = None


def formats() -> dict:
    """Registered formats by name, in sniffing order (lower `PRIORITY` first, default 50).

    Entry points of the `likeme.formats` group; the built-in list is the fallback when likeme runs
    from a source tree that was never installed."""
    import importlib
    from importlib.metadata import entry_points

    found = {}
    for ep in entry_points(group="likeme.formats"):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # a broken plug-in must not take the built-in formats down with it
            import warnings
            warnings.warn(f"likeme: format plug-in {ep.name!r} failed to load: {e}")
    if not found:
        for name, mod in _BUILTIN.items():
            found[name] = importlib.import_module(f"likeme.data.ingest.{mod}")
    return dict(sorted(found.items(), key=lambda kv: (getattr(kv[1], "PRIORITY", 50), kv[0])))


_BUILTIN = {
    "whatsapp": "whatsapp", "telegram": "telegram", "telegram-html": "telegram_html",
    "discord": "discord", "discord-csv": "discord_csv", "messenger": "messenger", "slack": "slack",
    "imessage": "imessage", "signal": "signal", "hangouts": "hangouts", "transcript": "transcript",
    "table": "table",
}


def _sniff(fmt, path: Path) -> bool:
    try:
        return bool(fmt.sniff(path))
    except Exception:  # a sniffer that trips on odd bytes just means "not mine"
        return False


def detect(path: str | os.PathLike) -> str | None:
    """The name of the first format whose `sniff` claims `path` (a file or folder), else None."""
    path = Path(path)
    for name, fmt in formats().items():
        if _sniff(fmt, path):
            return name
    return None


def parse(path: str | os.PathLike, format: str | None = None, **options) -> Iterator[Message]:
    """Messages of an export: a file, a `.zip`, or an export folder.

    `format` forces a format by name; otherwise it is detected from the content. `options` go to
    the format's parser (e.g. `me="Ana"` for iMessage's `is_from_me`). Any problem with the user's
    file is raised as an `IngestError` naming the file and the place."""
    path = Path(path)
    if not path.exists():
        raise IngestError(path, None, "no such file or folder")
    registry = formats()
    if format is not None and format not in registry:
        raise UnknownFormatError(path, None, f"unknown format {format!r}; choose one of: {', '.join(registry)}")
    if path.is_file() and zipfile.is_zipfile(path):
        yield from _parse_zip(path, format, registry, options)
    elif path.is_dir():
        yield from _parse_dir(path, format, registry, options)
    else:
        name = format or next((n for n, f in registry.items() if _sniff(f, path)), None)
        if name is None:
            raise UnknownFormatError(
                path, None,
                f"not a chat export likeme knows (tried: {', '.join(registry)}); "
                "if you know the format, pass --format NAME",
            )
        yield from _run(registry[name], name, path, options)


def _run(fmt, name: str, path: Path, options: dict) -> Iterator[Message]:
    """Run one parser, turning any unexpected exception into an IngestError about the user's file."""
    try:
        yield from fmt.parse(path, **options)
    except IngestError:
        raise
    except (KeyboardInterrupt, GeneratorExit, MemoryError):
        raise
    except Exception as e:
        raise IngestError(path, None, f"cannot read as {name}: {type(e).__name__}: {e}") from None


def _parse_dir(root: Path, format: str | None, registry: dict, options: dict) -> Iterator[Message]:
    # A format may claim the whole folder (Slack, Messenger's message_N.json, Telegram HTML pages).
    names = [format] if format else list(registry)
    for name in names:
        if _sniff(registry[name], root):
            yield from _run(registry[name], name, root, options)
            return
    # Otherwise every file some format claims (media, html assets and the like are skipped).
    found = False
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        if here != root:
            for name in names:
                if _sniff(registry[name], here):
                    found = True
                    yield from _run(registry[name], name, here, options)
                    dirnames.clear()
                    filenames = []
                    break
        for fn in sorted(filenames):
            p = here / fn
            if zipfile.is_zipfile(p):
                continue
            name = next((n for n in names if _sniff(registry[n], p)), None)
            if name is not None:
                found = True
                yield from _run(registry[name], name, p, options)
    if not found:
        raise UnknownFormatError(
            root, None,
            f"no chat export found in this folder (tried: {', '.join(names)}); "
            "point at the export file itself, or pass --format NAME",
        )


def _parse_zip(path: Path, format: str | None, registry: dict, options: dict) -> Iterator[Message]:
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise IngestError(path, None, f"corrupt zip: {e}") from None
    if bad is not None:
        raise IngestError(path, bad, "corrupt zip member (CRC check failed); download the export again")
    with tempfile.TemporaryDirectory(prefix="likeme-") as tmp, zf:
        # Extract under a folder named like the zip: a WhatsApp `_chat.txt` takes the chat's name
        # from "WhatsApp Chat - Sam.zip". Media is skipped when the zip is big (only text is read).
        root = Path(tmp) / path.stem
        root.mkdir()
        text_like = (".txt", ".text", ".md", ".json", ".jsonl", ".ndjson", ".html", ".htm", ".csv", ".tsv", ".db", ".sqlite")
        for info in infos:
            if info.is_dir():
                continue
            name = info.filename.lower()
            if total > 64 * 2**20 and not (name.endswith(text_like) or "." not in name.rsplit("/", 1)[-1]):
                continue
            try:
                zf.extract(info, root)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
                raise IngestError(path, info.filename, f"cannot extract: {e}") from None
        children = [c for c in root.iterdir() if not c.name.startswith("__MACOSX")]
        inner = children[0] if len(children) == 1 else root
        if inner.is_file():
            name = format or next((n for n, f in registry.items() if _sniff(f, inner)), None)
            if name is None:
                raise UnknownFormatError(path, inner.name, f"not a chat export likeme knows (tried: {', '.join(registry)}); pass --format NAME")
            yield from _rename_errors(_run(registry[name], name, inner, options), inner, path)
        else:
            yield from _rename_errors(_parse_dir(inner, format, registry, options), root, path)


def _rename_errors(it: Iterator[Message], tmp: Path, zip_path: Path) -> Iterator[Message]:
    """Errors inside a zip name the zip and the member, not our temporary folder."""
    try:
        yield from it
    except IngestError as e:
        p = Path(e.path)
        base = tmp if tmp.is_dir() else tmp.parent
        try:
            member = p.relative_to(base).as_posix()
        except ValueError:
            member = p.name
        where = f"{member}: {e.where}" if e.where else member
        raise type(e)(zip_path, where, e.what) from None
