"""Messages in the store -> training examples `{"input_ids", "labels"}` for one person (`--as NAME`).

Who is speaking decides the loss mask: only NAME's tokens carry labels, everything else is IGNORE
(litgpt's `SFTDataset`, LLMs-from-scratch's collate). The chat format itself is `likeme.prompts`;
padding lives in `likeme.batching`.

Two formats:
- `persona` (default): one example per reply of NAME, with the turns before it in the same session
  as context, rendered with the base model's chat template (`prompts.chat_messages`). Labels: the
  reply and the token that ends the turn, so the model learns to stop (unsloth #416: models that
  never stop).
- `transcript`: plain language modelling on "Name: message" lines, sessions joined by EOS and
  packed into fixed blocks; `loss_on="me"` labels only NAME's lines, `"all"` every token.

The split is by time: the latest `heldout` fraction of sessions is never trained on.
Instruction tuning's examples (`instruct_example`) have their loss on the assistant's turns.
"""
from __future__ import annotations

import bisect
import math
import sys
from collections import Counter
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Sequence

from likeme.errors import LikemeError
from likeme.prompts import (
    IGNORE,
    Turn,
    chat_messages,
    end_of_turn_id,
    render_instruct,
    token_ids,
    transcript_line,
)

MIN_REPLIES = 20  # below this a voice has nothing to learn from; ~1 evening of chatting


def session_turns(session) -> list[Turn]:
    """Stored messages of one session -> turns. Media and system messages are left out; consecutive
    messages of one author become one turn, joined by newlines.

    Example: [Ana "hi", Ana <photo>, Ana "look", Sam "wow"] -> [Turn(Ana, "hi\\nlook"), Turn(Sam, "wow")]
    """
    turns: list[Turn] = []
    for m in session:
        if m.kind != "text" or not m.text.strip():
            continue
        if turns and turns[-1].author == m.author:
            turns[-1].text += "\n" + m.text
        else:
            turns.append(Turn(m.author, m.text))
    return turns


def persona_example(tokenizer, context: list[Turn], reply: Turn, name: str, *, prefix_names: bool,
                    max_length: int = 512, recalled: Sequence[str] = ()) -> dict | None:
    """One reply of NAME with its context -> {"input_ids", "labels"}; the oldest context turns are
    dropped until it fits in `max_length` (the reply itself is cut only if it alone is too long)."""
    eot = end_of_turn_id(tokenizer)
    for start in range(len(context) + 1):
        msgs = chat_messages(context[start:], name, prefix_names, recalled)
        prompt = token_ids(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True))
        full = token_ids(tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": reply.text}],
                                                  tokenize=True))
        if full[: len(prompt)] != prompt:  # a template that renders history differently: not ChatML-like
            raise LikemeError("the base model's chat template does not extend the prompt with the reply; "
                              "use --format transcript with this model")
        answer = full[len(prompt):]
        if eot in answer:  # label up to and including the end-of-turn token, not the newline after it
            answer = answer[: answer.index(eot) + 1]
        if len(prompt) + len(answer) <= max_length or start == len(context):
            ids = (prompt + answer)[:max_length]
            labels = ([IGNORE] * len(prompt) + answer)[:max_length]
            if all(l == IGNORE for l in labels):
                return None
            return {"input_ids": ids, "labels": labels}
    return None


def instruct_example(tokenizer, messages: list[dict], max_length: int = 512) -> dict | None:
    """A conversation -> {"input_ids", "labels"}: labels on each assistant turn (its text and the token that
    ends it), IGNORE on everything else; cut at `max_length`. None when no answer token is left.

    Example (ChatML): [user "2+2?", assistant "4"] -> ids of "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
      with labels only on "4<|im_end|>" (litgpt's SFTDataset: mask_prompt)
    """
    ids: list[int] = []
    labels: list[int] = []
    eot = end_of_turn_id(tokenizer) if getattr(tokenizer, "chat_template", None) else tokenizer.eos_token_id
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = render_instruct(tokenizer, messages[:i], generation_prompt=True)
        full = render_instruct(tokenizer, messages[: i + 1], generation_prompt=False)
        if prompt[: len(ids)] != ids or full[: len(prompt)] != prompt:
            raise LikemeError("the base model's chat template does not extend the prompt with the answer, as "
                              "instruction tuning needs (ChatML does): use a base model with such a template")
        answer = full[len(prompt):]
        if eot in answer:  # up to and including the end-of-turn token, not the newline after it
            answer = answer[: answer.index(eot) + 1]
        labels += [IGNORE] * (len(prompt) - len(ids)) + answer
        ids = prompt + answer
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels} if any(l != IGNORE for l in labels) else None


@dataclass
class VoiceData:
    """Train and held-out examples for one person, and what they were built from."""

    train: list[dict]
    heldout: list[dict]
    train_sessions: int
    heldout_sessions: int
    replies: int  # NAME's replies (persona) or lines (transcript) in the data
    partner: str = ""  # the person NAME talks to most: who the user plays in `likeme chat`
    speakers: dict = field(default_factory=dict)  # learning from everyone: {speaker: training examples}


def check_person(store, name: str) -> None:
    """A one-line error naming the closest people when NAME wrote nothing in the store."""
    people = {p.author for p in store.people()}
    if name not in people:
        close = sorted(people, key=lambda p: (p.lower() != name.lower(), p))[:5]
        raise LikemeError(f"no messages by {name!r} in the store; people there include: "
                          f"{', '.join(close) or 'nobody yet (run likeme ingest)'} (see likeme people)")


def _sessions_with(store, name: str, gap):
    check_person(store, name)
    raw_sessions = store.sessions(gap=gap)
    conv_people: dict[str, set] = {}
    for raw in raw_sessions:
        conv_people.setdefault(raw[0].conversation, set()).update(m.author for m in raw if m.kind == "text")
    out = []
    for raw in raw_sessions:
        turns = session_turns(raw)
        if any(t.author == name for t in turns):
            # (start time, more than two people in the chat?, turns)
            out.append((raw[0].sent_at, len(conv_people[raw[0].conversation]) > 2, turns))
    out.sort(key=lambda s: s[0])  # by start time, across conversations
    return out


def _partner(sessions, name: str) -> str:
    counts = Counter(t.author for _, _, turns in sessions for t in turns if t.author != name)
    return counts.most_common(1)[0][0] if counts else ""


def even_sample(items: list, n: int | None) -> list:
    """At most `n` items spread evenly over the list, in order (all when n is None or 0).

    Example: even_sample(list(range(10)), 4) -> [0, 2, 5, 7]
    """
    if not n or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


def split_by_time(sessions: list, heldout: float) -> tuple[list, list]:
    """The latest `heldout` fraction of sessions (at least one) is held out: [s1..s10], 0.1 -> [s1..s9], [s10]."""
    n_held = max(1, math.ceil(len(sessions) * heldout)) if heldout > 0 and len(sessions) > 1 else 0
    return sessions[: len(sessions) - n_held], sessions[len(sessions) - n_held:]


@dataclass
class Reply:
    """One reply of NAME and the turns before it in its session (at most `context_turns` of them)."""

    context: list[Turn]
    reply: Turn
    prefix_names: bool  # more than two people in the chat: other people's turns read "Name: text"
    others: Sequence[str] = ()  # what other people wrote in the same session, outside this context
    session: int = -1  # the index of its session in the list `replies` was given


def reply_sessions(store, name: str, *, heldout: float = 0.1, gap=None) -> tuple[list, list, str]:
    """(training sessions, held-out sessions, partner) of the conversations NAME writes in, split by time;
    the partner is the person NAME talks to most (who the user plays in `likeme chat`)."""
    from likeme.data.store import DEFAULT_SESSION_GAP

    sessions = _sessions_with(store, name, gap or DEFAULT_SESSION_GAP)
    train_s, held_s = split_by_time(sessions, heldout)
    return train_s, held_s, _partner(sessions, name)


def replies(sessions, name: str, context_turns: int = 8) -> list[Reply]:
    """Every reply of NAME in `reply_sessions`' sessions: a NAME turn with at least one turn before it.

    Example (NAME "Ana"): a session [Sam "hi", Ana "hey", Bo "yo", Ana "ok"] ->
      [Reply([Sam "hi"], Ana "hey"), Reply([Sam "hi", Ana "hey", Bo "yo"], Ana "ok")]
    """
    out = []
    for n, (_, prefix, turns) in enumerate(sessions):
        where = [j for j, u in enumerate(turns) if u.author != name]  # other people's turns, by position
        texts = tuple(turns[j].text for j in where)
        for i, t in enumerate(turns):
            if t.author == name and i > 0:
                start = max(0, i - context_turns)
                others = Outside(texts, bisect.bisect_left(where, start), bisect.bisect_left(where, i))
                out.append(Reply(turns[start:i], t, prefix, others, n))
    return out


class Outside(SequenceABC):
    """Other people's texts of a session but those in [lo, hi): `Reply.others` without a copy per reply
    (a copy made `replies` quadratic in a session's length: 20,000 messages in one session took seconds).

    Example: Outside(("a", "b", "c", "d"), 1, 3) reads as ("a", "d")
    """

    def __init__(self, texts: tuple, lo: int, hi: int):
        self.texts, self.lo, self.hi = texts, lo, hi

    def __len__(self) -> int:
        return len(self.texts) - (self.hi - self.lo)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return tuple(self)[k]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self.texts[k if k < self.lo else k + self.hi - self.lo]

    def __eq__(self, other):
        return isinstance(other, SequenceABC) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return repr(tuple(self))


def turns_in_context(sessions, name: str, context_turns: int = 8) -> tuple[list[str], list[int], list[list[Turn]]]:
    """Every turn of `reply_sessions`' sessions: its text, 1 if NAME wrote it (else 0), and up to
    `context_turns` turns before it (none for a session's first). What a judge must tell apart: NAME's
    turns from other people's, in the same chats (a reward judge reads the context too).

    Example (NAME "Ana"): a session [Sam "hi", Ana "hey", Bo "yo"] -> (["hi", "hey", "yo"], [0, 1, 0],
      [[], [Sam "hi"], [Sam "hi", Ana "hey"]])
    """
    texts, labels, contexts = [], [], []
    for _, _, turns in sessions:
        for i in range(len(turns)):
            texts.append(turns[i].text)
            labels.append(int(turns[i].author == name))
            contexts.append(turns[max(0, i - context_turns):i])
    return texts, labels, contexts


BLOCK = 512  # replies tokenized in one batch: a progress step


def persona_dataset(store, name: str, tokenizer, *, context_turns: int = 8, max_length: int = 512,
                    heldout: float = 0.1, gap=None, min_replies: int = MIN_REPLIES, recall=None,
                    cache: bool = True, progress: bool | None = None) -> VoiceData:
    """Every reply of NAME, tokenized with its context: `persona_example`'s examples, built from each
    message's tokens (`assemble.PersonaBuilder`, checked against it) and kept beside the store
    (`data.cache`), so the next call with the same store, tokenizer and settings reads them.
    `heldout=0` puts everything in `train` (for scoring a file never trained on).
    recall: given the training sessions, a function (replies, their sessions) -> one list of recalled
    messages per reply (`recall.for_training`), shown in the system turn as `likeme chat` shows them;
    such a dataset depends on a model and is not cached.
    progress: a bar on stderr; by default only when stderr is a terminal."""
    from likeme.data import cache as cached

    settings = {"format": "persona", "name": name, "context_turns": context_turns, "max_length": max_length,
                "heldout": heldout, "gap": gap}
    where = cached.dataset_key(store, tokenizer, settings) if cache and recall is None else None
    hit = cached.load(where)
    if hit is not None:
        train, held, meta = hit
        data = VoiceData(train, held, meta["train_sessions"], meta["heldout_sessions"], meta["replies"], meta["partner"])
    else:
        data = _build_persona(store, name, tokenizer, context_turns=context_turns, max_length=max_length,
                              heldout=heldout, gap=gap, recall=recall, progress=progress)
        cached.save(where, data.train, data.heldout, {"train_sessions": data.train_sessions, "partner": data.partner,
                                                     "heldout_sessions": data.heldout_sessions, "replies": data.replies})
    _check_size(name, data, heldout > 0, min_replies)
    return data


def _build_persona(store, name, tokenizer, *, context_turns, max_length, heldout, gap, recall, progress) -> VoiceData:
    from likeme.data.assemble import PersonaBuilder

    train_s, held_s, partner = reply_sessions(store, name, heldout=heldout, gap=gap)
    memory = recall(train_s) if recall else None
    groups = []
    for group in (train_s, held_s):
        found = replies(group, name, context_turns)
        groups.append(list(zip(found, memory(found, group) if memory else [()] * len(found))))

    def reference(r, lines):
        return persona_example(tokenizer, r.context, r.reply, name, prefix_names=r.prefix_names,
                               max_length=max_length, recalled=lines)

    builder = PersonaBuilder(tokenizer, name, max_length=max_length, reference=reference)
    total = sum(map(len, groups))
    if progress is None:
        progress = total > 4 * BLOCK and sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"Tokenizing {name}'s replies", unit=" replies")
    built = []
    for pairs in groups:
        out = []
        for i in range(0, len(pairs), BLOCK):
            out += [ex for ex in builder.examples(pairs[i: i + BLOCK]) if ex]
            if bar is not None:
                bar.update(len(pairs[i: i + BLOCK]))
        built.append(out)
    if bar is not None:
        bar.close()
    data = VoiceData(built[0], built[1], len(train_s), len(held_s), 0, partner)
    data.replies = len(data.train) + len(data.heldout)
    return data


def transcript_dataset(store, name: str, tokenizer, *, block_size: int = 512, loss_on: str = "me",
                       heldout: float = 0.1, gap=None, min_replies: int = MIN_REPLIES) -> VoiceData:
    """All participants as "Name: message" lines; sessions joined by EOS and packed into blocks."""
    if loss_on not in ("me", "all"):
        raise LikemeError(f"--loss-on must be 'me' or 'all', not {loss_on!r}")
    train_s, held_s, partner = reply_sessions(store, name, heldout=heldout, gap=gap)
    eos = tokenizer.eos_token_id

    def build(group):
        ids: list[int] = []
        labels: list[int] = []
        lines = 0
        for _, _, turns in group:
            for t in turns:
                piece = tokenizer(transcript_line(t.author, t.text), add_special_tokens=False)["input_ids"]
                mine = loss_on == "all" or t.author == name
                lines += t.author == name
                ids += piece
                labels += piece if mine else [IGNORE] * len(piece)
            ids.append(eos)
            labels.append(eos if loss_on == "all" else IGNORE)
        blocks = []
        for i in range(0, len(ids), block_size):  # (N,) -> (N / block_size, block_size), last one shorter
            b_ids, b_labels = ids[i: i + block_size], labels[i: i + block_size]
            if any(l != IGNORE for l in b_labels[1:]):
                blocks.append({"input_ids": b_ids, "labels": b_labels})
        return blocks, lines

    (train, n1), (held, n2) = build(train_s), build(held_s)
    data = VoiceData(train, held, len(train_s), len(held_s), n1 + n2, partner)
    _check_size(name, data, heldout > 0, min_replies)
    return data


def _check_size(name: str, data: VoiceData, need_heldout: bool, min_replies: int) -> None:
    if data.replies < min_replies or not data.train:
        raise LikemeError(
            f"too little to learn {name}'s voice: {data.replies} replies by {name} found, at least "
            f"{min_replies} needed (ingest more of {name}'s chats)")
    if need_heldout and not data.heldout:
        raise LikemeError(f"no held-out session with a reply by {name}: ingest chats spanning more sessions")
