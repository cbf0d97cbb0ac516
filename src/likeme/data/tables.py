"""The one table reader: CSV, TSV, JSON Lines and JSON arrays of objects, each row a record with named
columns, every error naming the file and the line. Used by the `table` ingest format, the classifier's
labelled texts and the embedder's pair / triplet files.

    text,label                         {"text": "hi", "label": "greeting"}
    "Hi,\\nthere",greeting              {"text": "bye", "label": "farewell"}

- The kind is the suffix's (.csv, .tsv/.tab, .jsonl/.ndjson, .json); another suffix is read as JSON
  when it starts with `{` or `[`, else as delimited text. A .json file holds an array of objects,
  or one object per line.
- Delimited text: the first non-empty row names the columns; the delimiter is a tab for .tsv/.tab,
  else the most frequent of `,` `;` and tab in that row. Quoted cells may hold newlines and CRLF.
- Text is decoded as the ingest formats decode it: UTF-8 with or without BOM, UTF-16, mojibake
  repaired; anything else is an error that says how to convert the file.
- Blank rows are skipped; a row shorter than the header has None in the columns it lacks. Column names
  keep their case; `cell` looks them up exactly, then ignoring case.

    >>> list(records("labels.csv"))
    [('line 2', {'text': 'Hi,\\nthere', 'label': 'greeting'}), ('line 4', {...})]
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterator

from likeme.data.ingest._io import loads_json, read_text, strip_invisible
from likeme.errors import IngestError

JSON_LINES = (".jsonl", ".ndjson")
DELIMITED = (".csv", ".tsv", ".tab")


def records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(place, record) per row, in file order; place is "line N" (or "[i]" in a JSON array)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(path, None, "no such file")
    text = read_text(path).lstrip("\ufeff")
    suffix = path.suffix.lower()
    head = text.lstrip()[:1]
    if suffix in JSON_LINES or (suffix == ".json" and head == "{"):
        yield from _json_lines(path, text)
    elif suffix == ".json" or (suffix not in DELIMITED and head == "["):
        data = loads_json(text, path)
        if not isinstance(data, list):
            raise IngestError(path, None, "expected a JSON array of objects, or one object per line")
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise IngestError(path, f"[{i}]", "expected an object like {\"text\": ...}")
            yield f"[{i}]", _keys(obj)
    elif suffix not in DELIMITED and head == "{":
        yield from _json_lines(path, text)
    else:
        yield from _delimited(path, text, suffix)


def _json_lines(path: Path, text: str) -> Iterator[tuple[str, dict]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise IngestError(path, f"line {n}", f"invalid JSON ({getattr(e, 'msg', e)}): write one object per line") from None
        except RecursionError:
            raise IngestError(path, f"line {n}", "invalid JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise IngestError(path, f"line {n}", "expected one JSON object per line")
        yield f"line {n}", _keys(obj)


def _delimited(path: Path, text: str, suffix: str) -> Iterator[tuple[str, dict]]:
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = "\t" if suffix in (".tsv", ".tab") else max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise IngestError(path, f"line {start}", f"cannot read it as CSV ({e})") from None
        if not any(c.strip() for c in row):
            continue
        if header is None:
            header = [strip_invisible(c).strip() for c in row]
            continue
        yield f"line {start}", {h: row[i] if i < len(row) else None for i, h in enumerate(header)}


def _keys(obj: dict) -> dict:
    return {strip_invisible(str(k)).strip(): v for k, v in obj.items()}


def cell(record: dict, column: str):
    """The value of `column` in a record (exact name, else ignoring case), or None when absent."""
    if column in record:
        return record[column]
    low = column.lower()
    return next((v for k, v in record.items() if k.lower() == low), None)


def has_column(record: dict, column: str) -> bool:
    return column in record or column.lower() in {k.lower() for k in record}


def read_labelled(path: str | Path, text_column: str = "text", label_column: str | None = "label",
                  *, need_labels: bool = True) -> tuple[list[str], list[str] | None]:
    """Texts and labels (as strings: `1` in JSONL -> "1"). Rows whose text, or label when labels are
    read, is empty are skipped. With `need_labels=False` a file without the label column gives
    `(texts, None)`.

    Example: a CSV `text,category\\r\\n"Hi,\\nthere",greeting\\r\\n` with label_column "category"
      -> (["Hi,\\nthere"], ["greeting"])
    """
    rows = list(records(path))
    columns = list(rows[0][1]) if rows else []
    if not rows or not has_column(rows[0][1], text_column):
        raise IngestError(path, None, f"no column {text_column!r} (columns: {', '.join(columns) or 'none'}): "
                                      "pass --text-column NAME")
    with_labels = label_column is not None and has_column(rows[0][1], label_column)
    if need_labels and not with_labels:
        raise IngestError(path, None, f"no column {label_column!r} (columns: {', '.join(columns)}): "
                                      "pass --label-column NAME")
    texts, labels = [], []
    for _, row in rows:
        text = cell(row, text_column)
        text = "" if text is None else str(text)
        label = cell(row, label_column) if with_labels else None
        label = "" if label is None else str(label).strip()
        if not text.strip() or (with_labels and not label):
            continue
        texts.append(text)
        labels.append(label)
    if not texts:
        raise IngestError(path, None, f"no rows with a text{' and a label' if with_labels else ''}")
    return texts, labels if with_labels else None


def read_pairs(path: str | Path) -> list[tuple[str, ...]]:
    """Rows of (anchor, positive) or (anchor, positive, negative), by those column names.

      anchor,positive            -> [("how are you?", "good hbu"), ...]
      {"anchor": "a", "positive": "p", "negative": "n"} -> [("a", "p", "n")]
    """
    rows = list(records(path))
    if not rows:
        raise IngestError(path, None, "no rows: write a header line anchor,positive[,negative] and one row per example")
    cols = ("anchor", "positive", "negative") if has_column(rows[0][1], "negative") else ("anchor", "positive")
    out = []
    for where, row in rows:
        values = [str(cell(row, c) or "").strip() for c in cols]
        if not all(values):
            raise IngestError(path, where, f"a row needs {', '.join(cols)}, each non-empty (a header line in CSV)")
        out.append(tuple(values))
    return out
