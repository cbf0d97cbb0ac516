"""Style and authorship: text messages by session -> triplets (the embedder), texts labelled by their
author (the likeness score, `--label-by author` classifier)."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from likeme.data.examples import check_person
from likeme.errors import LikemeError


@dataclass(frozen=True)
class Msg:
    """One text message, as the triplet builder sees it."""

    id: int
    author: str
    text: str


@dataclass
class Session:
    conversation: str
    start: str  # ISO time of its first message: the order of the time split
    messages: list[Msg]


def store_sessions(store, name: str, *, gap=None, min_chars: int = 3) -> list[Session]:
    """The sessions NAME writes in, oldest first, with their text messages of at least `min_chars`
    characters (media, system notices and "ok" left out)."""
    from likeme.data.store import DEFAULT_SESSION_GAP

    check_person(store, name)
    out = []
    for raw in store.sessions(gap=gap or DEFAULT_SESSION_GAP):
        msgs = [Msg(m.id, m.author, m.text.strip()) for m in raw
                if m.kind == "text" and m.author and len(m.text.strip()) >= min_chars]
        if any(m.author == name for m in msgs):
            out.append(Session(raw[0].conversation, raw[0].sent_at, msgs))
    out.sort(key=lambda s: s.start)
    return out


def authorship_triplets(sessions: list[Session], name: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """One (anchor, positive, negative) per message of NAME that has both a positive and a negative.

    Example (NAME="Ana"): sessions [Sam "what now?", Ana "pizza obv"] and [Bo "again?", Ana "always lol"]
      -> [("pizza obv", "always lol", "what now?"), ("always lol", "pizza obv", "again?")]
    The positive comes from another session of NAME when there is one; the negative from someone else
    in the anchor's session, else in its conversation; anchors with neither are skipped.
    """
    mine = [(i, m.text) for i, s in enumerate(sessions) for m in s.messages if m.author == name]
    by_conv: dict[str, list[str]] = {}
    for s in sessions:
        by_conv.setdefault(s.conversation, []).extend(m.text for m in s.messages if m.author != name)
    out = []
    for i, s in enumerate(sessions):
        others = [m.text for m in s.messages if m.author != name] or by_conv[s.conversation]
        for m in s.messages:
            if m.author != name or not others:
                continue
            positive = _pick_positive(mine, i, m.text, rng)
            if positive is not None:
                out.append((m.text, positive, rng.choice(others)))
    return out


def _pick_positive(mine: list[tuple[int, str]], session: int, text: str, rng: random.Random) -> str | None:
    for _ in range(8):  # rejection sampling: a different session is almost always found at once
        j, cand = rng.choice(mine)
        if j != session and cand != text:
            return cand
    rest = [t for _, t in mine if t != text]  # NAME speaks in one session only, or repeats themself
    return rng.choice(rest) if rest else None


def labelled_messages(sessions: list[Session], name: str) -> tuple[list[str], list[int]]:
    """Texts and labels (1: NAME wrote it, 0: someone else did), for the likeness score."""
    texts = [m.text for s in sessions for m in s.messages]
    labels = [int(m.author == name) for s in sessions for m in s.messages]
    return texts, labels


def author_examples(store, min_messages: int = 10) -> tuple[list[str], list[str]]:
    """Every text message in the store labelled with its author, for people with >= min_messages.

    Example: Ana 30 messages, Sam 25, Bo 3, min_messages=10 -> 55 texts labelled "Ana" or "Sam".
    """
    rows = [(m.text, m.author) for m in store.messages(kinds=("text",)) if m.author and m.text.strip()]
    counts = Counter(a for _, a in rows)
    keep = {a for a, n in counts.items() if n >= min_messages}
    if len(keep) < 2:
        have = ", ".join(f"{a} {n}" for a, n in counts.most_common(5)) or "no text messages"
        raise LikemeError(f"--label-by author needs two people with at least {min_messages} text messages "
                          f"(the store has: {have}): ingest more chats or lower --min-messages")
    rows = [(t, a) for t, a in rows if a in keep]
    return [t for t, _ in rows], [a for _, a in rows]
