"""Using a classifier run: `load_classifier(run).predict(texts)`. No training code is imported here.

    >>> clf = load_classifier("runs/banking77")
    >>> clf.predict(["my card has not arrived"])
    [('card_arrival', {'card_arrival': 0.93, 'card_delivery_estimate': 0.03, ...})]

Each text is shown to the model inside the template it was trained with (run.yaml `template`, e.g.
`Message: {text}\\nThe sender wants to`), cut to the run's `max_length` inside the text, never at the
template's end (where a causal model's head reads).
"""
from __future__ import annotations

import os

from likeme.errors import LikemeError


def encode(tokenizer, texts: list[str], max_length: int | None, template: str = "{text}") -> list[list[int]]:
    """Token ids per text, each text put in `template` first, with no padding token inside (for a causal
    model that is EOS: a text never contains one, so the last non-pad token of a row is its last token).
    Special-token strings typed in a text ("<|im_end|>") are split like any text, never matched.

    A row longer than max_length loses the END OF THE TEXT, never the template's closing words: for a
    causal model the last token is where the head reads, so it must stay the template's last token
    (an encoder's row is cut by its tokenizer, which keeps its [SEP]).
    Example (SmolLM2): ["hello world"] -> [[28120, 905]];
      with template "Message: {text}\\nTopic:" and max_length 5, a long text -> [Message, :, <text...>, Topic, :]
    """
    formatted = [template.replace("{text}", t) for t in texts]
    suffix = template.split("{text}")[-1] if "{text}" in template else ""
    cut_by_tokenizer = max_length is not None and not suffix
    ids = tokenizer(formatted, truncation=cut_by_tokenizer, max_length=max_length if cut_by_tokenizer else None,
                    split_special_tokens=True)["input_ids"]
    pad = tokenizer.pad_token_id
    rows = [[t for t in row if t != pad] or row[:1] for row in ids]
    if max_length is not None and suffix:
        end = [t for t in tokenizer(suffix, add_special_tokens=False, split_special_tokens=True)["input_ids"] if t != pad]
        keep = max(1, max_length - len(end))
        rows = [r if len(r) <= max_length else r[:keep] + end for r in rows]
    return rows


class Classifier:
    """A trained classifier run, ready to predict. Attributes: `labels` (in the order of the model's
    outputs), `model`, `tokenizer`, `meta` (run.yaml)."""

    def __init__(self, model, tokenizer, labels: list[str], max_length: int | None, meta: dict):
        self.model, self.tokenizer, self.labels, self.max_length, self.meta = model, tokenizer, labels, max_length, meta

    def __repr__(self) -> str:
        return f"Classifier(labels={len(self.labels)}, base={self.meta.get('base')!r})"

    def probabilities(self, texts: list[str], batch_size: int = 32):
        """(N, K) softmax probabilities, columns in `self.labels` order."""
        return self.logits(texts, batch_size).softmax(-1)

    def logits(self, texts: list[str], batch_size: int = 32):
        """(N, K) float32 logits (before the softmax), columns in `self.labels` order, on the CPU."""
        import torch

        from likeme.batching import pad

        rows = encode(self.tokenizer, list(texts), self.max_length, self.meta.get("template") or "{text}")
        device = next(self.model.parameters()).device
        out = torch.zeros((len(rows), len(self.labels)))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths: little padding
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s: s + batch_size]
                ids, mask = pad([rows[i] for i in idx], self.tokenizer.pad_token_id)
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                out[idx] = logits.float().cpu()  # (B, K)
        return out

    def predict(self, texts: list[str], batch_size: int = 32) -> list[tuple[str, dict[str, float]]]:
        """For each text: (best label, {label: probability}, most likely first)."""
        probs = self.probabilities(texts, batch_size)
        result = []
        for row in probs.tolist():
            ranked = sorted(zip(self.labels, row), key=lambda kv: -kv[1])
            result.append((ranked[0][0], dict(ranked)))
        return result


def load_classifier(run: str | os.PathLike, *, device=None) -> Classifier:
    """Load a classifier run (its folder, or its name under $LIKEME_HOME/runs), on the GPU when there is one."""
    from likeme import models, runs
    from likeme.use import heads

    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    if runs.used_as(meta) != "classifier":
        raise LikemeError(f"{run} is not a classifier run: train one with likeme train classifier")
    model = heads.load_classifier_model(ref.path / "model", meta.get("backbone", "causal"))
    device = device or models.default_device()
    return Classifier(model.to(device).eval(), models.load_tokenizer(ref), list(meta["labels"]),
                      meta.get("max_length"), meta)
