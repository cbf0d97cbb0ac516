"""The format-independent part of ingestion: encodings, detection, zips, folders, plug-ins."""
import codecs
import sys
import zipfile
from datetime import datetime

import pytest

from likeme.data.ingest import Message, formats, parse
from likeme.data.ingest._io import clean_name, decode, fix_mojibake, load_json
from likeme.errors import IngestError, UnknownFormatError


@pytest.mark.parametrize("raw, text", [
    ("héllo 👋".encode("utf-8"), "héllo 👋"),
    (codecs.BOM_UTF8 + "héllo".encode("utf-8"), "héllo"),
    ("héllo 👋".encode("utf-16"), "héllo 👋"),                       # with BOM
    ("héllo 👋 there".encode("utf-16-le"), "héllo 👋 there"),          # no BOM
    ("Café ☕ 👍".encode("utf-8").decode("latin-1").encode("utf-8"), "Café ☕ 👍"),  # mojibake
    ("Привет".encode("utf-8").decode("cp1252", "replace").encode("utf-8"), None),
])
def test_decode(raw, text):
    out = decode(raw, "f.txt")
    if text is not None:
        assert out == text
    else:
        assert isinstance(out, str)


def test_decode_unknown_encoding_is_a_clear_error():
    with pytest.raises(IngestError, match=r"f.txt: byte 1: not UTF-8 text; .*iconv"):
        decode("né".encode("cp1252") + b"\x81", "f.txt")


@pytest.mark.parametrize("s, fixed", [
    ("Ã©tÃ© ðŸ˜€", "été 😀"),
    ("Ð\x9fÑ\x80Ð¸Ð²ÐµÑ\x82", "Привет"),
    ("été", "été"),                    # already right
    ("Straße\u00a0and more", "Straße\u00a0and more"),  # ß + NBSP is also valid UTF-8 bytes; keep it
    ("plain ascii", "plain ascii"),
])
def test_fix_mojibake(s, fixed):
    assert fix_mojibake(s) == fixed


def test_clean_name():
    assert clean_name("\u202a+40\u00a0521\u00a0028\u202c") == "+40 521 028"
    assert clean_name("\u200eAna\u202fB ") == "Ana B"


def test_load_json_error_has_line_and_column(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(IngestError, match=r"bad.json: line 4, column 1: invalid JSON"):
        load_json(p)


def test_missing_file(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        list(parse(tmp_path / "nope.txt"))


def test_unknown_format_names_the_formats_tried(tmp_path):
    p = tmp_path / "notes.bin"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnknownFormatError) as e:
        list(parse(p))
    msg = str(e.value)
    assert "notes.bin" in msg and "--format" in msg
    assert all(name in msg for name in formats())


def test_unknown_format_name(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x")
    with pytest.raises(UnknownFormatError, match="unknown format 'snapchat'; choose one of: .*whatsapp"):
        list(parse(p, format="snapchat"))


def test_corrupt_zip(tmp_path):
    p = tmp_path / "export.zip"
    buf = tmp_path / "ok.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("_chat.txt", "[1/2/23, 10:00:00] Ana: hi\n" * 50)
    data = bytearray(buf.read_bytes())
    data[60:70] = b"\xff" * 10  # inside the compressed member
    p.write_bytes(bytes(data))
    with pytest.raises(IngestError, match="export.zip"):
        list(parse(p))


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    with pytest.raises(UnknownFormatError, match="no chat export found in this folder"):
        list(parse(tmp_path))


# -- plug-ins: a third-party format registers through the same entry-point group --------------
PLUGIN = '''
from datetime import datetime
from pathlib import Path
from likeme.data.ingest import Message
NAME = "shout"
DESCRIPTION = "one SHOUT line per message"
PRIORITY = 10
def sniff(path):
    return Path(path).is_file() and Path(path).read_bytes().startswith(b"SHOUT ")
def parse(path, **_):
    for i, line in enumerate(Path(path).read_text().splitlines()):
        who, _, text = line[6:].partition(" ")
        yield Message("shout", Path(path).stem, who, datetime(2024, 1, 1, 0, i), text)
'''


def test_third_party_format_plugin(tmp_path, monkeypatch):
    (tmp_path / "likeme_shout.py").write_text(PLUGIN)
    dist = tmp_path / "likeme_shout-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: likeme-shout\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[likeme.formats]\nshout = likeme_shout\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "shout" in formats() and "whatsapp" in formats()
    chat = tmp_path / "room.txt"
    chat.write_text("SHOUT ana hello there\nSHOUT ben hi\n")
    msgs = list(parse(chat))
    assert msgs == [Message("shout", "room", "ana", datetime(2024, 1, 1, 0, 0), "hello there"),
                    Message("shout", "room", "ben", datetime(2024, 1, 1, 0, 1), "hi")]
    monkeypatch.delitem(sys.modules, "likeme_shout", raising=False)
