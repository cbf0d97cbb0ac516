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


def eval_voice(run, data, name: str, *, format: str | None = None, me: str | None = None) -> dict:
    """Perplexity of NAME's replies in an export under a voice run and under its base model.

    The export is ingested into a temporary store (yours is left alone); examples are built with
    the run's own rules (persona format, context turns, block size, session gap).

    Example: eval_voice("runs/robin", "later.txt", "Robin") -> {"ppl": 38.2, "base_ppl": 410.7, "replies": 406}
    """
    import tempfile
    from datetime import timedelta
    from pathlib import Path

    import yaml

    from likeme import datasets, models
    from likeme.errors import LikemeError
    from likeme.store import Store

    ref = models.resolve(run)
    if ref.kind != "run":
        raise LikemeError(f"{run} is not a likeme run folder (no run.yaml): pass the folder `likeme train voice` wrote")
    meta = yaml.safe_load((ref.path / "run.yaml").read_text("utf-8")) or {}
    cfg = meta.get("config") or {}
    model, tok = models.load_causal_lm(ref)
    with tempfile.TemporaryDirectory(prefix="likeme-eval-") as tmp:
        with Store(Path(tmp) / "eval.db") as store:
            store.ingest_path(data, format, **({"me": me} if me else {}))
            examples = datasets.persona_dataset(
                store, name, tok, context_turns=cfg.get("context_turns", 8), max_length=cfg.get("block_size", 512),
                heldout=0.0, gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)), min_replies=1).train
    batch = cfg.get("batch_size", 8)
    ppl = perplexity(model, examples, tok.pad_token_id, batch)
    del model
    base_name = str(meta.get("base", ""))
    local = ref.path / base_name
    base_model, _ = models.load_causal_lm(str(local) if base_name and local.exists() else base_name)
    base_ppl = perplexity(base_model, examples, tok.pad_token_id, batch)
    return {"ppl": round(ppl, 4), "base_ppl": round(base_ppl, 4), "replies": len(examples)}
