"""Losses as small nn.Modules, each naming its inputs (sentence-transformers' `losses/`)."""
from __future__ import annotations

import torch
from torch import nn


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with a weight per label and label smoothing, as the Trainer's `compute_loss_func`:
    (outputs with .logits (B, K), labels (B,)) -> the weighted mean loss.

    weights: one per label (`datasets.class_weights`), or None; smoothing: the share of each target
    spread over the other labels (Szegedy et al. 2016). weights=None, smoothing=0: plain cross-entropy.
    """

    def __init__(self, weights: list[float] | None = None, smoothing: float = 0.0):
        super().__init__()
        self.weights = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
        self.smoothing = smoothing

    def forward(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        w = self.weights.to(logits.device) if self.weights is not None else None
        return nn.functional.cross_entropy(logits, labels.to(logits.device), weight=w, label_smoothing=self.smoothing)


class SentenceObjective(nn.Module):
    """A sentence-transformers model and one of its losses as one module the Trainer can train:
    forward(features: a list of tokenized columns, anchor first) -> {"loss": scalar}.

    Only the model is a submodule (the loss holds it too), so a checkpoint holds each weight once.
    Example: SentenceObjective(st, TripletLoss(st))(features=[anchors, positives, negatives])["loss"]
    """

    def __init__(self, model, loss: nn.Module):
        super().__init__()
        self.model = model
        object.__setattr__(self, "loss", loss)  # not registered: its own .model is self.model

    def forward(self, features):
        return {"loss": self.loss(features, None)}


class BradleyTerryLoss(nn.Module):
    """The reward model's loss on comparisons (Bradley and Terry 1952; InstructGPT's reward model):
    -log sigmoid(r_chosen - r_rejected), averaged over the pairs, as the Trainer's `compute_loss_func`.

    outputs.logits (2B, 1): the rewards of a batch laid out [chosen_1 .. chosen_B, rejected_1 .. rejected_B];
    labels (B,): 1 where the first of the pair is the preferred one (0 flips the pair).
    Example: rewards chosen [2, 0], rejected [0, 0] -> (-log sigmoid(2) - log sigmoid(0)) / 2 = 0.4100
    """

    def forward(self, outputs, labels, num_items_in_batch=None):
        r = outputs["logits"].float().reshape(-1)  # (2B,)
        half = r.shape[0] // 2
        sign = 2.0 * labels.to(r.device).float() - 1.0  # (B,)
        return -nn.functional.logsigmoid(sign * (r[:half] - r[half:])).mean()
