"""How a set of messages is written, as numbers: the figures of `likeme report` and `likeme eval`.

    >>> distinct([["ok", "ok"], ["ok", "sure"]], 1)
    0.5
    >>> burrows_delta({"the": 0.1, "a": 0.0}, {"the": 0.0, "a": 0.0}, {"the": 0.05, "a": 0.1})
    1.0
    >>> verbatim(["i will call you at noon ok"], ["call you at noon"], n=3)
    Verbatim(share=0.4, longest=4, example='call you at noon')

Pure Python on word lists: no model, no training code. Words are `words(text)`: lower-cased runs of
letters, digits and apostrophes, each emoji a word of its own.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

_WORD = re.compile(r"[\w']+|[\U0001F000-\U0001FAFF\u2600-\u27BF]", re.UNICODE)
_EMOJI = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF]")
_LAUGH = re.compile(r"\b(?:a*(?:ha){2,}h?|(?:he){2,}|(?:hi){2,}|lol+|lmao+|rofl|jaja(?:ja)*|kkk+|xd+)\b|😂|🤣", re.I)
ABBREVIATIONS = {"u", "ur", "r", "pls", "plz", "thx", "ty", "idk", "omg", "btw", "tbh", "rn", "imo", "ngl", "brb",
                 "gonna", "wanna", "gotta", "ya", "k", "kk", "cya", "np", "smh", "fr", "nvm", "lmk", "ikr"}
# Burrows (2002) used the most frequent words of the corpus; a fixed list of English function words keeps
# profiles of a few hundred short messages comparable (the 60 most frequent in the Brown corpus).
FUNCTION_WORDS = ("the of and to a in that is was he for it with as his on be at by i this had not are but from "
                  "or have an they which one you were her all she there would their we him been has when who will "
                  "more no if out so said what up its about into than them can only other new some could time "
                  "these two may then do first any my now such like our over man me even most made after also "
                  "did many before must through back years where much your way well down should because each just "
                  "those people how too little state good very make world still own see men work long get here "
                  "between both life being under never day same another know while last might us great old year "
                  "off come since against go came right used take three").split()[:100]


def words(text: str) -> list[str]:
    """Example: words("Haha, I'm OK 😂") -> ["haha", "i'm", "ok", "😂"]"""
    return [w.lower() for w in _WORD.findall(text)]


def distinct(token_lists: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams over all n-grams of all the texts (Li et al. 2016, "A Diversity-Promoting Objective").

    Example: distinct([["ok", "ok"], ["ok", "sure"]], 1) -> 2 / 4 = 0.5; the same with n=2 -> 2 / 2 = 1.0
    """
    grams = [tuple(t[i: i + n]) for t in token_lists for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def entropy(token_lists: Sequence[Sequence[str]]) -> float:
    """Shannon entropy (bits) of the words' frequencies over all the texts: lower is a narrower vocabulary.

    Example: entropy([["a", "a"], ["b", "c"]]) -> -(1/2 log2 1/2 + 2 * 1/4 log2 1/4) = 1.5
    """
    counts = Counter(w for t in token_lists for w in t)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else float("nan")


def loops(tokens: Sequence[str], max_n: int = 4, repeats: int = 3) -> bool:
    """Does the text repeat one n-gram (n <= max_n) `repeats` times in a row, as a degenerate model does?

    Example: loops("i love you i love you i love you".split()) -> True; loops("ha ha".split()) -> False
    """
    for n in range(1, max_n + 1):
        for i in range(len(tokens) - n * repeats + 1):
            gram = tokens[i: i + n]
            if all(tokens[i + k * n: i + (k + 1) * n] == gram for k in range(1, repeats)):
                return True
    return False


def burrows_delta(a: dict[str, float], b: dict[str, float], sigma: dict[str, float]) -> float:
    """Burrows' Delta (2002) of two function-word profiles (relative frequencies): the mean over the words
    of |z_a - z_b|, z-scores taken with the corpus' standard deviation per word (the corpus mean cancels
    out). 0: the same habits; about 1 and more: a different writer. Words whose sigma is 0 are skipped.

    Example: burrows_delta({"the": 0.1, "a": 0.0}, {"the": 0.0, "a": 0.0}, {"the": 0.05, "a": 0.1})
      -> (|0.1 - 0.0| / 0.05 + |0 - 0| / 0.1) / 2 = 1.0
    """
    used = [w for w, s in sigma.items() if s > 0]
    return sum(abs(a.get(w, 0.0) - b.get(w, 0.0)) / sigma[w] for w in used) / len(used) if used else float("nan")


def profile(token_lists: Iterable[Sequence[str]], vocabulary: Sequence[str] = FUNCTION_WORDS) -> dict[str, float]:
    """Relative frequency of each word of `vocabulary` among all the words of the texts.

    Example: profile([["the", "cat"], ["the"]], ["the", "a"]) -> {"the": 2/3, "a": 0.0}
    """
    counts, total = Counter(), 0
    for t in token_lists:
        counts.update(t)
        total += len(t)
    return {w: counts[w] / total if total else 0.0 for w in vocabulary}


def spread(profiles: Sequence[dict[str, float]]) -> dict[str, float]:
    """The standard deviation of each word's frequency across profiles (the corpus of Burrows' z-scores;
    population sd, as Burrows)."""
    out = {}
    for w in profiles[0] if profiles else ():
        xs = [p[w] for p in profiles]
        mean = sum(xs) / len(xs)
        out[w] = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
    return out


@dataclass(frozen=True)
class Verbatim:
    share: float   # generated n-grams found word for word in the training texts / all generated n-grams
    longest: int   # the longest run of words of one generated text found word for word in one training text
    example: str   # that run


def verbatim(generated: Sequence[str], training: Sequence[str], n: int = 8) -> Verbatim:
    """How much of the generated text is copied from the training texts: memorisation (Carlini et al. 2021
    count 50-token runs; short chat messages need shorter ones: n = 8 words).

    Example: verbatim(["i will call you at noon ok"], ["call you at noon"], n=3)
      -> generated 3-grams: 5, of which "call you at", "you at noon" are in training: share 0.4;
         longest run "call you at noon": 4 words
    """
    gen = [words(t) for t in generated]
    train = [words(t) for t in training]
    index: dict[tuple, list[tuple[int, int]]] = {}  # training n-gram -> where it starts (doc, position)
    for d, t in enumerate(train):
        for i in range(len(t) - n + 1):
            index.setdefault(tuple(t[i: i + n]), []).append((d, i))
    total = hits = best = 0
    example = ""
    for t in gen:
        for i in range(len(t) - n + 1):
            total += 1
            places = index.get(tuple(t[i: i + n]))
            if not places:
                continue
            hits += 1
            for d, p in places[:50]:  # extend the match word by word (50 places: enough for the longest)
                length = n
                while i + length < len(t) and p + length < len(train[d]) and t[i + length] == train[d][p + length]:
                    length += 1
                if length > best:
                    best, example = length, " ".join(t[i: i + length])
    for k in range(n - 1, 0, -1) if not best else ():  # no n-gram copied: the longest shorter run
        grams = {tuple(t[i: i + k]) for t in train for i in range(len(t) - k + 1)}
        found = next((g for t in gen for g in (tuple(t[i: i + k]) for i in range(len(t) - k + 1)) if g in grams), None)
        if found:
            best, example = k, " ".join(found)
            break
    return Verbatim(share=hits / total if total else 0.0, longest=best, example=example)


def habits(texts: Sequence[str]) -> dict[str, float]:
    """Per-message writing habits: mean words and characters, and the share of messages with an emoji, a
    question mark, an exclamation mark, an ellipsis, laughter (haha, lol, 😂, ...), an abbreviation
    (u, idk, btw, ...), a capital first letter, and no capital at all.

    Example: habits(["haha ok u?", "Fine."]) -> {"words": 2.0, "chars": 8.0, "emoji": 0.0, "question": 0.5,
      "exclamation": 0.0, "ellipsis": 0.0, "laughter": 0.5, "abbreviation": 0.5, "capitalised": 0.5,
      "all_lowercase": 0.5}
    """
    n = len(texts) or 1
    ws = [words(t) for t in texts]

    def share(pred) -> float:
        return sum(1 for t in texts if pred(t)) / n

    return {
        "words": sum(map(len, ws)) / n, "chars": sum(map(len, texts)) / n,
        "emoji": share(lambda t: _EMOJI.search(t) is not None), "question": share(lambda t: "?" in t),
        "exclamation": share(lambda t: "!" in t), "ellipsis": share(lambda t: "..." in t or "…" in t),
        "laughter": share(lambda t: _LAUGH.search(t) is not None),
        "abbreviation": sum(1 for w in ws if ABBREVIATIONS & set(w)) / n,
        "capitalised": share(lambda t: t.strip()[:1].isupper()),
        "all_lowercase": share(lambda t: any(c.isalpha() for c in t) and t == t.lower()),
    }


def exposure(rank: int, candidates: int) -> float:
    """A canary's exposure in bits (Carlini et al. 2019, "The Secret Sharer"): log2 |R| - log2 rank, where
    rank is the true secret's place (1 = most likely) among `candidates` random secrets of the same shape
    (itself included) ordered by the model's perplexity. log2 |R|: the model gives the secret away.

    Example: exposure(1, 1024) -> 10.0; exposure(512, 1024) -> 1.0
    """
    return math.log2(candidates) - math.log2(rank)
