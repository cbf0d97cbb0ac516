"""Preference pairs from the person's own behaviour: the real reply is the one NAME chose.

For a reply of NAME in a TRAINING session (never a held-out one), with its context:
    chosen    NAME's real reply;
    rejected  a reply the voice run wrote to the same context (`per_context` of them), and, with
              `others`, what someone else wrote in the same session: a reply, but not NAME's.
With a `judge` (an embedder, author classifier or reward run of NAME) both sides are the voice's own:
of `per_context` replies written to the context, the one the judge finds most like NAME is chosen and
the one it finds least like NAME rejected (on-policy pairs, as in online/iterative DPO and RLAIF: the
chosen reply is one the voice could write, so tuning moves it toward its best rather than away from
its typical).
`likeme compare` adds the person's own choices between two written replies.

One JSON object per line, in TRL's conversational preference format (the prompt is the training prompt of
the voice, `prompts.chat_messages`), which DPO and reward trainers read as it is:

    {"prompt": [{"role": "system", "content": "You are Ana. ..."}, {"role": "user", "content": "plans?"}],
     "chosen": [{"role": "assistant", "content": "pizza obviously"}],
     "rejected": [{"role": "assistant", "content": "I'm not sure, what would you like to do?"}]}

A file from elsewhere in that format, or in TRL's standard one (prompt, chosen and rejected as strings),
is read by `read` wherever likeme takes pairs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterator

from likeme.errors import LikemeError


def default_path(name: str) -> Path:
    """$LIKEME_HOME/pairs/<name>.jsonl: where `likeme pairs` and `likeme compare` append by default."""
    from likeme.paths import home
    from likeme.runs import slug

    return home() / "pairs" / f"{slug(name)}.jsonl"


def pair(prompt: list[dict], chosen: str, rejected: str) -> dict:
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def training_replies(run, *, db=None, max_contexts: int | None = None, sampling: dict | None = None):
    """(voice, replies): the voice run loaded (`sampling`: its settings, as `Voice.sampling.updated`
    takes them), and NAME's replies in the run's TRAINING sessions (the same time split as the run: its
    held-out sessions never appear), at most `max_contexts`, spread evenly."""
    from datetime import timedelta

    from likeme import models, runs
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.use import generate

    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    if runs.used_as(meta) not in runs.VOICES:
        raise LikemeError(f"{run} is not a voice run: pairs are written by a voice (likeme train voice --as NAME)")
    cfg = runs.voice_config(meta)
    if cfg.get("format", "persona") != "persona":
        raise LikemeError(f"{run} was trained on transcripts: pairs need a persona voice (--format persona)")
    name = meta["as"]
    with Store(db or cfg.get("db")) as store:
        train_s, _, _ = examples.reply_sessions(store, name, heldout=cfg.get("heldout", 0.1),
                                                gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)))
    found = examples.even_sample(examples.replies(train_s, name, cfg.get("context_turns", 8)), max_contexts)
    if not found:
        raise LikemeError(f"no reply by {name} with a message before it in the run's training sessions")
    voice = generate.load(ref.path)
    voice.sampling = voice.sampling.updated(**(sampling or {}))
    return voice, found


def from_run(run, *, db=None, per_context: int = 1, max_contexts: int | None = 200, others: bool = False,
             seed: int = 0, sampling: dict | None = None, judge=None,
             progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Pairs for NAME's training replies: chosen the real reply, rejected what the voice writes to the
    same context (written replies equal to the real one are skipped), and with `others` someone else's
    message from the same session. With `judge` (a `likeme.use.judge.Judge`; `per_context` >= 2): chosen the
    judge's favourite of the written replies, rejected its least favourite (contexts where they tie are
    skipped)."""
    import random

    from likeme.prompts import chat_messages

    if per_context < 1 and not others:
        raise LikemeError("--per-context 0 writes nothing: add --others (pairs of NAME's reply against someone else's)")
    if judge is not None and per_context < 2:
        raise LikemeError("pairs ranked by a judge need at least two written replies per context: --per-context 4")
    voice, found = training_replies(run, db=db, max_contexts=max_contexts, sampling=sampling)
    if judge is not None and judge.name != voice.name:
        raise LikemeError(f"the judge knows {judge.name!r}, the voice speaks as {voice.name!r}: use a judge of {voice.name}")
    rng = random.Random(seed)
    for i, r in enumerate(found):
        prompt = chat_messages(r.context, voice.name, r.prefix_names)
        written = voice.reply(r.context, seed=seed + i, num_return_sequences=per_context) if per_context > 0 else []
        written = [str(t) for t in (written if isinstance(written, list) else [written]) if str(t).strip()]
        if judge is not None:
            ranked = ranked_pair(written, judge.score(written, [r.context] * len(written)))
            if ranked:
                yield pair(prompt, *ranked)
        else:
            for text in written:
                if not same(text, r.reply.text):
                    yield pair(prompt, r.reply.text, text)
        if others and r.others:
            yield pair(prompt, r.reply.text, rng.choice(r.others))
        if progress is not None:
            progress(1)


def ranked_pair(texts: list[str], scores: list[float]) -> tuple[str, str] | None:
    """(best, worst) of texts by score, or None when they are the same reply or score the same.

    >>> ranked_pair(["ok", "Sure thing!", "hm"], [0.2, 0.9, 0.1])
    ('Sure thing!', 'hm')
    """
    if len(texts) < 2:
        return None
    order = sorted(range(len(texts)), key=lambda k: scores[k])
    best, worst = texts[order[-1]], texts[order[0]]
    if scores[order[-1]] <= scores[order[0]] or same(best, worst):
        return None
    return best, worst


def same(a: str, b: str) -> bool:
    """The same reply but for case and spacing: same("OK  sure", "ok sure") -> True."""
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def append(path: str | os.PathLike, pairs) -> int:
    """Add pairs to a JSONL file (made with its folder if needed); returns how many were written. Each line
    is flushed as it is written: an interrupted run keeps the pairs made so far."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "a", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
            f.flush()
            n += 1
    return n


def read(path: str | os.PathLike) -> list[dict]:
    """The pairs of a JSONL file, checked: each has a prompt, a chosen and a rejected answer, all
    conversational (lists of {"role", "content"}) or all standard (strings). Errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise LikemeError(f"{path}: no such pairs file: make one with likeme pairs or likeme compare")
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise LikemeError(f"{path}: line {n}: not JSON ({getattr(e, 'msg', e)}): one pair per line") from None
            problem = _problem(row)
            if problem:
                raise LikemeError(f"{path}: line {n}: {problem}")
            rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    if not rows:
        raise LikemeError(f"{path}: no pairs in it")
    kinds = {isinstance(r["chosen"], str) for r in rows}
    if len(kinds) > 1:
        raise LikemeError(f"{path}: mixes conversational pairs (lists of messages) with plain-text ones: use one kind")
    return rows


def _problem(row) -> str | None:
    if not isinstance(row, dict) or not all(k in row for k in ("prompt", "chosen", "rejected")):
        return 'a pair is {"prompt": ..., "chosen": ..., "rejected": ...}'
    if all(isinstance(row[k], str) for k in ("prompt", "chosen", "rejected")):
        return None
    for k in ("prompt", "chosen", "rejected"):
        msgs = row[k]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in msgs):
            return f"{k} must be a list of {{\"role\", \"content\"}} messages (or every field a string)"
    if row["chosen"][-1]["role"] != "assistant" or row["rejected"][-1]["role"] != "assistant":
        return "chosen and rejected must end with an assistant message"
    return None


def split_by_prompt(rows: list[dict], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held out): whole prompts are held out, so no context is seen on both sides.

    Example: 10 pairs over 5 prompts, fraction 0.2 -> the 2 pairs of one prompt held out.
    """
    import random

    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(json.dumps(r["prompt"], sort_keys=True), []).append(i)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    n_val = round(fraction * len(keys)) if len(keys) > 1 else 0
    val = sorted(i for k in keys[:n_val] for i in groups[k])
    return sorted(i for k in keys[n_val:] for i in groups[k]), val
