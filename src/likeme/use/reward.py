"""Using a reward run (`likeme train reward`): a scalar for how much a reply, in its context, is what NAME
would have written. Higher is more like NAME; the scale is the model's own (compare within one run).

    >>> rm = load_reward("runs/ana-reward")
    >>> rm.score(["pizza obviously", "Sure! I'd be happy to help."], [ctx, ctx])
    [2.31, -1.74]

A reply is shown to the model as it was trained: a causal LM reads the voice's chat prompt (the system
turn "You are NAME...", the context turns) with the reply as NAME's turn, and its head reads the last
token; an encoder reads the reply alone (a style judge). No training code is imported here.
"""
from __future__ import annotations

import os

from likeme.errors import LikemeError


def render(tokenizer, kind: str, prompt, answer: str, max_length: int) -> list[int]:
    """Token ids of one (prompt, answer): prompt a list of chat messages (TRL's conversational format) or a
    string. Too long a row loses its beginning, never its end, where the head reads.

    Example (ChatML): ([system, {"user": "plans?"}], "pizza") -> ids of
      "<|im_start|>system\\n...<|im_end|>\\n<|im_start|>user\\nplans?<|im_end|>\\n<|im_start|>assistant\\npizza<|im_end|>\\n"
    """
    from likeme.prompts import token_ids

    if kind == "encoder":
        ids = tokenizer(answer, truncation=True, max_length=max_length)["input_ids"]
    elif isinstance(prompt, str):
        ids = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
    else:
        ids = token_ids(tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": answer}], tokenize=True))
    return ids[-max_length:]


class RewardModel:
    """A loaded reward run: `score(replies, contexts, name)`, `score_pairs(pairs)`."""

    def __init__(self, model, tokenizer, meta: dict):
        self.model, self.tokenizer, self.meta = model, tokenizer, meta
        self.kind, self.max_length = meta.get("backbone", "causal"), int(meta.get("max_length") or 512)

    def __repr__(self) -> str:
        return f"RewardModel(as={self.meta.get('as')!r}, base={self.meta.get('base')!r})"

    def rewards(self, prompts: list, answers: list[str], batch_size: int = 16) -> list[float]:
        """One scalar per (prompt, answer)."""
        return self.rewards_of_ids([render(self.tokenizer, self.kind, p, a, self.max_length)
                                    for p, a in zip(prompts, answers)], batch_size)

    def rewards_of_ids(self, rows: list[list[int]], batch_size: int = 16) -> list[float]:
        """One scalar per row of token ids (`render`'s), batched by length."""
        import torch

        from likeme.batching import pad

        device = next(self.model.parameters()).device
        out = [0.0] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s: s + batch_size]
                ids, mask = pad([rows[i] for i in idx], self.tokenizer.pad_token_id)
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # (B, 1)
                for i, v in zip(idx, logits.float().reshape(-1).tolist()):
                    out[i] = v
        return out

    def score(self, replies: list[str], contexts: list | None = None, name: str | None = None) -> list[float]:
        """Rewards of NAME's replies after their contexts (lists of `datasets.Turn`; None: no context)."""
        from likeme.prompts import chat_messages

        name = name or self.meta.get("as")
        if not name:
            raise LikemeError("whose replies are these? pass name= (the reward run does not say)")
        contexts = contexts or [[] for _ in replies]
        prompts = [chat_messages(c, name, len({t.author for t in c if t.author != name}) > 1) for c in contexts]
        return self.rewards(prompts, list(replies))

    def score_pairs(self, pairs: list[dict]) -> tuple[list[float], list[float]]:
        """(rewards of the chosen answers, of the rejected ones) of pairs in `pairs.read`'s format."""
        def text(x):
            return x if isinstance(x, str) else x[-1]["content"]

        prompts = [p["prompt"] for p in pairs]
        return (self.rewards(prompts, [text(p["chosen"]) for p in pairs]),
                self.rewards(prompts, [text(p["rejected"]) for p in pairs]))


def load_reward(run: str | os.PathLike, *, device=None) -> RewardModel:
    """Load a reward run (its folder or name), on the GPU when there is one."""
    from likeme import models, runs
    from likeme.use import heads

    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    if meta.get("recipe") != "reward":
        raise LikemeError(f"{run} is not a reward run: train one with likeme train reward --pairs FILE")
    model = heads.load_classifier_model(ref.path / "model", meta.get("backbone", "causal"))
    return RewardModel(model.to(device or models.default_device()).eval(), models.load_tokenizer(ref), meta)
