"""Everyone's turns, each in a speaker's slot: learn from everyone, speak as one; score anyone as anyone.

A person's **slot** is the persona prompt that names them (`prompts.system_prompt`: "You are Ana. Write
Ana's next message ..."), with their turns as the assistant's and everyone else's as the user's. A voice
speaks as NAME in NAME's slot. Here:

- `everyone_dataset`: every speaker's turns of NAME's training sessions, each in its own speaker's slot
  (`--learn-from everyone`): the model learns the medium from all of them and the person from the
  contrast; NAME's held-out replies (NAME's slot) measure it, as for a voice trained on NAME alone;
- `by_person`: the turns of each person in some sessions, as `Reply`s; `in_slot` renders any person's
  turn in any slot ("what if Ana had said this here?"): what specificity, attribution and the
  likelihood-ratio judge score (`check.likeness`, `use.likelihood`).

    >>> data = everyone_dataset(store, "Gloucester", tok)       # VoiceData, data.speakers {name: examples}
    >>> found = by_person(held_sessions, context_turns=8)       # {"Gloucester": [Reply, ...], "Buckingham": [...]}
    >>> in_slot(tok, found["Buckingham"], "Gloucester")          # Buckingham's lines, scored as Gloucester's

The split is NAME's: every speaker learns only from sessions before NAME's held-out ones, so no held-out
turn of anyone is trained on, nor seen as context.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

from likeme.data.examples import MIN_REPLIES, VoiceData, persona_example, replies, reply_sessions
from likeme.prompts import Turn

BLOCK = 512  # replies assembled in one batch


def speakers(sessions, name: str, min_turns: int = MIN_REPLIES) -> dict[str, int]:
    """People with at least `min_turns` turns (after a session's first) in `sessions`, most first, NAME first.

    Example: sessions where Ana has 30 turns, Sam 25, Bo 3 -> {"Ana": 30, "Sam": 25}
    """
    counts = Counter(t.author for _, _, turns in sessions for t in turns[1:])
    found = {p: n for p, n in counts.most_common() if n >= min_turns}
    return {name: found.pop(name), **found} if name in found else found


def by_person(sessions, people=None, context_turns: int = 8) -> dict[str, list]:
    """Each person's turns in `sessions` (every one after a session's first), as `examples.Reply`s with their
    context; `people` limits it (default: everyone who speaks)."""
    who = list(people) if people is not None else list(Counter(t.author for _, _, turns in sessions for t in turns))
    return {p: replies(sessions, p, context_turns) for p in who}


def in_slot(tokenizer, found: list, slot: str, *, max_length: int = 512) -> list[dict | None]:
    """Turns of anyone -> persona examples as if `slot` had written each (None where nothing is left to
    label), in order: the context as it was, the system turn and the reply's role those of `slot`."""
    from likeme.data.assemble import PersonaBuilder

    def reference(r, lines):
        return persona_example(tokenizer, r.context, r.reply, slot, prefix_names=r.prefix_names,
                               max_length=max_length, recalled=lines)

    builder = PersonaBuilder(tokenizer, slot, max_length=max_length, reference=reference)
    renamed = [(dataclasses.replace(r, reply=Turn(slot, r.reply.text)), ()) for r in found]
    out: list[dict | None] = []
    for i in range(0, len(renamed), BLOCK):
        out += builder.examples(renamed[i: i + BLOCK])
    return out


def everyone_dataset(store, name: str, tokenizer, *, context_turns: int = 8, max_length: int = 512,
                     heldout: float = 0.1, gap=None, min_turns: int = MIN_REPLIES, cache: bool = True) -> VoiceData:
    """Learn from everyone: the training examples of every speaker of NAME's training sessions with at
    least `min_turns` turns there, each in their own slot (NAME's first), and NAME's held-out replies in
    NAME's slot. `data.speakers`: {speaker: training examples}, in the order of `data.train`.

    Example: a chat of Ana (300 replies), Sam (280) and Bo (5) -> train: Ana's 270 training replies in Ana's
      slot, then Sam's 250 in Sam's; heldout: Ana's 30 latest; speakers {"Ana": 270, "Sam": 250}
    """
    from likeme.data import cache as cached
    from likeme.data.examples import check_person, persona_dataset

    check_person(store, name)
    settings = {"format": "everyone", "name": name, "context_turns": context_turns, "max_length": max_length,
                "heldout": heldout, "gap": gap, "min_turns": min_turns}
    where = cached.dataset_key(store, tokenizer, settings) if cache else None
    hit = cached.load(where)
    if hit is not None:
        train, held, meta = hit
        return VoiceData(train, held, meta["train_sessions"], meta["heldout_sessions"], meta["replies"], meta["partner"],
                         meta["speakers"])
    own = persona_dataset(store, name, tokenizer, context_turns=context_turns, max_length=max_length,
                          heldout=heldout, gap=gap, cache=cache)  # NAME's examples, as a voice of NAME alone has
    train_s, _, _ = reply_sessions(store, name, heldout=heldout, gap=gap)
    train, counts = list(own.train), {name: len(own.train)}
    for person, found in by_person(train_s, [p for p in speakers(train_s, name, min_turns) if p != name],
                                   context_turns).items():
        made = [e for e in in_slot(tokenizer, found, person, max_length=max_length) if e]
        train += made
        counts[person] = len(made)
    data = VoiceData(train, own.heldout, own.train_sessions, own.heldout_sessions, own.replies, own.partner, counts)
    cached.save(where, data.train, data.heldout, {"train_sessions": data.train_sessions, "partner": data.partner,
                                                 "heldout_sessions": data.heldout_sessions, "replies": data.replies,
                                                 "speakers": counts})
    return data


def others_heldout(store, name: str, tokenizer, *, context_turns: int = 8, max_length: int = 512,
                   heldout: float = 0.1, gap=None, at_most: int | None = None) -> list[dict]:
    """Other people's turns in NAME's held-out sessions, each in NAME's slot (an even sample of `at_most`):
    what a voice's held-out perplexity is set beside to measure its specificity."""
    from likeme.data.examples import even_sample

    _, held_s, _ = reply_sessions(store, name, heldout=heldout, gap=gap)
    found = [r for p, rs in by_person(held_s, context_turns=context_turns).items() if p != name for r in rs]
    return [e for e in in_slot(tokenizer, even_sample(found, at_most), name, max_length=max_length) if e]
