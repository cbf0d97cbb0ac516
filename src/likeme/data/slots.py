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
import random
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


def rival_slots(people: list[str], name: str, speaker: str, size: int, rng: random.Random) -> list[str]:
    """The slots a turn of `speaker` is set against in the person contrast (`size` slots in all, its own
    first): NAME's slot first when the speaker is someone else, then others drawn at random.

    Example: rival_slots(["Ana", "Sam", "Bo", "Cy"], "Ana", "Sam", 3, rng) -> ["Ana", "Cy"] (or ["Ana", "Bo"])
    """
    others = [p for p in people if p not in (speaker, name)]
    first = [name] if speaker != name else []
    return first + rng.sample(others, size - 1 - len(first))


def everyone_dataset(store, name: str, tokenizer, *, context_turns: int = 8, max_length: int = 512,
                     heldout: float = 0.1, gap=None, min_turns: int = MIN_REPLIES, contrast: int = 0,
                     cache: bool = True) -> VoiceData:
    """Learn from everyone: the training examples of every speaker of NAME's training sessions with at
    least `min_turns` turns there, each in their own slot (NAME's first), and NAME's held-out replies in
    NAME's slot. `data.speakers`: {speaker: training examples}, in the order of `data.train`.

    contrast: the number of slots each training turn is also rendered in (its own first, then
    `rival_slots`; at most the number of speakers): each training example then carries `rivals`, the same
    turn in the other slots, for the person-contrast loss (`losses.SlotContrastLoss`). 0: no rivals.

    Example: a chat of Ana (300 replies), Sam (280) and Bo (5) -> train: Ana's 270 training replies in Ana's
      slot, then Sam's 250 in Sam's; heldout: Ana's 30 latest; speakers {"Ana": 270, "Sam": 250};
      with contrast=2 each of Ana's also in Sam's slot (its `rivals`) and each of Sam's in Ana's.
    """
    from likeme.data import cache as cached
    from likeme.data.examples import check_person, persona_dataset

    check_person(store, name)
    settings = {"format": "everyone", "name": name, "context_turns": context_turns, "max_length": max_length,
                "heldout": heldout, "gap": gap, "min_turns": min_turns, **({"contrast": contrast} if contrast else {})}
    where = cached.dataset_key(store, tokenizer, settings) if cache else None
    hit = cached.load(where)
    if hit is not None:
        train, held, meta = hit
        size = meta.get("group", 1)  # with rivals, each turn is `size` examples in a row
        if size > 1:
            train, held = _regroup(train, size), _regroup(held, size)
        return VoiceData(train, held, meta["train_sessions"], meta["heldout_sessions"], meta["replies"], meta["partner"],
                         meta["speakers"])
    own = persona_dataset(store, name, tokenizer, context_turns=context_turns, max_length=max_length,
                          heldout=heldout, gap=gap, cache=cache)  # NAME's examples, as a voice of NAME alone has
    train_s, held_s, _ = reply_sessions(store, name, heldout=heldout, gap=gap)
    people = list(speakers(train_s, name, min_turns))
    size = min(contrast, len(people)) if name in people else 0
    held = own.heldout
    if size > 1:
        train, counts = _with_rivals(tokenizer, train_s, people, name, size, context_turns, max_length)
        # NAME's held-out replies against their rivals too: the held-out loss is then the training objective's,
        # which early stopping and the best checkpoint follow
        found, _ = _with_rivals(tokenizer, held_s, people, name, size, context_turns, max_length, only=name)
        held = found if len(found) == len(own.heldout) else held  # (a reply some slot cuts to nothing: plain)
    else:
        size = 1
        train, counts = list(own.train), {name: len(own.train)}
        for person, found in by_person(train_s, [p for p in people if p != name], context_turns).items():
            made = [e for e in in_slot(tokenizer, found, person, max_length=max_length) if e]
            train += made
            counts[person] = len(made)
    data = VoiceData(train, held, own.train_sessions, own.heldout_sessions, own.replies, own.partner, counts)
    cached.save(where, _flat(train), _flat(held),
                {"train_sessions": data.train_sessions, "partner": data.partner, "heldout_sessions": data.heldout_sessions,
                 "replies": data.replies, "speakers": counts, "group": size})
    return data


def _flat(examples: list[dict]) -> list[dict]:
    """Examples with rivals -> each example followed by its rivals, plain (as the cache keeps them)."""
    return [{"input_ids": x["input_ids"], "labels": x["labels"]} for e in examples for x in (e, *e.get("rivals", ()))]


def _regroup(flat: list[dict], size: int) -> list[dict]:
    return [{**flat[i], "rivals": flat[i + 1: i + size]} for i in range(0, len(flat), size)]


def _with_rivals(tokenizer, sessions, people: list[str], name: str, size: int, context_turns: int,
                 max_length: int, only: str | None = None) -> tuple[list[dict], dict]:
    """Every speaker's turns in `sessions` in their own slot (only `only`'s when given), each with `rivals`:
    the same turn in `size - 1` other slots (`rival_slots`); a turn that some slot leaves nothing of is
    dropped. NAME's first."""
    train, counts = [], {}
    for person, found in by_person(sessions, [only] if only else people, context_turns).items():
        rng = random.Random(f"{name}\0{person}")  # the same rivals on every build
        chosen = [rival_slots(people, name, person, size, rng) for _ in found]
        rendered = {}  # slot -> {turn index: example}
        for slot in [person, *sorted({s for c in chosen for s in c})]:
            idx = [i for i, c in enumerate(chosen) if slot == person or slot in c]
            rendered[slot] = dict(zip(idx, in_slot(tokenizer, [found[i] for i in idx], slot, max_length=max_length)))
        made = []
        for i, c in enumerate(chosen):
            group = [rendered[person][i], *(rendered[s][i] for s in c)]
            if all(group):
                made.append({**group[0], "rivals": group[1:]})
        train += made
        counts[person] = len(made)
    return train, counts


def others_heldout(store, name: str, tokenizer, *, context_turns: int = 8, max_length: int = 512,
                   heldout: float = 0.1, gap=None, at_most: int | None = None) -> list[dict]:
    """Other people's turns in NAME's held-out sessions, each in NAME's slot (an even sample of `at_most`):
    what a voice's held-out perplexity is set beside to measure its specificity."""
    from likeme.data.examples import even_sample

    _, held_s, _ = reply_sessions(store, name, heldout=heldout, gap=gap)
    found = [r for p, rs in by_person(held_s, context_turns=context_turns).items() if p != name for r in rs]
    return [e for e in in_slot(tokenizer, even_sample(found, at_most), name, max_length=max_length) if e]
