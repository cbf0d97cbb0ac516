"""Where the studio may read and write: the allowed places, run folders by name, uploads of bounded size.

    places = Places(allow=["~/exports"])          # + $LIKEME_HOME and the home folder
    places.check("/etc/passwd")                    # ApiError 403: outside the allowed places
    places.run("ana-voice")                        # $LIKEME_HOME/runs/ana-voice (404 when absent)
"""
from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from likeme.paths import home, runs_dir
from likeme.serve.errors import ApiError

RUN_FILES = ("plots/", "export/", "report.html", "report.json", "metrics.json", "provenance.json", "run.yaml")


class Places:
    """The folders whose files the page may name: $LIKEME_HOME, the user's home folder, and `allow`."""

    def __init__(self, allow=()):
        self.roots = [Path(p).expanduser().resolve() for p in (home(), Path.home(), *allow)]

    def check(self, path: str | Path) -> Path:
        """The path, resolved, when it lies inside an allowed place; else a 403 that says what to do."""
        p = Path(str(path).strip()).expanduser()
        if not str(path).strip() or not p.is_absolute():
            raise ApiError(400, f"{path!r}: give the full path of a file or folder on this machine", param="path")
        p = p.resolve()
        if not any(p == r or p.is_relative_to(r) for r in self.roots):
            raise ApiError(403, f"{path} is outside the places this studio may read ({', '.join(map(str, self.roots))}): "
                                "copy it there, or start the studio with --allow FOLDER", param="path",
                           code="outside_allowed_places")
        return p

    def value(self, text: str) -> str:
        """A setting's value: one that names an existing file or folder must lie in an allowed place
        (a model name such as smollm2-135m or a Hugging Face id passes as it is)."""
        p = Path(text).expanduser()
        if p.is_absolute() or p.exists():
            return str(self.check(p.absolute()))
        return text

    @staticmethod
    def run(name: str, must_exist: bool = True) -> Path:
        """The run folder `name` under $LIKEME_HOME/runs: a plain folder name, nothing above it."""
        if not re.fullmatch(r"[\w][\w.-]{0,99}", name or "") or ".." in name:
            raise ApiError(400, f"{name!r} is not a run name (letters, digits, '.', '-', '_')", param="run")
        path = runs_dir() / name
        if must_exist and not (path / "run.yaml").is_file():
            raise ApiError(404, f"no run {name!r} in {runs_dir()}", param="run", code="run_not_found")
        return path

    def run_file(self, name: str, rel: str) -> Path:
        """A file of a run the page may show or offer for download: plots, exports, the report, the cards."""
        run = self.run(name)
        f = (run / rel).resolve()
        if not f.is_relative_to(run.resolve()) or not any(rel == p or (p.endswith("/") and rel.startswith(p))
                                                          for p in RUN_FILES):
            raise ApiError(403, f"{rel} is not a file the studio shows", param="path")
        if not f.is_file():
            raise ApiError(404, f"{name} has no {rel}", param="path")
        return f


def upload_dir() -> Path:
    return home() / "uploads"


async def receive_upload(request, filename: str, max_bytes: int) -> Path:
    """The request's body, written to $LIKEME_HOME/uploads/<id>/<filename> as it arrives; a body over
    `max_bytes` is a 413 and leaves nothing behind."""
    name = re.sub(r"[^\w. ()-]+", "_", Path(filename or "").name).strip(" .")
    if not name:
        raise ApiError(400, "name the uploaded file: ?name=FILE", param="name")
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > max_bytes):
        raise ApiError(413, f"{name} is over the upload limit of {max_bytes // 2**20} MB (likeme studio "
                            "--max-upload-mb); give its path instead", code="upload_too_large")
    folder = upload_dir() / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    target, seen = folder / name, 0
    try:
        with open(target, "wb") as f:
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > max_bytes:
                    raise ApiError(413, f"{name} is over the upload limit of {max_bytes // 2**20} MB", code="upload_too_large")
                f.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if seen == 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise ApiError(400, f"{name} is empty", param="name")
    return target
