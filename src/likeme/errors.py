"""likeme's own errors. The CLI prints any of these as one line and exits 1; anything else is a bug."""
from __future__ import annotations


class LikemeError(Exception):
    """Base class: a message for the user that says what went wrong and what to do."""


class IngestError(LikemeError):
    """A user's file could not be read. Names the file and, where known, the place in it.

    Example: IngestError("chat.json", "line 3, column 7", "invalid JSON: Expecting ','")
      -> "chat.json: line 3, column 7: invalid JSON: Expecting ','"
    """

    def __init__(self, path, where: str | None, what: str):
        self.path, self.where, self.what = str(path), where, what
        super().__init__(": ".join(p for p in (self.path, where, what) if p))


class UnknownFormatError(IngestError):
    """No registered format recognised the input."""
