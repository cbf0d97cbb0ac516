"""Batches: right padding, padding-free packed rows, the LM head on labelled positions only, and length
buckets, shared by training and use.

`collate` is the one padding function (language-modelling labels padded with IGNORE, one label per
example for classification), `collate_packed` puts a batch's examples side by side in one row with
restarting position ids, `length_batches` groups rows of similar length and `Passes` regroups them for
each pass of training. torch is imported inside.
"""
from __future__ import annotations

import random

from likeme.prompts import IGNORE


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


def collate_groups(batch: list[dict], collate) -> dict:
    """Examples with `rivals` (the same turn in other people's slots, `slots.everyone_dataset(contrast=...)`)
    -> `collate` of every example, each followed by its rivals, and for the person-contrast loss
    (`losses.SlotContrastLoss`): `example` (like labels: the index of the example each label belongs to,
    -1 where there is no label) and `group_size` (the examples per turn, its own slot's first).
    Examples without rivals (held-out ones) -> `collate(batch)` as it is.

    Example (collate_packed): [{"input_ids": [5, 6], "labels": [-100, 6], "rivals": [{"input_ids": [7, 6],
      "labels": [-100, 6]}]}] -> input_ids [[5, 6, 7, 6]], labels [[-100, 6, -100, 6]], example [[-1, 0, -1, 1]],
      group_size 2
    """
    import torch

    if "rivals" not in batch[0]:
        return collate(batch)
    flat = [{"input_ids": x["input_ids"], "labels": x["labels"]} for b in batch for x in (b, *b["rivals"])]
    out = collate(flat)
    labels = out["labels"]
    if labels.shape[0] == 1 and len(flat) > 1:  # packed: the examples side by side in one row
        example = torch.tensor([[i for i, x in enumerate(flat) for _ in x["input_ids"]]])
    else:  # padded: an example per row
        example = torch.arange(len(flat)).unsqueeze(1).expand_as(labels).clone()
    example[labels == IGNORE] = -1
    return {**out, "example": example, "group_size": 1 + len(batch[0]["rivals"])}


def head_on_labels(batch: dict) -> dict:
    """The batch, asking the model to run its LM head only where a next token is labelled: `logits_to_keep`
    (the positions t, in any row, whose token t+1 has a label) and `shift_labels` (those tokens, (B, K)),
    which transformers' causal-LM loss reads instead of shifting `labels` itself. The loss is the same;
    the fp32 logits shrink from (B, T, V) to (B, K, V): in a voice's examples most positions are context,
    and SmolLM2's head (576 x 49,152) costs about a fifth of a forward pass per position.

    Example: labels [[-100, -100, 6, 7]] -> logits_to_keep [1, 2], shift_labels [[6, 7]]
      (position 1 predicts the 6 at position 2; position 3, the last, predicts nothing)
    """
    keep, _ = labelled_positions(batch["labels"])
    return {**batch, "logits_to_keep": keep, "shift_labels": batch["labels"][:, 1:][:, keep]}  # (K,), (B, K)


def labelled_positions(labels) -> tuple:
    """The positions t whose next token is labelled in some row (K,), and in which rows (B, K): what
    `logits_to_keep` asks the LM head for, and which of its (B, K) rows carry a label.

    Example: labels [[-100, 5, 6], [-100, -100, 7]] -> [0, 1], [[True, True], [False, True]]
    """
    target = labels[:, 1:] != IGNORE  # (B, T-1): position t predicts token t+1
    keep = target.any(dim=0).nonzero().squeeze(1)  # (K,)
    return keep, target[:, keep]


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


class Passes:
    """The training rows of one pass (`make(epoch)`, cut or cycled to `size`), in batches of similar
    length (`batching.length_batches`), remade for each pass: the Trainer calls `set_epoch` before each."""

    def __init__(self, make, size: int, batch_size: int, seed: int):
        self.make, self.size, self.batch_size, self.seed = make, size, batch_size, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rows = self.make(epoch)
        rows = (rows * -(-self.size // len(rows)))[: self.size]
        self.rows = [r for b in length_batches(rows, self.batch_size, random.Random(self.seed + epoch)) for r in b]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int):
        return self.rows[i]
