import pytest

from likeme.data.scrub import scrub


@pytest.mark.parametrize("text, expected", [
    ("mail ana.b+x@example.co.uk now", "mail <EMAIL> now"),
    ("see https://example.org/a?b=1.", "see <URL>."),
    ("www.example.com/path is up", "<URL> is up"),
    ("call +44 7700 900123", "call <PHONE>"),
    ("call (555) 123-4567 today", "call <PHONE> today"),
    ("ring 0612345678", "ring <PHONE>"),
    ("card 4111 1111 1111 1111 ok", "card <CARD> ok"),
    ("iban DE89 3704 0044 0532 0130 00 thx", "iban <IBAN> thx"),
    ("iban GB82WEST12345698765432", "iban <IBAN>"),
])
def test_scrubbed(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    "meet at 10:30 on 12/03/2024",
    "it costs 1299 euros",
    "born in 1987, moved in 2015",
    "score was 3-2",
    "",
])
def test_left_alone(text):
    assert scrub(text) == text
