"""`--scrub`: take contact details, payment numbers, people's names, places and your own words out of text
before it is stored.

    >>> scrub("mail me at ana@example.org or +44 7700 900123, see https://x.io/a?b=1")
    'mail me at <EMAIL> or <PHONE>, see <URL>'
    >>> Scrubber({"names", "blocklist"}, ["Acme"]).texts(["Tom works at acme", "ask Tom", "hi Ana"], ["Ana"])
    ['<PERSON_1> works at <BLOCKED>', 'ask <PERSON_1>', 'hi Ana']

`--scrub patterns` (a bare `--scrub`) is `scrub` below; `names` is `names.py` (Presidio and spaCy, the
`names` extra); `--blocklist FILE` replaces the words and phrases listed in FILE. The store records which
were applied to each export (`Store.add_messages(scrub=...)`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

from likeme.errors import LikemeError

LEVELS = {"patterns": frozenset({"patterns"}), "names": frozenset({"names"}), "all": frozenset({"patterns", "names"})}
KINDS = ("patterns", "names", "blocklist")  # in the order they are applied, and written in the store

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", re.IGNORECASE)
# IBAN: two letters, two check digits, then 11-30 letters/digits, often in groups of four.
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
# Card numbers: 13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check.
_CARD = re.compile(r"(?<![\d+])\d(?:[ -]?\d){12,18}(?!\d)")
# Phone numbers: an optional +country code, then 7-15 digits with spaces, dots, dashes or brackets.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d{1,4}\)?(?:[ .\-/]?\(?\d{1,5}\)?){2,6}(?![\w])")


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(m: re.Match) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return "<CARD>" if _luhn(digits) else m.group(0)


def _phone(m: re.Match) -> str:
    s = m.group(0)
    digits = re.sub(r"\D", "", s)
    # Years, times, prices and dates are digit runs too: a phone number has 7-15 digits and,
    # unless it starts with + or 00, some separator-free run of at least 3 digits.
    if not 7 <= len(digits) <= 15:
        return s
    if re.fullmatch(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}", s.strip()):  # a date: 12/03/2024
        return s
    return "<PHONE>"


def scrub(text: str) -> str:
    """Replace e-mail addresses, URLs, IBANs, card numbers (Luhn-checked) and phone numbers with
    `<EMAIL>`, `<URL>`, `<IBAN>`, `<CARD>`, `<PHONE>`. URLs go first so that digits in them are not
    read as phone numbers; cards before phones for the same reason."""
    if not text:
        return text
    text = _EMAIL.sub("<EMAIL>", text)
    text = _URL.sub("<URL>", text)
    text = _IBAN.sub("<IBAN>", text)
    text = _CARD.sub(_card, text)
    text = _PHONE.sub(_phone, text)
    return text


def find(text: str) -> list[tuple[str, str]]:
    """What `scrub` would replace, as (kind, the text found), in the order scrub looks.

    Example: find("call 07700 900123 or ana@example.org") -> [("EMAIL", "ana@example.org"), ("PHONE", "07700 900123")]
    """
    found = []
    for kind, pattern, keep in (("EMAIL", _EMAIL, None), ("URL", _URL, None), ("IBAN", _IBAN, None),
                                ("CARD", _CARD, _card), ("PHONE", _PHONE, _phone)):
        def note(m, kind=kind, keep=keep):
            if keep is not None and keep(m) == m.group(0):  # not one after all (a failed Luhn check, a date)
                return m.group(0)
            found.append((kind, m.group(0)))
            return f"<{kind}>"
        text = pattern.sub(note, text)
    return found


def read_blocklist(path) -> list[str]:
    """The words and phrases of a blocklist file: one a line, blank lines and `#` comments left out.

    Example: a file "Acme Corp\n# work\nhunter2\n" -> ["Acme Corp", "hunter2"]"""
    path = Path(path)
    try:
        lines = path.read_text("utf-8-sig").splitlines()
    except FileNotFoundError:
        raise LikemeError(f"{path}: no such blocklist file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LikemeError(f"{path}: cannot read the blocklist ({getattr(e, 'strerror', None) or e})") from None
    words = [w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")]
    if not words:
        raise LikemeError(f"{path}: the blocklist is empty (one word or phrase a line)")
    return words


def blocklist_pattern(words: Iterable[str]) -> re.Pattern:
    """One case-insensitive pattern for whole words and phrases, longest first (a phrase before a word of
    it), any run of spaces inside a phrase matching any other.

    Example: blocklist_pattern(["acme", "Acme Corp"]).sub("<BLOCKED>", "ACME  corp and acmeville")
      -> "<BLOCKED> and acmeville" """
    alts = [r"\s+".join(map(re.escape, w.split())) for w in sorted(set(words), key=len, reverse=True) if w.split()]
    return re.compile(r"(?<!\w)(?:%s)(?!\w)" % "|".join(alts), re.IGNORECASE)


class Scrubber:
    """Everything one ingest scrubs: `kinds` of KINDS and, for "blocklist", its words. One Scrubber per
    export: its people's placeholders are numbered in the order they first appear in it (`<PERSON_1>`,
    `<PERSON_2>`, ...; the same name, in any case, the same number), so a voice still sees that the same
    friend comes back. The names themselves are kept nowhere."""

    def __init__(self, kinds: Iterable[str], blocklist: Iterable[str] = ()):
        self.kinds = frozenset(kinds)
        unknown = self.kinds - set(KINDS)
        if unknown:
            raise LikemeError(f"unknown scrub {', '.join(sorted(unknown))}: choose from {', '.join(KINDS)}")
        words = list(blocklist)
        if "blocklist" in self.kinds and not words:
            raise LikemeError("a blocklist scrub needs words: --blocklist FILE")
        self.words = words
        self.blocked = blocklist_pattern(words) if words else None
        if "names" in self.kinds:
            from likeme.data import names
            names.require()
        self.people: dict[str, int] = {}
        self.vocabulary: set[str] | None = None  # names.name_like of the whole export (`learn`)

    def learn(self, texts: Iterable[str]) -> None:
        """Read the whole export once before scrubbing it in parts: which words it writes like names."""
        if "names" in self.kinds:
            from likeme.data import names
            self.vocabulary = names.name_like(texts)

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def texts(self, texts: list[str], participants: Iterable[str] = ()) -> list[str]:
        """`texts` scrubbed: the blocklist first (its words never reach the name finder), then the
        patterns, then names and places (participants' own names kept)."""
        texts = list(texts)
        if self.blocked is not None:
            texts = [self.blocked.sub("<BLOCKED>", t) if t else t for t in texts]
        if "patterns" in self.kinds:
            texts = [scrub(t) for t in texts]
        if "names" in self.kinds:
            from likeme.data import names
            found = names.find(texts, participants, vocabulary=self.vocabulary)
            texts = [self._replace(t, spans) for t, spans in zip(texts, found)]
        return texts

    def _replace(self, text: str, spans) -> str:
        out, at = [], 0
        for s in spans:
            if s.kind == "PERSON":
                n = self.people.setdefault(" ".join(s.text.casefold().split()), len(self.people) + 1)
                label = f"<PERSON_{n}>"
            else:
                label = "<PLACE>"
            out += [text[at:s.start], label]
            at = s.end
        return "".join(out) + text[at:]


def scrubber_for(scrub, blocklist: Iterable[str] = ()) -> "Scrubber":
    """A Scrubber from what `Store.add_messages` accepts. Example: (True, ["acme"]) -> patterns and blocklist"""
    if isinstance(scrub, Scrubber):
        return scrub
    words = list(blocklist)
    kinds = LEVELS["patterns"] if scrub is True else LEVELS.get(scrub, scrub) if isinstance(scrub, str) else scrub
    if isinstance(scrub, str) and scrub not in LEVELS:
        raise LikemeError(f"unknown --scrub {scrub!r}: choose from {', '.join(LEVELS)}")
    return Scrubber(set(kinds or ()) | ({"blocklist"} if words else set()), words)


SCRUB_CHUNK = 5000  # messages scrubbed at a time: names are read in batches, the store written as it goes


def scrubbed(messages: Iterable, scrubber: Scrubber) -> Iterator[tuple]:
    """(message, the text to store). With something to scrub, the export is read whole first: its authors
    are the participants whose names are kept."""
    if not scrubber:
        yield from ((m, m.text) for m in messages)
        return
    messages = list(messages)
    participants = {m.author for m in messages if m.author}
    scrubber.learn(m.text for m in messages)
    for i in range(0, len(messages), SCRUB_CHUNK):
        chunk = messages[i:i + SCRUB_CHUNK]
        yield from zip(chunk, scrubber.texts([m.text for m in chunk], participants))


def kinds_of(recorded: str | None) -> frozenset:
    """What the store's `sources.scrub` column says was scrubbed. Example: "patterns,names" -> {"patterns", "names"}"""
    return frozenset(k for k in (recorded or "").split(",") if k)


def record(kinds: Iterable[str]) -> str:
    """The column's text for `kinds`, in KINDS order. Example: {"names", "patterns"} -> "patterns,names" """
    kinds = set(kinds)
    return ",".join(k for k in KINDS if k in kinds)
