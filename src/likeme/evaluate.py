"""Measuring how "like NAME" a model is: perplexity of NAME's replies, exact over tokens.

    >>> perplexity(model, examples, pad_id=tok.pad_token_id)   # examples: [{"input_ids", "labels"}]
    23.4
"""
from __future__ import annotations

import math


def perplexity(model, examples: list[dict], pad_id: int, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood over every labelled token), the same weighting whatever the
    batching (the Trainer's eval_loss averages per batch, which is not)."""
    import torch

    from likeme.datasets import IGNORE, collate

    if not examples:
        return float("nan")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    # Longest first: batches of similar length pad less.
    ordered = sorted(examples, key=lambda e: -len(e["input_ids"]))
    with torch.no_grad():
        for i in range(0, len(ordered), batch_size):
            batch = {k: v.to(device) for k, v in collate(ordered[i: i + batch_size], pad_id).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logits = logits[:, :-1].float()  # (B, T-1, V): position t predicts token t+1
            target = batch["labels"][:, 1:]  # (B, T-1)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=IGNORE, reduction="sum")
            nll += loss.item()
            count += int((target != IGNORE).sum())
    if was_training:
        model.train()
    return math.exp(nll / count) if count else float("nan")
