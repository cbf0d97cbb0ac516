"""The teacher's targets for distillation (recipes/distill.py), computed once before the student trains:

    examples = top_k(teacher_lm, data.train, pad_id=2, k=32, batch_size=8)  # + "teacher", "teacher_indices"
    batch = collate(examples[:8], pad_id=2)   # input_ids, attention_mask, labels, teacher (N, k), teacher_indices

A causal LM's next-token distribution is kept as its top k logits and their ids, per labelled token (256
bytes a token at k=32, instead of 4 bytes x a 49k vocabulary); a classifier's is its K logits per text.
"""
from __future__ import annotations

import torch


def top_k(teacher, examples: list[dict], pad_id: int, k: int, batch_size: int) -> list[dict]:
    """Each example with the teacher's top-k next-token logits at its labelled positions: "teacher" (n, k)
    float32 and "teacher_indices" (n, k) int32, n = the positions t whose token t+1 is labelled."""
    import inspect

    from likeme.batching import collate, labelled_positions

    device = next(teacher.parameters()).device
    cheap = "logits_to_keep" in inspect.signature(teacher.forward).parameters  # the head at labelled positions only
    out = []
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            chunk = examples[s: s + batch_size]
            batch = {key: v.to(device) for key, v in collate(chunk, pad_id).items()}
            cols, keep = labelled_positions(batch["labels"])  # (K,), (B, K): positions t whose token t+1 is labelled
            logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             **({"logits_to_keep": cols} if cheap else {})).logits
            logits = logits if cheap else logits[:, cols]  # (B, K, V)
            values, ids = logits[keep].float().topk(min(k, logits.shape[-1]), dim=-1)  # (N, k)
            for e, v, i in zip(chunk, values.cpu().split(keep.sum(1).tolist()), ids.cpu().split(keep.sum(1).tolist())):
                out.append({**e, "teacher": v, "teacher_indices": i.to(torch.int32)})
    return out


def collate(batch: list[dict], pad_id: int) -> dict:
    """batching.collate plus the teacher's targets: (B, K) for texts, (N, k) values and ids for tokens
    (each example's rows one after another, the order `DistillObjective` reads the labelled positions in)."""
    from likeme import batching

    out = batching.collate([{"input_ids": b["input_ids"], "labels": b["labels"]} for b in batch], pad_id)
    if "teacher_indices" in batch[0]:
        out["teacher"] = torch.cat([b["teacher"] for b in batch])  # (N, k)
        out["teacher_indices"] = torch.cat([b["teacher_indices"] for b in batch])  # (N, k)
    else:
        out["teacher"] = torch.stack([b["teacher"] for b in batch])  # (B, K)
    return out
