"""The figures of style.py on literal inputs, each against a hand computation."""

import math

import pytest

from likeme.check import style


def test_words():
    assert style.words("Haha, I'm OK 😂!") == ["haha", "i'm", "ok", "😂"]


def test_distinct_worked_example():
    assert style.distinct([["ok", "ok"], ["ok", "sure"]], 1) == 0.5  # {ok, sure} of 4 words
    assert style.distinct([["ok", "ok"], ["ok", "sure"]], 2) == 1.0  # (ok, ok), (ok, sure)
    assert math.isnan(style.distinct([["ok"]], 2))  # no pair at all


def test_entropy():
    assert style.entropy([["a", "a"], ["b", "c"]]) == pytest.approx(1.5)  # p = 1/2, 1/4, 1/4
    assert style.entropy([["a", "a", "a"]]) == 0.0


def test_loops():
    assert style.loops("i love you i love you i love you".split())
    assert style.loops("no no no".split())
    assert not style.loops("ha ha".split()) and not style.loops("see you at the cafe then".split())


def test_burrows_delta_worked_example():
    a = style.profile([["the", "cat", "the", "a"]], ["the", "a"])  # the 2/4, a 1/4
    b = style.profile([["a", "dog"]], ["the", "a"])  # the 0, a 1/2
    assert a == {"the": 0.5, "a": 0.25} and b == {"the": 0.0, "a": 0.5}
    sigma = style.spread([a, b])  # population sd of two values: half their distance
    assert sigma == {"the": 0.25, "a": 0.125}
    # (|0.5 - 0| / 0.25 + |0.25 - 0.5| / 0.125) / 2 = (2 + 2) / 2
    assert style.burrows_delta(a, b, sigma) == pytest.approx(2.0)
    assert style.burrows_delta(a, a, sigma) == 0.0
    assert style.burrows_delta(a, b, {"the": 0.25, "a": 0.0}) == pytest.approx(2.0)  # sd 0: skipped


def test_verbatim_worked_example():
    v = style.verbatim(["i will call you at noon ok"], ["call you at noon"], n=3)
    # 5 generated 3-grams; "call you at" and "you at noon" are in training
    assert v == style.Verbatim(share=0.4, longest=4, example="call you at noon")
    v = style.verbatim(["my number is 555 0134 call me"], ["the number is 555 0134", "call me maybe"], n=8)
    assert v.share == 0.0 and (v.longest, v.example) == (4, "number is 555 0134")  # no 8-gram: the longest run


def test_habits():
    h = style.habits(["haha ok u?", "Fine."])
    assert h == {"words": 2.0, "chars": 7.5, "emoji": 0.0, "question": 0.5, "exclamation": 0.0, "ellipsis": 0.0,
                 "laughter": 0.5, "abbreviation": 0.5, "capitalised": 0.5, "all_lowercase": 0.5}
    assert style.habits(["lol 😂...", "omg!!"])["emoji"] == 0.5


def test_exposure():
    assert style.exposure(1, 1024) == 10.0 and style.exposure(512, 1024) == 1.0 and style.exposure(1024, 1024) == 0.0
