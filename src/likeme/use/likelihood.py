"""How likely a model finds a text: per-example losses, perplexity, and authorship by likelihood ratio.

    >>> losses = example_losses(model, examples, pad_id=2)      # [(summed NLL, labelled tokens), ...]
    >>> perplexity(model, examples, pad_id=2)                    # exp(sum NLL / tokens) over all of them
    >>> Who("runs/gloucester-voice").rank("Now is the winter of our discontent")
    [("Gloucester", 0.41), ("Buckingham", 0.12), ("Hastings", -0.03)]

`Who` is the likelihood-ratio judge (`likeme who`): a text is scored in each person's slot (the persona
prompt naming them, `data.slots`) by the run and by its base model; a person's score is how much more
likely, in nats per token, their slot under the run makes the text than the same slot under the base
(authorship by conditional likelihood: the base model's own sense of the text and of the name cancel out).
A LoRA run is one model in memory: the base is the same model with its adapter switched off.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

from likeme.errors import LikemeError


def body_and_head(model):
    """(transformer body, LM head) of a plain causal LM whose logits are head(last hidden state), else
    (None, None): a model that scales or caps its logits (Gemma 2, Cohere) is run whole."""
    if hasattr(model, "get_base_model"):  # PEFT: the wrapped model, its LoRA layers injected in place
        model = model.get_base_model()
    config = getattr(model, "config", None)
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    plain = not any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale"))
    return (body, head) if body is not None and head is not None and plain and body is not model else (None, None)


def example_losses(model, examples: list[dict], pad_id: int, batch_size: int = 8) -> list[tuple[float, int]]:
    """Each example's summed negative log-likelihood over its labelled tokens, and how many there are, in
    the order given. Rows are batched longest first (similar lengths pad less), and the LM head runs only
    where a token is labelled: in a reply with 8 turns of context most positions are not, and SmolLM2's
    head (576 x 49,152) costs about a fifth of a forward pass per position."""
    import torch

    from likeme.batching import collate
    from likeme.prompts import IGNORE

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    body, head = body_and_head(model)
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            idx = order[s: s + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in idx], pad_id).items()}
            target = batch["labels"][:, 1:]  # (B, T-1): position t predicts token t+1
            keep = target != IGNORE  # (B, T-1)
            if body is not None:
                hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                logits = head(hidden[:, :-1][keep]).float()  # (N, V): the labelled positions only
            else:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logits = logits[:, :-1][keep].float()  # (N, V)
            nll = torch.nn.functional.cross_entropy(logits, target[keep], reduction="none")  # (N,)
            counts = keep.sum(1).tolist()
            for i, part, n in zip(idx, nll.split(counts), counts):
                out[i] = (part.sum().item(), n)
    if was_training:
        model.train()
    return out


def perplexity(model, examples: list[dict], pad_id: int, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood over every labelled token), the same weighting whatever the
    batching (the Trainer's eval_loss averages per batch, which is not)."""
    losses = example_losses(model, examples, pad_id, batch_size) if examples else []
    count = sum(n for _, n in losses)
    return math.exp(sum(s for s, _ in losses) / count) if count else float("nan")


class RunAndBase:
    """A voice run and the model it started from, for scoring the same examples under both: `losses(examples,
    base=)`. A LoRA run on a model is loaded once, unmerged, and its base is the same model with the adapter
    off; a run of full weights, or one tuned from another run (a preference run), loads the model beside it."""

    def __init__(self, run, *, batch_size: int = 8):
        from likeme import models, runs

        self.meta = runs.read_meta(run)
        self.model, self.tokenizer = models.load_causal_lm(run, merge=False)
        self.batch_size = batch_size
        self.base = None
        path = models.resolve(run).path
        root = runs.root_base(path)
        if not hasattr(self.model, "disable_adapter") or root != runs.base_of(path, self.meta):
            if root is None:  # full weights, or an adapter on another run (a preference run on a voice)
                raise LikemeError(f"{run}: no base model recorded to compare with (run.yaml base)")
            self.base = models.load_causal_lm(root)[0]

    def losses(self, examples: list[dict], *, base: bool = False) -> list[tuple[float, int]]:
        model = self.base if base and self.base is not None else self.model
        with self.model.disable_adapter() if base and self.base is None else nullcontext():
            return example_losses(model, examples, self.tokenizer.pad_token_id, self.batch_size)


    def guided_losses(self, examples: list[dict], rivals: list[list[dict]], alpha: float) -> list[tuple[float, int]]:
        """The run's losses with person guidance (`use.guidance`): `rivals[i]`, examples[i] in the rival slots."""
        from likeme.use.guidance import guided_losses

        return guided_losses(self.model, examples, rivals, alpha, self.tokenizer.pad_token_id)


def ratio(run_losses, base_losses) -> list[float]:
    """Nats per token the run gains over the base on each example: (base NLL - run NLL) / tokens."""
    return [(b - r) / n if n else float("nan") for (r, n), (b, _) in zip(run_losses, base_losses)]


class Who:
    """The likelihood-ratio judge: rank `people` (default: the run's speakers, else its person) by how much
    more likely the run makes a text in their slot than the base model does."""

    def __init__(self, run, people=None, *, max_length: int = 512):
        self.scorer = RunAndBase(run)
        meta = self.scorer.meta
        chats = sorted((meta.get("data") or {}).get("messages") or {}, key=lambda p: -meta["data"]["messages"][p])
        own = meta.get("as")  # a voice of one person: it, and the two most active others of its chats
        self.people = list(people or meta.get("speakers") or ([own] + [p for p in chats if p != own][:2] if own else []))
        if not self.people:
            raise LikemeError(f"{run}: whose slots to compare? say --people A,B,C")
        self.max_length = max_length

    def scores(self, texts: list[str], contexts: list | None = None) -> dict[str, list[float]]:
        """{person: each text's log-likelihood ratio (nats per token) in that person's slot}."""
        from likeme.data.examples import Reply
        from likeme.data.slots import in_slot
        from likeme.prompts import Turn

        contexts = contexts or [[] for _ in texts]
        found = [Reply(list(c) or [Turn("Someone", "...")], Turn("?", t), len({x.author for x in c}) > 2)
                 for t, c in zip(texts, contexts)]  # a reply needs a turn before it
        out = {}
        for p in self.people:
            made = in_slot(self.scorer.tokenizer, found, p, max_length=self.max_length)
            if any(e is None for e in made):
                raise LikemeError("a text with no tokens to score: give some text")
            out[p] = ratio(self.scorer.losses(made), self.scorer.losses(made, base=True))
        return out

    def judge(self, name: str, texts: list[str], contexts: list | None = None) -> list[float]:
        """NAME's gain minus the mean gain over the people's slots: who wrote it, rather than how much the
        run likes the medium (with NAME alone: NAME's gain)."""
        s = self.scores(texts, contexts)
        return [s[name][i] - sum(v[i] for v in s.values()) / len(s) for i in range(len(texts))]

    def rank(self, text: str, context=None) -> list[tuple[str, float]]:
        s = self.scores([text], [context or []])
        return sorted(((p, v[0]) for p, v in s.items()), key=lambda x: -x[1])
