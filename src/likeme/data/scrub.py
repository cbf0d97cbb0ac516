"""`--scrub`: take contact details and payment numbers out of text before it is stored.

    >>> scrub("mail me at ana@example.org or +44 7700 900123, see https://x.io/a?b=1")
    'mail me at <EMAIL> or <PHONE>, see <URL>'
"""
from __future__ import annotations

import re

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
