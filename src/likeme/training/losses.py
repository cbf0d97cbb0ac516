"""Losses as small nn.Modules, each naming its inputs (sentence-transformers' `losses/`)."""
from __future__ import annotations

import inspect

import torch
from torch import nn

from likeme.batching import labelled_positions


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


class DistillationLoss(nn.Module):
    """Knowledge distillation (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"):
    alpha * CE(student, hard label) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    forward(student_logits (N, V), teacher_logits (N, K), labels (N,), teacher_indices (N, K) or None):
    - teacher_indices None: K == V, the teacher's logits over every class (a classifier's soft labels).
    - teacher_indices given: the teacher's top-k logits and the ids they belong to (a causal LM's next token,
      k << V); the teacher's distribution is renormalized over its top k and the student's log-probabilities
      over the whole vocabulary are read at those ids (the KL then stays >= 0 and is 0 only when the student
      puts the teacher's top-k mass exactly where the teacher does).
    - labels: the hard label of each row, -100 where there is none (an unlabelled text): such a row adds
      only its KL term. The CE is the mean over the labelled rows, the KL the mean over all rows, so alpha=1
      is plain cross-entropy on the labelled rows. T^2 keeps the soft term's gradients the size of the hard
      term's whatever T (Hinton et al., section 2).
    Example: student [0, 0], teacher [log 3, 0] (p = [0.75, 0.25]), label 0, T=1, alpha=0.5
      -> 0.5 * log 2 + 0.5 * (0.75 log 1.5 + 0.25 log 0.5) = 0.3466 + 0.5 * 0.1308 = 0.4120
    """

    def __init__(self, temperature: float = 2.0, alpha: float = 0.5):
        super().__init__()
        if temperature <= 0 or not 0 <= alpha <= 1:
            raise ValueError(f"temperature must be > 0 and alpha in [0, 1] (got {temperature}, {alpha})")
        self.temperature, self.alpha = temperature, alpha

    def forward(self, student_logits, teacher_logits, labels, teacher_indices=None):
        s, t = student_logits.float(), teacher_logits.float().to(student_logits.device)
        log_s = nn.functional.log_softmax(s / self.temperature, dim=-1)  # (N, V)
        if teacher_indices is not None:
            log_s = log_s.gather(-1, teacher_indices.to(s.device).long())  # (N, K): the teacher's top-k ids
        log_t = nn.functional.log_softmax(t / self.temperature, dim=-1)  # (N, K)
        kl = (log_t.exp() * (log_t - log_s)).sum(-1).mean() if s.shape[0] else s.sum() * 0
        labels = labels.to(s.device)
        hard = labels != -100  # (N,)
        ce = nn.functional.cross_entropy(s[hard], labels[hard]) if hard.any() else s.sum() * 0
        return self.alpha * ce + (1 - self.alpha) * self.temperature ** 2 * kl


class DistillObjective(nn.Module):
    """A student and a `DistillationLoss` as one module the Trainer trains (the teacher's targets come in
    the batch, computed once before training: the teacher is not in memory while the student learns).

    forward(input_ids (B, T), attention_mask (B, T), teacher (N, K), labels, teacher_indices (N, K) or None)
      -> {"loss": scalar, "logits": (B, K)}
    - tokens=False (a classifier): labels (B,), -100 for an unlabelled text; N = B, one row per text.
    - tokens=True (a causal LM): labels (B, T) with -100 where nothing is learned; a row per position t
      whose next token t+1 is labelled, in the batch's row-major order (N = labelled tokens); no logits out.
    Only the student is a submodule: a checkpoint holds its weights (prefixed `student.`).
    """

    def __init__(self, student, loss: DistillationLoss, tokens: bool = False):
        super().__init__()
        self.student, self.loss, self.tokens = student, loss, tokens
        base = student.get_base_model() if hasattr(student, "get_base_model") else student  # PEFT: the wrapped model
        self.head_on_labels = tokens and "logits_to_keep" in inspect.signature(base.forward).parameters
        # A tied LM head (SmolLM2's, the tiny Llama's) is the input embedding under a second name: the Trainer
        # checkpoints a plain module with safetensors, which refuses a tensor saved twice, so it is saved once
        # and tied again on loading the best checkpoint (the Trainer calls tie_weights when exactly these are missing).
        first: dict = {}
        for n, p in self.named_parameters(remove_duplicate=False):
            first.setdefault(id(p), n)
        self._keys_to_ignore_on_save = [n for n, p in self.named_parameters(remove_duplicate=False) if first[id(p)] != n]

    def state_dict(self, *args, **kwargs):
        out = super().state_dict(*args, **kwargs)
        for name in self._keys_to_ignore_on_save:
            out.pop(kwargs.get("prefix", "") + name, None)
        return out

    def tie_weights(self, *args, **kwargs):
        return self.student.tie_weights()

    def forward(self, input_ids, attention_mask, teacher, labels, teacher_indices=None):
        if not self.tokens:
            logits = self.student(input_ids=input_ids, attention_mask=attention_mask).logits
            return {"loss": self.loss(logits, teacher, labels), "logits": logits}
        if self.head_on_labels:  # the LM head only at positions labelled in some row: (B, K, V), not (B, T, V)
            cols, keep = labelled_positions(labels)  # (K,), (B, K)
            logits = self.student(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=cols).logits
        else:
            keep = labels[:, 1:] != -100  # (B, T-1): position t predicts token t+1
            logits = self.student(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
        rows = logits[keep]  # (N, V), row-major: the order of the teacher's rows
        return {"loss": self.loss(rows, teacher, labels[:, 1:][labels[:, 1:] != -100], teacher_indices)}


class SlotContrastLoss(nn.Module):
    """Language modelling plus the person contrast: each training turn is scored in its own speaker's slot
    and in `rivals` (the same turn in other people's slots, `slots.everyone_dataset(contrast=...)`), and
    besides learning the turn in its own slot the model learns to find its speaker among the slots:

        loss = NLL of the own-slot tokens (mean per token) + weight * CE(softmax over slots of s(turn | slot), own)
        s(turn | slot) = log p(turn | slot) / tokens of the turn (nats per token)

    the cross-entropy over the slots' likelihoods of the conditional maximum-mutual-information training of
    speech recognition (Bahl et al. 1986), here over speakers: what a voice in NAME's slot must learn is what
    makes a turn NAME's rather than anyone's in the chat, which plain language modelling on a shared register
    barely moves (specificity, attribution: check/likeness.py). Per token, as attribution and the
    likelihood-ratio judge compare slots: summed over a turn, the contrast's gradient on a token was about a
    hundred times the language model's (a turn's sum against a batch's mean), gradient clipping then scaled
    both down, and the voice learned the register little (own drop 5.8% against 23% in 12 steps on Richard III).

    With `margin` m > 0 the contrast is a hinge instead, weight * mean over turns of max(0, m - (s(own) - max
    s(rival))): a turn stops pulling once its own slot leads every rival by m nats per token, so separated turns
    leave the update to the language model (the cross-entropy keeps pushing them apart, generic words included).

    forward(model, batch) -> (loss, {"lm": ..., "contrast": ...}); batch as `batching.collate_groups` makes
    it (`example`, `group_size`), with `logits_to_keep` / `shift_labels` when the head runs on labels only.
    Example: a turn of 4 tokens whose log-likelihood is -10 in its own slot and -12 in one rival, weight 1
      -> lm + log(1 + e^-0.5) = lm + 0.4741; with margin 1: lm + max(0, 1 - 0.5) = lm + 0.5
    """

    def __init__(self, weight: float = 1.0, margin: float = 0.0):
        super().__init__()
        self.weight, self.margin = weight, margin

    def forward(self, model, batch: dict):
        batch = dict(batch)
        example, size = batch.pop("example"), batch.pop("group_size")
        labels, shifted = batch.pop("labels"), batch.pop("shift_labels", None)
        logits = model(**batch).logits
        if shifted is None:  # logits at every position: position t predicts token t+1
            logits, target, example = logits[:, :-1], labels[:, 1:], example[:, 1:]
        else:
            target, example = shifted, example[:, 1:][:, batch["logits_to_keep"]]
        where = target != -100
        logp = torch.log_softmax(logits[where].float(), dim=-1)  # (N, V): the labelled positions only
        token = logp.gather(-1, target[where].unsqueeze(-1)).squeeze(-1)  # (N,)
        example = example[where]
        total = token.new_zeros(int(example.max()) + 1).index_add(0, example, token)  # (E,) log p(turn | slot)
        count = token.new_zeros(total.shape).index_add(0, example, torch.ones_like(token))
        scores = (total / count.clamp(min=1)).view(-1, size)  # (G, S) nats per token: own slot first
        lm = -token[example % size == 0].mean()
        if self.margin > 0:
            lead = scores[:, 0] - scores[:, 1:].max(dim=1).values
            contrast = torch.relu(self.margin - lead).mean()
        else:
            contrast = nn.functional.cross_entropy(scores, scores.new_zeros(scores.shape[0], dtype=torch.long))
        return lm + self.weight * contrast, {"lm": lm.detach(), "contrast": contrast.detach()}
