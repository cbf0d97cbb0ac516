"""Train the top of a model on cached outputs of its frozen bottom, instead of running the bottom again
every epoch.

Why: with `--trainable last-blocks` (one block) on SmolLM2-135M, 29 of 30 blocks are frozen and give
the same output every epoch. Computed once per example, an epoch becomes one block forward + backward
instead of 30 forward + 1 backward (bench/classify.py, all of banking77 on 2 CPU cores: the cache pass
284 s at 35 texts/s, then 233 texts/s per epoch). With `head`, the cache holds the pooled features and
the top is the linear head. The result is the same model as training the plain way (tested).

How (causal LMs of the Llama family, whose base model has `embed_tokens`, `layers`, `norm`,
`rotary_emb` and takes `inputs_embeds`): the bottom and the top are two models of the base model's own
class, built from its config with fewer layers and SHARING its modules, so masks and rotary positions
are computed by transformers as in the full model, and training the top trains the full model in place.
`check` compares the two paths on a batch before any training. Other backbones train the plain way.

    split = FrozenSplit.make(model, "last-blocks", kind="causal", last_blocks=1)
    cached = split.cache([[5, 6, 7], [8]], pad_id=2)   # [tensor (3, H), tensor (1, H)]: input of the last block
    split.top(hidden=..., attention_mask=...).logits   # (B, n_classes), as model(input_ids, ...).logits
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from likeme.batching import pad
from likeme.use.heads import features, head_of, last_token


class TopBlocks(nn.Module):
    """The trainable top of a causal classifier on cached hidden states: the last block(s) (a
    `_stack_view`), the final norm and `score` at the last real token.

    forward(hidden (B, T, H) = input of the first top block, attention_mask (B, T)) -> .logits (B, K)
    """

    def __init__(self, view, score):
        super().__init__()
        self.view, self.score = view, score

    def forward(self, hidden, attention_mask, labels=None):
        h = self.view(inputs_embeds=hidden, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        return SequenceClassifierOutput(logits=self.score(last_token(h, attention_mask)))


class HeadOnly(nn.Module):
    """forward(features (B, H)) -> .logits (B, K): the head on cached pooled features."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, features, labels=None):
        return SequenceClassifierOutput(logits=self.head(features))


class FrozenSplit:
    """A classifier cut where training starts: `bottom` (frozen, run once per example by `cache`) and
    `top` (an nn.Module trained on what the bottom gave)."""

    def __init__(self, model, bottom, top):
        self.model, self.bottom, self.top = model, bottom, top

    @classmethod
    def make(cls, model, trainable: str, kind: str, last_blocks: int = 1) -> FrozenSplit | None:
        """The split for `trainable` ("head" or "last-blocks"), or None when this model cannot be split."""
        if trainable == "head":
            return cls(model, lambda ids, mask: features(model, ids, mask, kind), HeadOnly(head_of(model)))
        if trainable != "last-blocks" or kind != "causal":
            return None
        inner = getattr(model, model.base_model_prefix, None)
        if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
            return None
        first = len(inner.layers) - last_blocks
        below = _stack_view(inner, 0, first, embed=inner.embed_tokens, norm=None)
        above = _stack_view(inner, first, len(inner.layers), embed=None, norm=inner.norm)
        return cls(model, lambda ids, mask: below(input_ids=ids, attention_mask=mask).last_hidden_state,
                   TopBlocks(above, model.score))

    def cache(self, rows: list[list[int]], pad_id: int, batch_size: int = 32, progress=None) -> list:
        """The bottom's output for each row, in the rows' order: (T_i, H) hidden states for last-blocks
        (padding cut off), (H,) pooled features for head. Batches are made of rows of similar length."""
        device = next(self.model.parameters()).device
        out: list = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s: s + batch_size]
                ids, mask = pad([rows[i] for i in idx], pad_id)
                got = self.bottom(ids.to(device), mask.to(device)).float().cpu()  # (B, T, H) or (B, H)
                for j, i in enumerate(idx):
                    out[i] = got[j, : len(rows[i])].clone() if got.dim() == 3 else got[j].clone()
                if progress is not None:
                    progress(len(idx))
        self.model.train(was_training)
        return out

    def check(self, rows: list[list[int]], pad_id: int, atol: float = 1e-4) -> bool:
        """The top on cached inputs gives the full model's logits on these rows (before any training)."""
        device = next(self.model.parameters()).device
        ids, mask = pad(rows, pad_id)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            full = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            cached = self.cache(rows, pad_id, batch_size=len(rows))
            inputs = collate_cached([{"cached": c, "labels": 0} for c in cached])
            via_cache = self.top(**{k: v.to(device) for k, v in inputs.items() if k != "labels"}).logits.float()
        self.model.train(was_training)
        return bool(torch.allclose(full, via_cache, atol=atol, rtol=1e-3))


def _stack_view(inner, start: int, stop: int, *, embed, norm):
    """A model of `inner`'s class running blocks [start, stop) of it, sharing their modules.

    Built from a copy of its config with no blocks and a 1-row embedding (nothing big is allocated), then
    given the shared modules; `norm=None` means no final norm (the output is then the input of block `stop`).
    """
    config = copy.deepcopy(inner.config)
    layer_types = getattr(config, "layer_types", None)
    config.num_hidden_layers, config.vocab_size, config.pad_token_id = 0, 1, None
    if layer_types:
        config.layer_types = []
    view = type(inner)(config)  # no blocks of its own: nothing big to allocate or initialise
    config.num_hidden_layers = stop - start  # the blocks it runs (forward reads it from the config)
    if layer_types:
        config.layer_types = list(layer_types)[start:stop]
    view.layers = nn.ModuleList(list(inner.layers)[start:stop])
    if embed is not None:
        view.embed_tokens = embed
    else:
        view.embed_tokens.requires_grad_(False)  # its own 1-row table, never used: inputs_embeds come in
    view.norm = norm if norm is not None else nn.Identity()
    view.rotary_emb = inner.rotary_emb
    return view.to(next(inner.parameters()).device).train(inner.training)


def collate_cached(batch: list[dict]) -> dict:
    """Cached rows -> a batch for the top: {"hidden" (B, T, H) zero-padded on the right, "attention_mask"
    (B, T)} for last-blocks, {"features" (B, H)} for head; "labels" (B,)."""
    labels = torch.tensor([b["labels"] for b in batch], dtype=torch.long)
    first = batch[0]["cached"]
    if first.dim() == 1:
        return {"features": torch.stack([b["cached"] for b in batch]), "labels": labels}  # (B, H)
    width = max(b["cached"].shape[0] for b in batch)
    hidden = torch.zeros((len(batch), width, first.shape[-1]), dtype=first.dtype)  # (B, T, H)
    mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
    for i, b in enumerate(batch):
        n = b["cached"].shape[0]
        hidden[i, :n] = b["cached"]
        mask[i, :n] = 1
    return {"hidden": hidden, "attention_mask": mask, "labels": labels}
