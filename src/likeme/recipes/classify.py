"""Decide like me: fine-tune a model to put texts into classes (sequence classification).

    likeme train classifier --data tickets.csv --label-column team      # smollm2-135m, last block trained
    likeme train classifier --label-by author --min-messages 50          # who in the store wrote this?
    likeme train classifier --data intents.jsonl --base minilm           # an encoder, mean pooling
    likeme classify RUN "my card has not arrived"                         # label + top 3 probabilities
    likeme classify RUN --data test.csv --json                            # accuracy, macro-F1, confusion

setup (labelled texts from a file or the store, a stratified train/validation split, the backbone with a
classification head, what trains) -> cache (what the frozen part computes, once) -> train (transformers'
Trainer, class-weighted cross-entropy with label smoothing, the new head at its own higher learning rate,
early stopping on validation macro-F1 or loss; Ctrl-C keeps the best epoch so far) -> evaluate
(validation accuracy, macro-F1, confusion matrix) -> save (the run folder describes itself).

Backbones:
- a causal LM (smollm2-135m, any Llama-like *ForCausalLM): transformers' own
  `AutoModelForSequenceClassification`, the LM head replaced by a `hidden -> n_classes` linear `score`
  read at the LAST NON-PADDING token (in a causal LM only the last position has seen the whole text).
  Batches are padded on the right with the EOS token and `config.pad_token_id = eos`; `encode` drops
  eos from texts, so "the rightmost token that is not pad", which transformers looks for, is the last
  token of the text (tests/test_classify.py checks it against a hand-built batch).
- an encoder (`minilm`, any BERT-like model): the mean of the token states over the attention mask (how
  all-MiniLM-L6-v2 was trained to pool) + a linear head: `MeanPoolClassifier`, a thin nn.Module.

What trains (--trainable): `last-block` (causal default: the last transformer block, the final norm and
the head, the set-up of Raschka's LLMs-from-scratch ch. 6), `head`, `all` (encoder default), or `lora`
(PEFT adapters on every linear layer, the head trained in full).

The frozen-part cache: with `last-block` or `head`, everything below the trainable part is frozen and
gives the same output every epoch, so it is computed ONCE per example (batched, sorted by length, under
no_grad) and only the top trains, on the cached hidden states (`FrozenSplit`). On SmolLM2-135M with
last-block that turns each epoch from 30 blocks forward + 1 backward into 1 forward + 1 backward:
about 10x less compute per epoch; the one cache pass costs what one epoch of plain inference costs
(bench/classify.py measures it). The result is the same model as training the plain way (a test
trains both and compares them); --no-cache trains the plain way.

Run folder:
    run.yaml         base, task: classification, recipe: classify, backbone, pooling, labels, config
    model/           config.json, model.safetensors, tokenizer (encoder: + head.safetensors): the whole
                     model, so that `load_classifier(run)` needs nothing but the folder
    metrics.jsonl    one line per epoch: epoch, train_loss, val_loss, val_accuracy, val_macro_f1,
                     examples_seen, seconds (since training started)
    metrics.json     val_accuracy, val_macro_f1, val_loss, examples, best_epoch, seconds, ...
    plots/loss.png   train and validation loss by epoch
    plots/confusion.png  the validation confusion matrix
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from likeme.errors import LikemeError

TRAINABLE = ["last-block", "all", "head", "lora"]
# A causal LM's head reads the last token. After a bare text that is just the text's last word; after a
# prompt that asks what comes next about the whole message, the last token's state sums the message up
# (PromptEOL, Jiang et al. 2023, "Scaling Sentence Embeddings with Large Language Models"). Measured on
# banking77 with SmolLM2-135M (10 texts per intent, a linear probe on the frozen last-token states, 231
# test texts): bare text 0.54, PromptEOL's 'This sentence : "{text}" means in one word:"' 0.69,
# this template 0.73 (TF-IDF + logistic regression on the same texts: about 0.68). The words after {text} are
# never cut (`encode`).
DEFAULT_TEMPLATE = "Message: {text}\nThe sender wants to"
MAX_LENGTH_CAP = 512  # tokens: longer texts are cut when --max-length is not given (chat messages rarely are)


@dataclass
class ClassifyConfig:
    data: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Labelled texts: a CSV, TSV or JSONL file with a header (or keys)."})
    text_column: str = field(default="text", metadata={"help": "The column of --data that holds the text."})
    label_column: str = field(default="label", metadata={"help": "The column of --data that holds the label."})
    db: str | None = field(default=None, metadata={
        "help": "The store --label-by reads (default: $LIKEME_HOME/likeme.db)."})
    label_by: str | None = field(default=None, metadata={
        "choices": ["author"], "help": "Take the texts from the store instead of --data: author = who wrote each message."})
    min_messages: int = field(default=10, metadata={
        "help": "--label-by author: leave out people with fewer text messages (too few to learn or to check)."})
    base: str = field(default="smollm2-135m", metadata={
        "help": "Backbone: smollm2-135m (causal LM), minilm (encoder), a local folder, a run or a Hugging Face id."})
    trainable: str | None = field(default=None, metadata={
        "choices": TRAINABLE,
        "help": "What trains: the last block + final norm + head, everything, the head only, or LoRA + head "
                "(default: last-block for a causal LM, all for an encoder)."})
    template: str | None = field(default=None, metadata={
        "help": "How a text is shown to the model, {text} standing for it (default for a causal LM: "
                "'Message: {text}\\nThe sender wants to', so that its last token sums the message up; "
                "for an encoder: '{text}')."})
    cache: bool = field(default=True, metadata={
        "help": "last-block / head: compute the frozen part once per example, not every epoch (same model, faster)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (16: the QLoRA paper's sweet spot for small data)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scale numerator (2 x rank, the common choice)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    epochs: float = field(default=10.0, metadata={
        "help": "Passes over the training texts (early stopping may end sooner); cheap with the cache "
                "(banking77, 40 texts per intent: test accuracy still rises until epoch 8-9)."})
    max_steps: int | None = field(default=None, metadata={
        "help": "Stop after this many optimizer steps (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate of the pretrained part that trains (default: lora 2e-4, last-block 2e-4, "
                "all 5e-5 encoder / 2e-5 causal; head: --head-lr)."})
    head_lr: float = field(default=2e-3, metadata={
        "help": "Peak learning rate of the new head, which starts random (ULMFiT's discriminative rates: "
                "on banking77, 40 texts per intent, last-block reached 0.64 test accuracy in 4 epochs with "
                "one rate of 1e-4 for all, 0.81 with the head at 1e-3)."})
    label_smoothing: float = field(default=0.1, metadata={
        "help": "Share of each target spread over the other labels (Szegedy et al. 2016): the training loss "
                "of a 135M model on a few dozen texts per label reaches ~0 within 5 epochs otherwise; "
                "+1 point of banking77 test accuracy."})
    batch_size: int = field(default=16, metadata={"help": "Texts per optimizer step."})
    max_length: int | None = field(default=None, metadata={
        "help": f"Tokens kept per text (default: the longest training text, at most {MAX_LENGTH_CAP})."})
    val_fraction: float = field(default=0.1, metadata={
        "help": "Share of each label held out for validation (early stopping, metrics.json)."})
    select_by: str = field(default="macro_f1", metadata={
        "choices": ["macro_f1", "loss"],
        "help": "Validation figure that picks the best epoch and stops early (macro-F1: every label counts the same)."})
    patience: int = field(default=3, metadata={
        "help": "Stop after this many epochs without a better validation figure (3: a small validation set "
                "is noisy, and with a decaying rate later epochs still gain)."})
    class_weights: bool = field(default=True, metadata={
        "help": "Weight the loss by n / (k * count) per label, so rare labels count as much as common ones."})
    seed: int = field(default=0, metadata={"help": "Random seed (split, head init, data order)."})
    out: str | None = field(default=None, metadata={
        "help": "Run folder (default: $LIKEME_HOME/runs/<data file name>-classifier)."})

    def learning_rate(self, backbone: str) -> float:
        """The peak learning rate: --lr, else by what trains (a fresh head needs more than pretrained blocks)."""
        if self.lr is not None:
            return self.lr
        if self.trainable == "head":
            return self.head_lr
        return {"lora": 2e-4, "last-block": 2e-4}.get(self.trainable, 5e-5 if backbone == "encoder" else 2e-5)


# ---------------------------------------------------------------------------------------------
# Data: labelled texts from a file or the store, the split, the class weights


def read_table(path: str | Path, text_column: str = "text", label_column: str | None = "label",
               *, need_labels: bool = True) -> tuple[list[str], list[str] | None]:
    """Texts and labels from a CSV, TSV or JSONL file with a header row (JSONL: one object per line).

    Rows whose text (or, when labels are read, label) is empty are skipped. Labels come back as
    strings (`1` in JSONL -> "1"). With `need_labels=False` a file without the label column gives
    `(texts, None)`. CSV is read with the csv module: CRLF line ends and newlines inside quoted
    fields are fine.

    Example: a CSV `text,category\\r\\n"Hi,\\nthere",greeting\\r\\n` -> (["Hi,\\nthere"], ["greeting"])
    """
    path = Path(path)
    rows = _rows(path)
    columns = list(rows[0].keys()) if rows else []
    if text_column not in columns:
        raise LikemeError(f"{path}: no column {text_column!r} (columns: {', '.join(map(str, columns)) or 'none'}): "
                          f"pass --text-column NAME")
    has_labels = label_column is not None and label_column in columns
    if not has_labels and need_labels:
        raise LikemeError(f"{path}: no column {label_column!r} (columns: {', '.join(map(str, columns))}): "
                          f"pass --label-column NAME")
    texts, labels = [], []
    for row in rows:
        text = row.get(text_column)
        text = "" if text is None else str(text)
        label = row.get(label_column) if has_labels else None
        label = "" if label is None else str(label).strip()
        if not text.strip() or (has_labels and not label):
            continue
        texts.append(text)
        labels.append(label)
    if not texts:
        raise LikemeError(f"{path}: no rows with a text{' and a label' if has_labels else ''}")
    return texts, labels if has_labels else None


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise LikemeError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: Excel's byte-order mark
            if suffix in (".jsonl", ".ndjson", ".json"):
                return _json_rows(path, f)
            head = f.read(4096)
            f.seek(0)
            if suffix not in (".csv", ".tsv", ".tab") and head.lstrip().startswith(("{", "[")):
                return _json_rows(path, f)
            first = head.splitlines()[0] if head else ""
            delimiter = "\t" if suffix in (".tsv", ".tab") or (suffix != ".csv" and "\t" in first) else ","
            return list(csv.DictReader(f, delimiter=delimiter))
    except UnicodeDecodeError as e:
        raise LikemeError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8") from None
    except csv.Error as e:
        raise LikemeError(f"{path}: not a readable CSV ({e})") from None


def _json_rows(path: Path, f) -> list[dict]:
    text = f.read()
    if text.lstrip().startswith("["):  # a JSON array of objects works too
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise LikemeError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LikemeError(f"{path}: line {n}: invalid JSON ({e.msg}): one object per line") from None
    if not all(isinstance(r, dict) for r in rows):
        raise LikemeError(f"{path}: each line (or item) must be a JSON object like {{\"text\": ..., \"label\": ...}}")
    return rows


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


# ---------------------------------------------------------------------------------------------
# Backbones: a causal LM or an encoder with a classification head


def backbone_kind(base: str) -> str:
    """'causal' for a decoder-only LM (a *ForCausalLM or a classifier built on one), 'encoder' otherwise.

    Example: "smollm2-135m" -> "causal"; "minilm" (a BertModel) -> "encoder"
    """
    from likeme import models

    ref = models.resolve(base)
    if ref.task == "causal-lm":
        return "causal"
    if ref.task == "sentence-embedding":
        return "encoder"
    try:
        config = json.loads((models.weights_path(ref) / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise LikemeError(f"{base}: cannot read its config.json ({e})") from None
    if config.get("is_encoder_decoder"):
        raise LikemeError(f"{base} is an encoder-decoder model: use a causal LM (smollm2-135m) or an encoder (minilm)")
    archs = config.get("architectures") or []
    return "causal" if any(a.endswith("ForCausalLM") for a in archs) or config.get("is_decoder") else "encoder"


def load_backbone(base: str, labels: list[str]):
    """(model, tokenizer, kind) for a new classifier over `labels`: the pretrained body, a fresh head.

    The causal model pads with its EOS token on the right; `config.pad_token_id` is set to it, which is
    what LlamaForSequenceClassification needs to find the last real token of each row.
    """
    from likeme import models

    kind = backbone_kind(base)
    folder = models.weights_path(base)
    tok = models.load_tokenizer(base)
    id2label = dict(enumerate(labels))
    if kind == "causal":
        from transformers import AutoModelForSequenceClassification

        if tok.eos_token_id is None:
            raise LikemeError(f"{base}: its tokenizer has no EOS token to pad with: use another base model")
        tok.pad_token = tok.eos_token
        tok.padding_side = "right"
        model = _quiet_load(AutoModelForSequenceClassification.from_pretrained, folder, num_labels=len(labels),
                            id2label=id2label, label2id={v: k for k, v in id2label.items()},
                            pad_token_id=tok.eos_token_id)
        model.config.use_cache = False  # no KV cache in a classifier (and none in the eval outputs)
    else:
        from transformers import AutoModel

        if tok.pad_token_id is None:
            raise LikemeError(f"{base}: its tokenizer has no padding token: use another base model")
        encoder = _quiet_load(AutoModel.from_pretrained, folder)
        encoder.config.id2label, encoder.config.label2id = id2label, {v: k for k, v in id2label.items()}
        model = _parts().MeanPoolClassifier(encoder, len(labels))
    return model, tok, kind


def _quiet_load(loader, folder, **kwargs):
    """from_pretrained without the load report about the (expectedly) fresh head or unused LM head."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return loader(str(folder), **kwargs)
    except Exception as e:
        raise LikemeError(f"{folder}: could not load the model ({str(e).splitlines()[0][:300]})") from e
    finally:
        hf_logging.set_verbosity(level)


def encode(tokenizer, texts: list[str], max_length: int | None, template: str = "{text}") -> list[list[int]]:
    """Token ids per text, each text put in `template` first, with no padding token inside (for a causal
    model that is EOS: a text never contains one, so the last non-pad token of a row is its last token).
    Special-token strings typed in a text ("<|im_end|>") are split like any text, never matched.

    A row longer than max_length loses the END OF THE TEXT, never the template's closing words: for a
    causal model the last token is where the head reads, so it must stay the template's last token
    (an encoder's row is cut by its tokenizer, which keeps its [SEP]).
    Example (SmolLM2): ["hello world"] -> [[28120, 905]];
      with template "Message: {text}\nTopic:" and max_length 5, a long text -> [Message, :, <text...>, Topic, :]
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


def pad_batch(rows: list[list[int]], pad_id: int) -> dict:
    """Right padding: [[5, 6, 7], [8]] (pad 2) -> input_ids [[5, 6, 7], [8, 2, 2]], attention_mask [[1, 1, 1], [1, 0, 0]]"""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # (B, T)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def collate_plain(batch: list[dict], pad_id: int) -> dict:
    """[{"input_ids": [...], "labels": 3}, ...] -> pad_batch(...) + "labels" (B,)."""
    import torch

    return {**pad_batch([b["input_ids"] for b in batch], pad_id),
            "labels": torch.tensor([b["labels"] for b in batch], dtype=torch.long)}


def blocks_of(model) -> list:
    """The transformer blocks, bottom to top, of a classifier (or PEFT-wrapped one): Llama's
    `model.layers`, BERT's `encoder.layer`, GPT-2's `transformer.h`."""
    model = getattr(model, "base_model", model)
    model = getattr(model, "model", model) if hasattr(model, "peft_config") else model
    for holder in (getattr(model, "model", None), getattr(model, "encoder", None), getattr(model, "transformer", None),
                   getattr(getattr(model, "encoder", None), "encoder", None), model):
        for attr in ("layers", "layer", "h", "blocks"):
            if holder is not None and hasattr(holder, attr) and len(getattr(holder, attr)):
                return list(getattr(holder, attr))
    raise LikemeError("cannot find the transformer blocks of this model: use --trainable all, head or lora")


def head_of(model):
    """The classification head: `score` (transformers' causal classifiers) or `head` (MeanPoolClassifier)."""
    return getattr(model, "score", None) or model.head


def make_trainable(model, trainable: str, cfg: ClassifyConfig, kind: str):
    """Freeze all but what --trainable names; `lora` wraps the model in PEFT adapters (the head trained in
    full through `modules_to_save`). Returns the model to train."""
    if trainable == "lora":
        from peft import LoraConfig, get_peft_model

        head = "score" if kind == "causal" else "head"
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=_lora_targets(model, head), modules_to_save=[head],
                          task_type="SEQ_CLS" if kind == "causal" else None)
        return get_peft_model(model, lora)
    for p in model.parameters():
        p.requires_grad_(trainable == "all")
    if trainable in ("last-block", "head"):
        parts = [head_of(model)]
        if trainable == "last-block":
            parts.append(blocks_of(model)[-1])
            norm = getattr(getattr(model, "model", None), "norm", None)  # the final norm, before the head
            if norm is not None:
                parts.append(norm)
        for part in parts:
            for p in part.parameters():
                p.requires_grad_(True)
    return model


def param_groups(model, lr: float, head_lr: float) -> list[dict]:
    """The trainable parameters in two optimizer groups: the head (a module named `score` or `head`,
    PEFT's trained copy of it included) at head_lr, the rest at lr.

    Example: last-block on SmolLM2 -> [{"params": [block 29's, final norm], "lr": 2e-4},
                                       {"params": [score.weight], "lr": 2e-3}]
    """
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if {"score", "head"} & set(name.split(".")) else body).append(p)
    return [g for g in ({"params": body, "lr": lr}, {"params": head, "lr": head_lr}) if g["params"]]


def _lora_targets(model, head: str) -> list[str]:
    """Names of every nn.Linear except the head (and BERT's unused pooler)."""
    import torch

    names = {n.split(".")[-1] for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and not n.startswith((head, "encoder.pooler"))}
    return sorted(names)


# ---------------------------------------------------------------------------------------------
# The frozen-part cache


class FrozenSplit:
    """A classifier cut where training starts: `bottom` (frozen, run once per example by `cache`) and
    `top` (an nn.Module trained on what the bottom gave).

    Why: with --trainable last-block, 29 of SmolLM2-135M's 30 blocks are frozen; the plain path runs them
    forward again in every epoch for the same output. Caching their output turns an epoch into one
    block forward + backward (bench/classify.py, all of banking77 on 2 CPU cores: the cache pass 284 s at
    35 texts/s, then 233 texts/s per epoch). For `head` the cache holds the pooled features and the top
    is the linear head.

    How (causal LMs of the Llama family, whose base model has `embed_tokens`, `layers`, `norm`,
    `rotary_emb` and takes `inputs_embeds` as they are): the bottom and the top are two models of the
    base model's own class, built from its config with fewer layers and SHARING its modules, so the
    masks and rotary positions are computed by transformers as in the full model, and training the top
    trains the full model in place (nothing to reassemble). Other backbones train the plain way with
    last-block (`split` returns None). `check` compares the two paths on a batch before any training;
    the frozen part runs in eval mode (no dropout: Llama has none, so the result is the same model).

    Example:
      split = FrozenSplit.make(model, "last-block")
      cached = split.cache([[5, 6, 7], [8]], pad_id=2)   # [tensor (3, H), tensor (1, H)]: input of the last block
      split.top(hidden=..., attention_mask=...).logits   # (B, n_classes), as model(input_ids, ...).logits
    """

    def __init__(self, model, trainable: str, bottom, top):
        self.model, self.trainable, self.bottom, self.top = model, trainable, bottom, top

    @classmethod
    def make(cls, model, trainable: str, kind: str) -> FrozenSplit | None:
        parts = _parts()
        if trainable == "head":
            return cls(model, trainable, lambda ids, mask: parts.features(model, ids, mask, kind),
                       parts.HeadOnly(head_of(model)))
        if trainable != "last-block" or kind != "causal":
            return None
        inner = getattr(model, model.base_model_prefix, None)
        if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
            return None
        first = len(inner.layers) - 1
        below = _stack_view(inner, 0, first, embed=inner.embed_tokens, norm=None)
        above = _stack_view(inner, first, len(inner.layers), embed=None, norm=inner.norm)
        return cls(model, trainable, lambda ids, mask: below(input_ids=ids, attention_mask=mask).last_hidden_state,
                   parts.TopBlocks(above, model.score))

    def cache(self, rows: list[list[int]], pad_id: int, batch_size: int = 32, progress=None) -> list:
        """The bottom's output for each row, in the rows' order: (T_i, H) hidden states for last-block
        (padding cut off), (H,) pooled features for head. Batches are made of rows of similar length."""
        import torch

        device = next(self.model.parameters()).device
        out: list = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s: s + batch_size]
                batch = {k: v.to(device) for k, v in pad_batch([rows[i] for i in idx], pad_id).items()}
                got = self.bottom(batch["input_ids"], batch["attention_mask"]).float().cpu()  # (B, T, H) or (B, H)
                for j, i in enumerate(idx):
                    out[i] = got[j, : len(rows[i])].clone() if got.dim() == 3 else got[j].clone()
                if progress is not None:
                    progress(len(idx))
        self.model.train(was_training)
        return out

    def check(self, rows: list[list[int]], pad_id: int, atol: float = 1e-4) -> bool:
        """The top on cached inputs gives the full model's logits on these rows (before any training)."""
        import torch

        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in pad_batch(rows, pad_id).items()}
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            full = self.model(**batch).logits.float()
            cached = self.cache(rows, pad_id, batch_size=len(rows))
            inputs = collate_cached([{"cached": c, "labels": 0} for c in cached])
            inputs = {k: v.to(device) for k, v in inputs.items() if k != "labels"}
            via_cache = self.top(**inputs).logits.float()
        self.model.train(was_training)
        return bool(torch.allclose(full, via_cache, atol=atol, rtol=1e-3))


def _stack_view(inner, start: int, stop: int, *, embed, norm):
    """A model of `inner`'s class running blocks [start, stop) of it, sharing their modules.

    Built from a copy of its config with no blocks and a 1-row embedding (nothing big is allocated), then
    given the shared modules; `norm=None` means no final norm (the output is then the input of block `stop`).
    """
    import torch

    config = copy.deepcopy(inner.config)
    layer_types = getattr(config, "layer_types", None)
    config.num_hidden_layers, config.vocab_size, config.pad_token_id = 0, 1, None
    if layer_types:
        config.layer_types = []
    view = type(inner)(config)  # no blocks of its own: nothing big to allocate or initialise
    config.num_hidden_layers = stop - start  # the blocks it runs (forward reads it from the config)
    if layer_types:
        config.layer_types = list(layer_types)[start:stop]
    view.layers = torch.nn.ModuleList(list(inner.layers)[start:stop])
    if embed is not None:
        view.embed_tokens = embed
    else:
        view.embed_tokens.requires_grad_(False)  # its own 1-row table, never used: inputs_embeds come in
    view.norm = norm if norm is not None else torch.nn.Identity()
    view.rotary_emb = inner.rotary_emb
    return view.to(next(inner.parameters()).device).train(inner.training)


def collate_cached(batch: list[dict]) -> dict:
    """Cached rows -> a batch for the top: {"hidden" (B, T, H) zero-padded on the right, "attention_mask"
    (B, T)} for last-block, {"features" (B, H)} for head; "labels" (B,)."""
    import torch

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


# ---------------------------------------------------------------------------------------------
# The recipe


def train_classifier(cfg: ClassifyConfig, *, progress: bool = True, callbacks=()) -> Path:
    """Train, evaluate and save a classifier; returns the run folder.

    Example: train_classifier(ClassifyConfig(data="banking77/train.csv", label_column="category"))
      -> Path("~/.likeme/runs/train-classifier") with run.yaml, model/, metrics.json(l), plots/
    """
    from likeme import datasets, models, plots
    from likeme.config import to_dict
    from likeme.store import Store

    # -- setup -----------------------------------------------------------------------------------
    if bool(cfg.data) == bool(cfg.label_by):
        raise LikemeError("say where the labelled texts are: --data FILE, or --label-by author (texts from the store)")
    if cfg.data:
        texts, labels = read_table(cfg.data, cfg.text_column, cfg.label_column)
        source = str(cfg.data)
        default_name = f"{Path(cfg.data).stem}-classifier"
    else:
        with Store(cfg.db) as store:
            texts, labels = datasets.author_examples(store, cfg.min_messages)
        source = f"store:{cfg.db or 'default'} (label = author)"
        default_name = "authors-classifier"
    names = label_order(labels)
    if len(names) < 2:
        raise LikemeError(f"{source}: every text has the label {names[0]!r}: a classifier needs at least two labels")
    run = Path(cfg.out) if cfg.out else models.runs_dir() / default_name
    if run.exists() and any(run.iterdir()):
        raise LikemeError(f"{run} already exists: pass --out for a new run, or delete it")

    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

    set_seed(cfg.seed)
    model, tok, kind = load_backbone(cfg.base, names)
    cfg = dataclasses.replace(cfg, trainable=cfg.trainable or ("last-block" if kind == "causal" else "all"),
                              template=cfg.template or (DEFAULT_TEMPLATE if kind == "causal" else "{text}"))
    if "{text}" not in cfg.template:
        raise LikemeError(f"--template {cfg.template!r} has no {{text}}: say where the text goes, e.g. 'Message: {{text}}'")
    y = [names.index(label) for label in labels]
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
    max_length = cfg.max_length or min(
        MAX_LENGTH_CAP, getattr(tok, "model_max_length", MAX_LENGTH_CAP) or MAX_LENGTH_CAP,
        max(len(r) for r in encode(tok, [texts[i] for i in train_idx], None, cfg.template)))
    rows = encode(tok, texts, max_length, cfg.template)
    cuda = torch.cuda.is_available()
    if cuda:
        model = model.to("cuda")
    model = make_trainable(model, cfg.trainable, cfg, kind)
    run.mkdir(parents=True, exist_ok=True)
    meta = {"base": cfg.base, "task": "classification", "recipe": "classify", "backbone": kind,
            "pooling": "last-token" if kind == "causal" else "mean", "labels": names, "source": source,
            "text_column": cfg.text_column if cfg.data else "text", "label_column": cfg.label_column if cfg.data else "author",
            "template": cfg.template, "max_length": max_length, "status": "training", "config": to_dict(cfg)}
    models.write_run_meta(run, meta)

    # -- cache: the frozen part, once ------------------------------------------------------------
    split = FrozenSplit.make(model, cfg.trainable, kind) if cfg.cache and cfg.trainable in ("last-block", "head") else None
    if split is not None and not split.check([rows[i] for i in train_idx[:8]], tok.pad_token_id):
        _say(progress, f"the frozen-part cache does not reproduce {cfg.base}'s own forward pass: training the plain way")
        split = None
    started = time.time()
    if split is not None:
        bar = _bar(progress, len(rows), "caching the frozen part", "text")
        cached = split.cache(rows, tok.pad_token_id, batch_size=max(cfg.batch_size, 32),
                             progress=bar.update if bar else None)
        if bar:
            bar.close()
        # "input_ids" stays in each example only for its length (the length-grouped sampler reads it)
        examples = [{"input_ids": rows[i], "cached": cached[i], "labels": y[i]} for i in range(len(rows))]
        train_model, collate = split.top, collate_cached
    else:
        examples = [{"input_ids": rows[i], "labels": y[i]} for i in range(len(rows))]
        train_model, collate = model, functools.partial(collate_plain, pad_id=tok.pad_token_id)
    cache_seconds = time.time() - started
    train_set, val_set = [examples[i] for i in train_idx], [examples[i] for i in val_idx]

    # -- train -----------------------------------------------------------------------------------
    weights = class_weights([y[i] for i in train_idx], len(names)) if cfg.class_weights else None
    steps_per_epoch = max(1, math.ceil(len(train_set) / cfg.batch_size))
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    has_val = bool(val_set)
    args = TrainingArguments(
        output_dir=str(run / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=max(cfg.batch_size, 32),
        learning_rate=cfg.learning_rate(kind),
        lr_scheduler_type="linear",
        warmup_steps=max(1, total // 20),  # 5%: the head starts random, its first gradients are large
        weight_decay=0.0,
        logging_strategy="epoch",
        eval_strategy="epoch" if has_val else "no",
        save_strategy="no",  # the best epoch's weights are kept in memory by EpochMetrics, not on disk
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding
        label_names=["labels"],
        bf16=cuda,
        use_cpu=not cuda,
        seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    loss = _parts().WeightedCrossEntropy(weights, cfg.label_smoothing)
    optimizer = torch.optim.AdamW(param_groups(train_model, cfg.learning_rate(kind), cfg.head_lr), weight_decay=0.0)
    epochs_cb = _parts().EpochMetrics(run / "metrics.jsonl", len(train_set), total, cfg.select_by, cfg.patience,
                                      progress, has_val)
    trainer = Trainer(model=train_model, args=args, train_dataset=train_set, eval_dataset=val_set or None,
                      data_collator=collate, compute_loss_func=loss, compute_metrics=_accuracy_f1,
                      callbacks=[epochs_cb, *callbacks], optimizers=(optimizer, None))  # Trainer adds the schedule
    trainer.remove_callback(PrinterCallback)
    set_seed(cfg.seed)  # the same data order whichever path (cached or plain) trains
    interrupted = False
    try:
        trainer.train()
    except KeyboardInterrupt:  # Ctrl-C: keep the best epoch so far (else what was trained), evaluate and save it
        interrupted = True
        epochs_cb.close()
        _say(True, f"interrupted at step {trainer.state.global_step}: saving the best epoch so far "
                   "(Ctrl-C again quits without saving)")
        epochs_cb.on_train_end(args, trainer.state, None, model=train_model)
    epochs_cb.close()
    train_seconds = time.time() - started - cache_seconds

    # -- evaluate --------------------------------------------------------------------------------
    from likeme.evaluate import classification_metrics

    metrics = {"labels": len(names), "train_examples": len(train_set), "val_examples": len(val_set),
               "trainable": cfg.trainable, "cached": split is not None, "max_length": max_length,
               "steps": trainer.state.global_step, "epochs": round(trainer.state.epoch or 0, 4),
               "best_epoch": epochs_cb.best_epoch, "cache_seconds": round(cache_seconds, 1),
               "train_seconds": round(train_seconds, 1),
               "examples_per_s": round(epochs_cb.examples_seen / train_seconds, 1) if train_seconds > 0 else None,
               **({"interrupted": True} if interrupted else {})}
    confusion = None
    if has_val:
        pred = trainer.predict(val_set)
        guess = pred.predictions.argmax(-1).tolist()
        report = classification_metrics([names[i] for i in pred.label_ids.tolist()], [names[i] for i in guess], names)
        metrics = {"val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
                   "val_loss": round(float(pred.metrics["test_loss"]), 4), **metrics}
        confusion = report["confusion"]

    # -- save ------------------------------------------------------------------------------------
    if cfg.trainable == "lora":
        model = model.merge_and_unload()  # a plain model: loads with no PEFT, as fast as the base
    model = model.float().cpu().eval()
    if kind == "causal":
        model.save_pretrained(run / "model")
    else:
        model.save(run / "model")
    tok.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    plots.curves(run, [("train_loss", "train", "o-"), ("val_loss", "validation", "o-")], x="epoch",
                 ylabel="cross-entropy (class-weighted)")
    if confusion is not None:
        plots.confusion(confusion, names, run / "plots" / "confusion.png", title=f"{run.name}: validation")
    meta["status"] = "done"
    models.write_run_meta(run, meta)
    return run


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr)


def _bar(progress: bool, total: int, desc: str, unit: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


def _accuracy_f1(p) -> dict:
    """Trainer's compute_metrics: EvalPrediction(logits (N, K), labels (N,)) -> accuracy, macro-F1."""
    from sklearn.metrics import f1_score

    guess = p.predictions.argmax(-1)
    return {"accuracy": float((guess == p.label_ids).mean()),
            "macro_f1": float(f1_score(p.label_ids, guess, average="macro", zero_division=0))}


# ---------------------------------------------------------------------------------------------
# Using a run


class Classifier:
    """A trained classifier run, ready to predict: `load_classifier(run)` makes one.

    >>> clf = load_classifier("runs/banking77")
    >>> clf.predict(["my card has not arrived"])
    [('card_arrival', {'card_arrival': 0.93, 'card_delivery_estimate': 0.03, ...})]
    """

    def __init__(self, model, tokenizer, labels: list[str], max_length: int | None, meta: dict):
        self.model, self.tokenizer, self.labels, self.max_length, self.meta = model, tokenizer, labels, max_length, meta

    def probabilities(self, texts: list[str], batch_size: int = 32):
        """(N, K) softmax probabilities, columns in `self.labels` order."""
        import torch

        rows = encode(self.tokenizer, list(texts), self.max_length, self.meta.get("template") or "{text}")
        device = next(self.model.parameters()).device
        out = torch.zeros((len(rows), len(self.labels)))
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths: little padding
        with torch.no_grad():
            for s in range(0, len(order), batch_size):
                idx = order[s: s + batch_size]
                batch = {k: v.to(device) for k, v in pad_batch([rows[i] for i in idx], self.tokenizer.pad_token_id).items()}
                out[idx] = self.model(**batch).logits.float().softmax(-1).cpu()  # (B, K)
        return out

    def predict(self, texts: list[str], batch_size: int = 32) -> list[tuple[str, dict[str, float]]]:
        """For each text: (best label, {label: probability}, most likely first)."""
        probs = self.probabilities(texts, batch_size)
        result = []
        for row in probs.tolist():
            ranked = sorted(zip(self.labels, row), key=lambda kv: -kv[1])
            result.append((ranked[0][0], dict(ranked)))
        return result


def load_classifier(run) -> Classifier:
    """Load a classifier run (its folder, or its name under $LIKEME_HOME/runs), on the GPU when there is one."""
    import torch
    from likeme import models

    ref = models.resolve(run)
    meta = models.read_run_meta(ref.path) if ref.kind == "run" else None
    if not meta or meta.get("recipe") != "classify":
        raise LikemeError(f"{run} is not a classifier run: train one with likeme train classifier")
    folder = ref.path / "model"
    tok = models.load_tokenizer(ref)
    if meta.get("backbone") == "encoder":
        model = _parts().MeanPoolClassifier.load(folder)
    else:
        from transformers import AutoModelForSequenceClassification

        model = _quiet_load(AutoModelForSequenceClassification.from_pretrained, folder)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return Classifier(model.eval(), tok, list(meta["labels"]), meta.get("max_length"), meta)


# ---------------------------------------------------------------------------------------------
# Plots


# ---------------------------------------------------------------------------------------------
@functools.cache
def _parts():
    """The torch modules and the Trainer callback, made on first use so that importing this module (for its
    config, by the CLI) does not import torch or transformers."""
    import types

    import torch
    from torch import nn
    from transformers import TrainerCallback
    from transformers.modeling_outputs import SequenceClassifierOutput

    class MeanPoolClassifier(nn.Module):
        """An encoder, the mean of its token states over the attention mask, and a linear head.

        forward(input_ids (B, T), attention_mask (B, T)) -> .logits (B, n_classes)
        Saved as the encoder's own `save_pretrained` folder + head.safetensors.
        """

        def __init__(self, encoder, n_classes: int):
            super().__init__()
            self.encoder = encoder
            self.head = nn.Linear(encoder.config.hidden_size, n_classes)
            nn.init.normal_(self.head.weight, std=getattr(encoder.config, "initializer_range", 0.02))
            nn.init.zeros_(self.head.bias)

        def features(self, input_ids, attention_mask):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
            m = attention_mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            return (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)

        def forward(self, input_ids, attention_mask, labels=None):
            return SequenceClassifierOutput(logits=self.head(self.features(input_ids, attention_mask)))

        def save(self, folder):
            from safetensors.torch import save_file

            self.encoder.save_pretrained(folder)
            save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(Path(folder) / "head.safetensors"))

        @classmethod
        def load(cls, folder):
            from safetensors.torch import load_file
            from transformers import AutoModel

            encoder = _quiet_load(AutoModel.from_pretrained, folder)
            head = load_file(str(Path(folder) / "head.safetensors"))
            model = cls(encoder, head["weight"].shape[0])
            model.head.load_state_dict(head)
            return model

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
            last = attention_mask.sum(-1) - 1  # (B,): right padding, so the last 1 of each row
            return SequenceClassifierOutput(logits=self.score(h[torch.arange(h.shape[0], device=h.device), last]))

    class HeadOnly(nn.Module):
        """forward(features (B, H)) -> .logits (B, K): the head on cached pooled features."""

        def __init__(self, head):
            super().__init__()
            self.head = head

        def forward(self, features, labels=None):
            return SequenceClassifierOutput(logits=self.head(features))

    def features(model, input_ids, attention_mask, kind: str):
        """What the head reads (B, H): the last real token's final state (causal), the mean (encoder)."""
        if kind == "encoder":
            return model.features(input_ids, attention_mask)
        h = getattr(model, model.base_model_prefix)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        last = attention_mask.sum(-1) - 1  # (B,)
        return h[torch.arange(h.shape[0], device=h.device), last]

    class WeightedCrossEntropy(nn.Module):
        """Cross-entropy with a weight per label (`class_weights`) and label smoothing, as Trainer's
        compute_loss_func: (outputs with .logits (B, K), labels (B,)) -> the weighted mean loss.
        weights=None, smoothing=0: plain cross-entropy."""

        def __init__(self, weights: list[float] | None, smoothing: float = 0.0):
            super().__init__()
            self.weights = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
            self.smoothing = smoothing

        def forward(self, outputs, labels, num_items_in_batch=None):
            logits = outputs["logits"].float()
            w = self.weights.to(logits.device) if self.weights is not None else None
            return nn.functional.cross_entropy(logits, labels.to(logits.device), weight=w,
                                               label_smoothing=self.smoothing)

    class EpochMetrics(TrainerCallback):
        """Per epoch: a metrics.jsonl line and a progress line; keeps the best epoch's trainable weights
        in memory (by validation macro-F1 or loss), stops after `patience` epochs without a better one,
        and puts the best weights back when training ends. Trainer's own early stopping needs a checkpoint
        on disk per epoch (540 MB for SmolLM2-135M); only the trainable tensors change, so they are enough."""

        def __init__(self, path: Path, n_train: int, total_steps: int, select_by: str, patience: int,
                     progress: bool, has_val: bool):
            self.path, self.n_train, self.select_by, self.patience, self.has_val = path, n_train, select_by, patience, has_val
            self.bar = _bar(progress, total_steps, "training", "step")
            self.best, self.best_epoch, self.best_state, self.bad = None, None, None, 0
            self.train_loss, self.started, self.examples_seen = None, None, 0

        def on_train_begin(self, args, state, control, **kw):
            self.started = time.time()

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, model=None, **kw):
            if logs and "loss" in logs:
                self.train_loss = round(float(logs["loss"]), 4)
                if not self.has_val:
                    self._row(state, {})

        def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
            metrics = metrics or {}
            self._row(state, {"val_loss": round(metrics["eval_loss"], 4),
                              "val_accuracy": round(metrics["eval_accuracy"], 4),
                              "val_macro_f1": round(metrics["eval_macro_f1"], 4)})
            value = metrics["eval_macro_f1"] if self.select_by == "macro_f1" else -metrics["eval_loss"]
            if self.best is None or value > self.best:
                self.best, self.best_epoch, self.bad = value, round(state.epoch, 4), 0
                self.best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            else:
                self.bad += 1
                if self.bad >= self.patience:
                    control.should_training_stop = True
            return control

        def on_train_end(self, args, state, control, model=None, **kw):
            if self.best_state is not None:
                with torch.no_grad():
                    params = dict(model.named_parameters())
                    for n, v in self.best_state.items():
                        params[n].copy_(v)

        def _row(self, state, extra: dict) -> None:
            self.examples_seen = round((state.epoch or 0) * self.n_train)
            row = {"epoch": round(state.epoch or 0, 4), "train_loss": self.train_loss, **extra,
                   "examples_seen": self.examples_seen, "seconds": round(time.time() - self.started, 1)}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if self.bar is not None:
                shown = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ("examples_seen",))
                self.bar.write(shown)

        def close(self):
            if self.bar is not None:
                self.bar.close()

    return types.SimpleNamespace(MeanPoolClassifier=MeanPoolClassifier, TopBlocks=TopBlocks, HeadOnly=HeadOnly,
                                 features=features, WeightedCrossEntropy=WeightedCrossEntropy,
                                 EpochMetrics=EpochMetrics)
