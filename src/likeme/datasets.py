"""Messages in the store -> training examples `{"input_ids", "labels"}` for one person (`--as NAME`).

Who is speaking decides the loss mask: only NAME's tokens carry labels, everything else is -100
(litgpt's `SFTDataset`, LLMs-from-scratch's collate). Padding lives in `collate`, not here.

Two formats:
- `persona` (default): one example per reply of NAME, with the turns before it in the same session
  as context, rendered with the base model's chat template. Other people are `user` turns (prefixed
  with "Name: " when more than two people are in the chat), NAME's earlier messages are `assistant`
  turns, consecutive messages of one author are merged into one turn. Labels: the reply and the
  token that ends the turn, so the model learns to stop (unsloth #416: models that never stop).
- `transcript`: plain language modelling on "Name: message" lines, sessions joined by EOS and
  packed into fixed blocks; `loss_on="me"` labels only NAME's lines, `"all"` every token.

The split is by time: the latest `heldout` fraction of sessions is never trained on.

Style and authorship (the embedder and `--label-by author` classifier): `store_sessions` keeps each
session's text messages, `authorship_triplets` makes (anchor, positive, negative) from who wrote
them, `labelled_messages` and `author_examples` label texts by their author.

Labelled texts (the classifier): `label_order`, `stratified_split`, `class_weights`. Batches: `pad` and
`collate` (the one padding function), `length_batches` (batches of similar length).
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from likeme.errors import LikemeError

IGNORE = -100  # the label PyTorch's cross-entropy skips
MIN_REPLIES = 20  # below this a voice has nothing to learn from; ~1 evening of chatting


@dataclass
class Turn:
    """One speaker's consecutive messages, merged: Turn("Ana", "hi\\nare you up?")."""

    author: str
    text: str


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


def system_prompt(name: str, recalled: Sequence[str] = ()) -> str:
    """The system turn of every persona example, and of `likeme chat`: the same words at training
    and at inference time (SmolLM2's template otherwise inserts its own "helpful assistant" prompt).
    `recalled`: things NAME said before (`recall.py`), listed after it, one per line.

    Example: system_prompt("Ana", ["pizza obv"]) ->
      "You are Ana. Write Ana's next message in this chat, in Ana's own words and style.\n"
      "Things Ana has said before:\n- pizza obv"
    """
    text = f"You are {name}. Write {name}'s next message in this chat, in {name}'s own words and style."
    if recalled:
        text += f"\nThings {name} has said before:\n" + "\n".join(f"- {' / '.join(r.splitlines())}" for r in recalled)
    return text


def chat_messages(context: list[Turn], name: str, prefix_names: bool, recalled: Sequence[str] = ()) -> list[dict]:
    """Turns -> chat-template messages from NAME's point of view.

    Example (three people, NAME="Ana"): [Turn(Sam, "hi"), Turn(Ana, "yo"), Turn(Bo, "ok")] ->
      [system, {"user", "Sam: hi"}, {"assistant", "yo"}, {"user", "Bo: ok"}]
    """
    out = [{"role": "system", "content": system_prompt(name, recalled)}]
    for t in context:
        if t.author == name:
            out.append({"role": "assistant", "content": t.text})
        else:
            out.append({"role": "user", "content": f"{t.author}: {t.text}" if prefix_names else t.text})
    return out


def end_of_turn_id(tokenizer) -> int:
    """The token that closes an assistant turn in the tokenizer's chat template: `<|im_end|>`
    (ChatML: SmolLM2, Qwen), `<|eot_id|>` (Llama 3), `<end_of_turn>` (Gemma), else the EOS token."""
    vocab = tokenizer.get_vocab()
    for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        if tok in vocab:
            return vocab[tok]
    return tokenizer.eos_token_id


def _ids(x) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); 4.x a list
    return list(x["input_ids"] if hasattr(x, "keys") else x)


def persona_example(tokenizer, context: list[Turn], reply: Turn, name: str, *, prefix_names: bool,
                    max_length: int = 512, recalled: Sequence[str] = ()) -> dict | None:
    """One reply of NAME with its context -> {"input_ids", "labels"}; the oldest context turns are
    dropped until it fits in `max_length` (the reply itself is cut only if it alone is too long)."""
    eot = end_of_turn_id(tokenizer)
    for start in range(len(context) + 1):
        msgs = chat_messages(context[start:], name, prefix_names, recalled)
        prompt = _ids(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True))
        full = _ids(tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": reply.text}],
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


# Instruction tuning: (role, content) messages -> an example whose loss is on the assistant's turns only

ALPACA = ("Below is an instruction that describes a task{with_input}. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\n{instruction}\n\n{input}### Response:\n")  # Taori et al. 2023


def alpaca_prompt(instruction: str, input: str = "") -> str:
    """The Alpaca prompt, for a model without a chat template.

    Example: alpaca_prompt("Add 2 and 3.") -> "Below is an instruction ... ### Instruction:\nAdd 2 and 3.\n\n### Response:\n"
    """
    return ALPACA.format(with_input=", paired with an input that provides further context" if input else "",
                         instruction=instruction.strip(), input=f"### Input:\n{input.strip()}\n\n" if input else "")


def render_instruct(tokenizer, messages: list[dict], *, generation_prompt: bool) -> list[int]:
    """Messages as the model reads them: its chat template, or Alpaca blocks when it has none (a system
    turn first as a line; each user turn an instruction, each assistant turn its response + EOS)."""
    if getattr(tokenizer, "chat_template", None):
        messages = messages or [{"role": "user", "content": ""}]  # the assistant opens: an empty instruction
        return _ids(tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True))
    text, eos = "", tokenizer.eos_token or ""
    for m in messages:
        if m["role"] == "system":
            text += m["content"].strip() + "\n\n"
        elif m["role"] == "user":
            text += alpaca_prompt(m["content"])
        else:
            text += m["content"].strip() + eos + "\n\n"
    if generation_prompt and messages and messages[-1]["role"] == "assistant":
        raise LikemeError("an Alpaca prompt ends with an instruction, not a response")
    return tokenizer(text, add_special_tokens=False)["input_ids"]


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


def _check_person(store, name: str) -> None:
    """A one-line error naming the closest people when NAME wrote nothing in the store."""
    people = {p.author for p in store.people()}
    if name not in people:
        close = sorted(people, key=lambda p: (p.lower() != name.lower(), p))[:5]
        raise LikemeError(f"no messages by {name!r} in the store; people there include: "
                          f"{', '.join(close) or 'nobody yet (run likeme ingest)'} (see likeme people)")


def _sessions_with(store, name: str, gap):
    _check_person(store, name)
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
    others: tuple[str, ...] = ()  # what other people wrote in the same session, outside this context
    session: int = -1  # the index of its session in the list `replies` was given


def reply_sessions(store, name: str, *, heldout: float = 0.1, gap=None) -> tuple[list, list, str]:
    """(training sessions, held-out sessions, partner) of the conversations NAME writes in, split by time;
    the partner is the person NAME talks to most (who the user plays in `likeme chat`)."""
    from likeme.store import DEFAULT_SESSION_GAP

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
        for i, t in enumerate(turns):
            if t.author == name and i > 0:
                start = max(0, i - context_turns)
                others = tuple(u.text for j, u in enumerate(turns) if u.author != name and not start <= j < i)
                out.append(Reply(turns[start:i], t, prefix, others, n))
    return out


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


def persona_dataset(store, name: str, tokenizer, *, context_turns: int = 8, max_length: int = 512,
                    heldout: float = 0.1, gap=None, min_replies: int = MIN_REPLIES, recall=None) -> VoiceData:
    """Every reply of NAME, tokenized with its context (`persona_example`).
    `heldout=0` puts everything in `train` (for scoring a file never trained on).
    recall: given the training sessions, a function (replies, their sessions) -> one list of recalled
    messages per reply (`recall.for_training`), shown in the system turn as `likeme chat` shows them."""
    train_s, held_s, partner = reply_sessions(store, name, heldout=heldout, gap=gap)
    memory = recall(train_s) if recall else None

    def build(group):
        found = replies(group, name, context_turns)
        recalled = memory(found, group) if memory else [()] * len(found)
        out = []
        for r, lines in zip(found, recalled):
            ex = persona_example(tokenizer, r.context, r.reply, name, prefix_names=r.prefix_names,
                                 max_length=max_length, recalled=lines)
            if ex:
                out.append(ex)
        return out

    data = VoiceData(build(train_s), build(held_s), len(train_s), len(held_s), 0, partner)
    data.replies = len(data.train) + len(data.heldout)
    _check_size(name, data, heldout > 0, min_replies)
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
                piece = tokenizer(f"{t.author}: {t.text}\n", add_special_tokens=False)["input_ids"]
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


def pad(rows: list[list[int]], value: int) -> tuple:
    """Right-pad lists of ids with `value` into a (B, T) tensor, and its attention mask.

    Example (value=2): [[5, 6, 7], [8]] -> ids [[5, 6, 7], [8, 2, 2]], mask [[1, 1, 1], [1, 0, 0]]
    """
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids, mask


def collate(batch: list[dict], pad_id: int) -> dict:
    """Examples -> a batch, padded on the right: input_ids with `pad_id`, attention_mask; labels per token
    (a list, padded with -100: language modelling) or one per example (an int: classification).

    Example (pad_id=0): [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
      -> input_ids [[5, 6, 7], [8, 0, 0]], labels [[-100, 6, 7], [8, -100, -100]],
         attention_mask [[1, 1, 1], [1, 0, 0]]
    """
    import torch

    ids, mask = pad([b["input_ids"] for b in batch], pad_id)
    out = {"input_ids": ids, "attention_mask": mask}
    if "labels" in batch[0]:
        labels = [b["labels"] for b in batch]
        out["labels"] = pad(labels, IGNORE)[0] if isinstance(labels[0], list) \
            else torch.tensor(labels, dtype=torch.long)  # (B, T) or (B,)
    return out


def collate_packed(batch: list[dict]) -> dict:
    """Examples -> one row with no padding: their ids side by side, position_ids restarting at 0 for each
    (transformers turns them into a block-diagonal mask: each attends only within itself), and the first
    label of each set to -100 (the previous example's last token does not predict it). The loss is the
    padded batch's: the same tokens are predicted from the same contexts.

    Example: [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
      -> input_ids [[5, 6, 7, 8, 9]], labels [[-100, 6, 7, -100, 9]], position_ids [[0, 1, 2, 0, 1]],
         use_cache False
    """
    import torch

    ids = [t for b in batch for t in b["input_ids"]]
    labels = [t for b in batch for t in [IGNORE, *b["labels"][1:]]]
    positions = [i for b in batch for i in range(len(b["input_ids"]))]
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),  # (1, sum of lengths)
            "position_ids": torch.tensor([positions]),
            "use_cache": False}  # with a cache, transformers would not read the packing from position_ids


# ---------------------------------------------------------------------------------------------
# Raw text for pretraining: documents -> one token stream -> (block_size) blocks


def token_stream(documents: Sequence[Sequence[int]], eos_id: int) -> list[int]:
    """Documents' ids joined into one stream, `<|endoftext|>` (eos_id) after each (GPT-2's packing).

    Example (eos_id=0): [[5, 6], [7, 8, 9]] -> [5, 6, 0, 7, 8, 9, 0]
    """
    out: list[int] = []
    for doc in documents:
        out.extend(doc)
        out.append(eos_id)
    return out


def blocks(stream: Sequence[int], block_size: int) -> list[dict]:
    """Contiguous, non-overlapping blocks of `block_size` tokens as language-modelling examples (labels =
    input_ids: the model shifts them), no padding; the last partial block is dropped.

    Example (block_size=3): [5, 6, 0, 7, 8, 9, 0] -> [{"input_ids": [5, 6, 0], "labels": [5, 6, 0]},
                                                      {"input_ids": [7, 8, 9], "labels": [7, 8, 9]}]
    """
    out = []
    for i in range(0, len(stream) - block_size + 1, block_size):
        ids = list(stream[i: i + block_size])
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def text_documents(files: Sequence[str], db: str | None = None, name: str | None = None) -> tuple[list[str], dict]:
    """(documents, provenance) for raw-text recipes (tokenizer, pretrain): each UTF-8 file one document, or
    the store's sessions (`store_documents`) when `db` is given instead."""
    from pathlib import Path

    from likeme import runs

    if bool(files) == bool(db):
        raise LikemeError("give the text to learn from: --data FILE (repeatable) or --db STORE")
    if files:
        docs = []
        for f in files:
            if not Path(f).is_file():
                raise LikemeError(f"{f}: no such file")
            try:
                docs.append(Path(f).read_text("utf-8"))
            except UnicodeDecodeError as e:
                raise LikemeError(f"{f} is not UTF-8 text ({e.reason} at byte {e.start}): convert it first, "
                                  f"e.g. iconv -f latin1 -t utf-8") from None
        return docs, {"files": [runs.file_data(f) for f in files]}
    from likeme.store import Store

    with Store(db) as store:
        return store_documents(store, name), store.provenance(name)


def store_documents(store, name: str | None = None, *, gap=None) -> list[str]:
    """The store's text messages as documents, one per session ("Author: text" lines, oldest first);
    with `name`, NAME's messages only (their own text, without the name)."""
    from likeme.store import DEFAULT_SESSION_GAP

    if name:
        _check_person(store, name)
    docs = []
    for raw in store.sessions(gap=gap or DEFAULT_SESSION_GAP):
        lines = [(m.text.strip() if name else f"{m.author}: {m.text.strip()}") for m in raw
                 if m.kind == "text" and m.text.strip() and m.author and (not name or m.author == name)]
        if lines:
            docs.append("\n".join(lines))
    return docs


# ---------------------------------------------------------------------------------------------
# Labelled texts: the order of the labels, a stratified split, weights per label


def label_order(labels: list[str]) -> list[str]:
    """The labels, each once, in a stable order: numbers by value, then names alphabetically.

    Example: ["b", "10", "a", "2", "b"] -> ["2", "10", "a", "b"]
    """
    def key(s: str):
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)
    return sorted(set(labels), key=key)


def stratified_split(labels: list, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, validation): each label in the same share in both (sklearn's
    `train_test_split(stratify=...)`), and every label kept in train.

    A label with one example cannot be split: it goes to train. When the validation share is too small to
    hold every label once, the split is random, then any label that landed wholly in validation gets one
    example back.
    Example: labels a x4, b x4, c x1, fraction 0.5 -> train {2 a, 2 b, c}, validation {2 a, 2 b}
    """
    from sklearn.model_selection import train_test_split

    n = len(labels)
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    counts = Counter(labels)
    single = [i for i, y in enumerate(labels) if counts[y] == 1]
    multi = [i for i, y in enumerate(labels) if counts[y] > 1]
    n_val = max(1, round(fraction * n))
    if len(multi) < 2 or n_val >= len(multi):
        return list(range(n)), []
    try:
        train, val = train_test_split(multi, test_size=n_val, stratify=[labels[i] for i in multi], random_state=seed)
    except ValueError:  # fewer validation places than labels: sklearn cannot stratify
        train, val = train_test_split(multi, test_size=n_val, random_state=seed)
        in_train = {labels[i] for i in train}
        for i in list(val):
            if labels[i] not in in_train:
                val.remove(i)
                train.append(i)
                in_train.add(labels[i])
    return sorted(train + single), sorted(val)


def class_weights(y: list[int], n_classes: int) -> list[float]:
    """Per-label loss weights n / (k * count) (scikit-learn's "balanced"): each label's examples weigh
    as much in total as any other label's. A label absent from `y` gets weight 0.

    Example: y = [0, 0, 0, 1] (n=4, k=2) -> [4 / (2*3), 4 / (2*1)] = [0.667, 2.0]
    """
    counts = Counter(y)
    return [len(y) / (n_classes * counts[c]) if counts[c] else 0.0 for c in range(n_classes)]


def length_batches(rows: list[tuple], size: int, rng: random.Random, window: int = 16) -> list[list[tuple]]:
    """Batches of rows of similar length, in random order: rows are sorted by their longest text within
    windows of `window` batches. A batch pads to its longest text, and chat lengths vary a lot (one long
    message in 32 costs the other 31 its padding). Only the very last batch may be short, so the batches
    can be read back from their concatenation in steps of `size`.

    Example (size 2, one window): rows of lengths 1, 9, 2, 8 -> batches [[1, 2], [8, 9]] in random order.
    """
    out = []
    for i in range(0, len(rows), size * window):
        chunk = sorted(rows[i: i + size * window], key=lambda r: max(len(t) for t in r))
        out += [chunk[j: j + size] for j in range(0, len(chunk), size)]
    short = [out.pop()] if out and len(out[-1]) < size else []
    rng.shuffle(out)
    return out + short


# ---------------------------------------------------------------------------------------------
# Style and authorship: text messages by session -> triplets (embedder), labelled by author (classifier)


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
    from likeme.store import DEFAULT_SESSION_GAP

    _check_person(store, name)
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
