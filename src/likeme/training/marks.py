"""Single good / bad marks on the voice's own replies, for KTO (Ethayarajh et al. 2024), which learns from
them without a second reply to compare with.

`/good` and `/bad` in `likeme chat` mark the reply the voice just wrote, and `likeme compare` marks the
reply you picked good and the other bad; both append to RUN/marks.jsonl, in the run folder of the voice
that wrote them. One JSON object per line, in TRL's unpaired preference format (the prompt is the voice's
own training prompt for that context, as in `pairs.py`):

    {"prompt": [{"role": "system", "content": "You are Ana. ..."}, {"role": "user", "content": "plans?"}],
     "completion": [{"role": "assistant", "content": "pizza obviously"}], "label": true}

`likeme train prefer --loss kto --data RUN/marks.jsonl` learns from them; with `--pairs`, each pair is read
as two marks (`unpaired`: chosen good, rejected bad).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from likeme.errors import LikemeError

FILE = "marks.jsonl"  # in the run folder of the voice whose replies are marked


def mark(prompt: list[dict], completion: str, good: bool) -> dict:
    """mark([{"role": "user", "content": "hi"}], "heyy", True) ->
    {"prompt": [...], "completion": [{"role": "assistant", "content": "heyy"}], "label": True}"""
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": completion}], "label": bool(good)}


def path_of(run: str | os.PathLike) -> Path:
    """RUN/marks.jsonl for a run folder (or a run's name under $LIKEME_HOME/runs)."""
    from likeme.models import resolve

    ref = resolve(run)
    if ref.kind != "run":
        raise LikemeError(f"{run} is not a run folder: marks are kept beside the voice that wrote the replies")
    return ref.path / FILE


def of_reply(voice, history, text: str, good: bool) -> dict:
    """The mark of `text`, which `voice` wrote after `history` (as `Voice.reply` takes it), with the prompt
    the voice was trained on for that context (its last `context_turns` turns, no recalled messages)."""
    from likeme.prompts import as_turns, persona_messages

    if voice.format != "persona":
        raise LikemeError(f"{voice.run} is a {voice.format} run: marks, like pairs, are made with a persona voice "
                          "(likeme train voice --format persona)")
    if not str(text).strip():
        raise LikemeError("the reply is empty: nothing to mark")
    turns = as_turns(history, voice.name, voice.partner)
    return mark(persona_messages(turns[-voice.context_turns:] if voice.context_turns else turns, voice.name),
                str(text), good)


def unpaired(pairs: list[dict]) -> list[dict]:
    """Pairs as marks: each pair's chosen reply good and its rejected reply bad, in the pair's order.

    Example: [{"prompt": p, "chosen": c, "rejected": r}] ->
      [{"prompt": p, "completion": c, "label": True}, {"prompt": p, "completion": r, "label": False}]
    """
    return [{"prompt": p["prompt"], "completion": p[side], "label": side == "chosen"}
            for p in pairs for side in ("chosen", "rejected")]


def read(path: str | os.PathLike) -> list[dict]:
    """The marks of a JSONL file, checked: a prompt and a completion (both lists of {"role", "content"}
    messages, or both strings) and a true/false label. Errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise LikemeError(f"{path}: no such marks file: mark replies with /good and /bad in likeme chat, "
                          "or pick them with likeme compare")
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise LikemeError(f"{path}: line {n}: not JSON ({getattr(e, 'msg', e)}): one mark per line") from None
            problem = check(row)
            if problem:
                raise LikemeError(f"{path}: line {n}: {problem}")
            rows.append({k: row[k] for k in ("prompt", "completion", "label")})
    return rows


def check(row) -> str | None:
    """What is wrong with one mark, or None: check({"prompt": "hi", "completion": "yo", "label": 1}) ->
    'label must be true or false'."""
    if not isinstance(row, dict) or not all(k in row for k in ("prompt", "completion", "label")):
        return 'a mark is {"prompt": ..., "completion": ..., "label": true or false}'
    if not isinstance(row["label"], bool):
        return "label must be true or false"
    if isinstance(row["prompt"], str) and isinstance(row["completion"], str):
        return None
    for k in ("prompt", "completion"):
        msgs = row[k]
        if not isinstance(msgs, list) or not msgs or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in msgs):
            return f"{k} must be a list of {{\"role\", \"content\"}} messages (or both strings)"
    if row["completion"][-1]["role"] != "assistant":
        return "the completion must end with an assistant message"
    return None


def both_kinds(rows: list[dict], where: str) -> list[dict]:
    """`rows` when it holds good and bad marks of one kind of prompt; else a one-line error saying what to do
    (KTO weighs the good against the bad: with one kind only, it has nothing to tell apart)."""
    if not rows:
        raise LikemeError(f"{where}: no marks in it: mark replies with /good and /bad in likeme chat")
    labels = {r["label"] for r in rows}
    if len(labels) < 2:
        kind, other = ("good", "/bad") if True in labels else ("bad", "/good")
        raise LikemeError(f"{where}: all {len(rows)} marks are {kind}: KTO needs good and bad ones; mark some replies "
                          f"{other} in likeme chat, or add --pairs FILE")
    if len({isinstance(r["completion"], str) for r in rows}) > 1:
        raise LikemeError(f"{where}: mixes conversational marks (lists of messages) with plain-text ones: use one kind")
    return rows
