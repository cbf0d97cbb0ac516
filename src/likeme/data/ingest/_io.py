"""Shared reading helpers for the format modules: text with encoding repair, JSON with the place of
an error, sniffing heads, mojibake repair, ISO 8601 times. Every failure here is an `IngestError`
naming the file (except `parse_iso`, which has no file to name)."""
from __future__ import annotations

import codecs
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from likeme.errors import IngestError

# Bidi and other invisible marks that phones put around names, dates and "image omitted":
# U+200E/U+200F (LRM/RLM), U+202A-U+202E (embeddings/overrides), U+2066-U+2069 (isolates), U+FEFF.
INVISIBLE = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
_INVISIBLE_TABLE = {ord(c): None for c in INVISIBLE}
# No-break spaces (U+00A0, U+202F before AM/PM on newer iOS, U+2007) folded to a plain space.
_SPACES_TABLE = {0x00A0: " ", 0x202F: " ", 0x2007: " "}


def strip_invisible(s: str) -> str:
    """Remove bidi marks and BOMs: "\u200e[1/2/23]" -> "[1/2/23]"."""
    return s.translate(_INVISIBLE_TABLE)


def clean_name(s: str) -> str:
    """An author or conversation name as a person would type it: no bidi marks, plain spaces.

    Example: "\u202a+40\u00a0521\u00a0028\u202c" -> "+40 521 028"
    """
    return s.translate(_INVISIBLE_TABLE).translate(_SPACES_TABLE).strip()


def decode(data: bytes, path) -> str:
    """Bytes of a text export -> str. UTF-8 (with or without BOM) and UTF-16/32 (BOM or NUL-pattern)
    are read; UTF-8 that was decoded as Latin-1/CP1252 and saved again (mojibake) is repaired.
    Anything else is an IngestError that tells the user how to convert the file."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return fix_mojibake(data.decode(enc))
            except UnicodeDecodeError as e:
                raise IngestError(path, f"byte {e.start}", f"invalid {enc.upper()} text") from None
    head = data[:4096]
    if len(head) >= 4 and head.count(0) >= len(head) // 4:  # UTF-16 without a BOM: every other byte NUL
        enc = "utf-16-le" if head[1] == 0 else "utf-16-be"
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            pass
    try:
        return fix_mojibake(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise IngestError(
            path, f"byte {e.start}",
            "not UTF-8 text; re-export it, or convert it first (iconv -f CP1252 -t UTF-8 FILE > FILE.utf8)",
        ) from None


def read_bytes(path: Path) -> bytes:
    """The whole file; an OSError becomes an IngestError ("cannot read: Permission denied")."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise IngestError(path, None, f"cannot read: {e.strerror or e}") from None


def read_text(path: Path) -> str:
    """The whole file as str, through `decode`."""
    return decode(read_bytes(path), path)


def read_head(path: Path, n: int = 8192) -> str:
    """The first `n` bytes as text, for sniffing; '' when the file is binary or unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read(n)
    except OSError:
        return ""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(data) >= 4 and data.count(0) >= len(data) // 4 and data.count(0) < len(data)
    ):
        enc = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else (
            "utf-16-le" if data[1] == 0 else "utf-16-be")
        return data[: len(data) // 2 * 2].decode(enc, "ignore").lstrip("\ufeff")
    if b"\x00" in data:
        return ""
    return data.decode("utf-8", "ignore").lstrip("\ufeff")


# Mojibake: UTF-8 bytes that were read as Latin-1 / CP1252. Its tell-tale is a lead byte
# U+00C2..U+00F4 followed by one or more continuation characters U+0080..U+00BF (or their CP1252
# look-alikes such as "€", "™", "œ"). Example: "CafÃ©" -> "Café", "ðŸ‘" -> "👍".
_CP1252_CONT = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf" + _CP1252_CONT + "]")
# A "repair" that lands in C1 controls or in Thaana/NKo (U+0780-U+07FF) was real Latin-1 text such
# as "Straße\u00a0" (0xDF 0xA0 is also valid UTF-8): keep the original.
_IMPLAUSIBLE = re.compile("[\u0080-\u009f\u0780-\u07ff]")


def fix_mojibake(s: str) -> str:
    """Repair text that is UTF-8 read as Latin-1/CP1252; leave anything else unchanged.

    Example: fix_mojibake("Ã©tÃ© ðŸ˜€") -> "été 😀";  fix_mojibake("été") -> "été"
    """
    if not _MOJIBAKE.search(s):
        return s
    for enc in ("latin-1", "cp1252"):
        try:
            fixed = s.encode(enc).decode("utf-8")
        except UnicodeError:
            continue
        if not _IMPLAUSIBLE.search(fixed):
            return fixed
    # Mixed text: repair run by run, leaving what does not round-trip as it is.
    def fix_run(m: re.Match) -> str:
        run = m.group(0)
        for enc in ("latin-1", "cp1252"):
            try:
                fixed = run.encode(enc).decode("utf-8")
            except UnicodeError:
                continue
            if not _IMPLAUSIBLE.search(fixed):
                return fixed
        return run
    return re.sub("[\u00c2-\u00f4][\u0080-\u00bf" + _CP1252_CONT + "]+", fix_run, s)


def load_json(path: Path):
    """Parse a JSON file; a syntax error becomes an IngestError with line and column."""
    return loads_json(read_text(path), path)


def loads_json(text: str, path: Path):
    """Parse JSON text read from `path`; a syntax error becomes an IngestError with line and column.

    Example: loads_json('{"a": 1,\\n}', "chat.json")
      -> IngestError "chat.json: line 2, column 1: invalid JSON: Expecting property name enclosed in double quotes"
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise IngestError(path, f"line {e.lineno}, column {e.colno}", f"invalid JSON: {e.msg}") from None
    except RecursionError:
        raise IngestError(path, None, "invalid JSON: nested too deeply") from None


def json_head(path: Path, n: int = 8192) -> str:
    """The start of a file with whitespace removed, for sniffing JSON keys cheaply:
    '{\n  "name": "x",' -> '{"name":"x",'."""
    return re.sub(r"\s+", "", read_head(path, n))


# "2019-01-04T17:52:39.762+00:00", "2021-03-04 10:11", "2021-03-04T10:11:12,5 Z", "...+0530".
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?\s*(Z|[+-]\d\d:?\d\d)?$"
)


def utc_offset(sign: str | None, hours: str | int, minutes: str | int = 0) -> timezone:
    """A fixed zone from the parts of "+05:30": utc_offset("-", "03", "30") -> UTC-03:30.

    Raises ValueError for 24 hours or more, as `datetime.timezone` does."""
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-offset if sign == "-" else offset)


def parse_iso(value: str) -> datetime | None:
    """An ISO 8601 date and time -> datetime; None when `value` does not have that shape.

    Examples: "2019-01-04T17:52:39.762+00:00" -> 2019-01-04 17:52:39.762000+00:00 (aware);
    "2019-01-04T17:52:39Z" -> UTC; "2019-01-04 17:52" -> naive 2019-01-04 17:52:00;
    fractions are cut to microseconds ("...39.1234567" -> .123456); "04/01/2019" -> None.
    Surrounding white space is ignored. The right shape with an impossible value
    ("2019-02-30T10:00", "...T25:00", "+24:00") raises ValueError, so that a caller can tell
    "not a date" from "not a valid date".
    """
    d = _ISO.match(value.strip())
    if not d:
        return None
    y, mo, da, hh, mi, ss, frac, zone = d.groups()
    t = datetime(int(y), int(mo), int(da), int(hh), int(mi), int(ss or 0),
                 int((frac or "0")[:6].ljust(6, "0")))
    if zone is None:
        return t
    if zone == "Z":
        return t.replace(tzinfo=timezone.utc)
    digits = zone[1:].replace(":", "")
    return t.replace(tzinfo=utc_offset(zone[0], digits[:2], digits[2:]))
