"""Person guidance: NAME's voice sharpened against the other people's slots of the same chat.

Classifier-free guidance (Sanchez et al. 2023, "Stay on topic with classifier-free guidance"; context-aware
decoding, Shi et al. 2023) with the person as the condition: the negative prompt is the same conversation in
other people's slots (`data.slots`: the persona prompt that names them, their turns the assistant's):

    log p~(t) = log_softmax((1 + a) * log p(t | NAME's slot) - a * mean_k log p(t | slot_k))

a = 0 is the voice as trained. What every slot finds as likely (the chat's register, its topic) is left as
the voice has it; what NAME's slot makes likelier than the others' slots is raised, and what they make
likelier is lowered. It sharpens what the voice learned about the people and nothing else: on a voice that
learned only the medium the slots hardly differ and guidance changes little (BENCHMARKS.md, "Person, not
genre"). Scoring (`guided_losses`: specificity in `likeme eval`) and writing (`GuidanceLogits`, a
transformers logits processor: `likeme chat --guidance`) use the same distribution.

    >>> against = guide_people(meta, "Gloucester")            # ["Lady Anne", "Queen Elizabeth"]
    >>> guided_losses(model, examples, rivals, alpha=1.0, pad_id=2)   # [(summed NLL, tokens), ...]
    >>> model.generate(ids, logits_processor=[GuidanceLogits(model, [rival_ids, ...], alpha=1.0)])
"""
from __future__ import annotations

from likeme.errors import LikemeError

SLOTS = 2  # other people's slots guidance contrasts with: the two most active others the voice knows


def guide_people(meta: dict, name: str, k: int = SLOTS) -> list[str]:
    """The slots NAME's voice is guided against: the people the run learned besides NAME (run.yaml `speakers`,
    most turns first), else the people NAME's chats hear most from (run.yaml `data.messages`), at most `k`.

    Example: speakers {"Gloucester": 119, "Lady Anne": 40, "Queen Elizabeth": 31} -> ["Lady Anne", "Queen Elizabeth"]
    """
    speakers = list(meta.get("speakers") or [])
    if not speakers:
        counts = (meta.get("data") or {}).get("messages") or {}
        speakers = sorted(counts, key=lambda p: -counts[p])
    return [p for p in speakers if p != name][:k]


def check_alpha(alpha: float) -> float:
    if not 0 <= alpha <= 10:
        raise LikemeError(f"guidance {alpha} is out of range: 0 (off) to 10; 0.5 to 2 is the useful range")
    return float(alpha)


def combine(own, rivals: list, alpha: float):
    """Guided log-probabilities from logits (..., V) in NAME's slot and in each rival slot (same shape)."""
    import torch

    own = torch.log_softmax(own.float(), dim=-1)
    if not alpha or not rivals:
        return own
    neg = torch.stack([torch.log_softmax(r.float(), dim=-1) for r in rivals]).mean(0)  # (K, ..., V) -> (..., V)
    return torch.log_softmax((1 + alpha) * own - alpha * neg, dim=-1)


def labelled_logits(model, example: dict):
    """(N, V) logits where the example has a label, and the N labels: one example, no padding, under no_grad
    or not as the caller runs it. Example: a reply of 3 tokens and its end of turn -> ((4, V), (4,))"""
    import torch

    from likeme.prompts import IGNORE

    device = next(model.parameters()).device
    ids = torch.tensor([example["input_ids"]], device=device)  # (1, T)
    target = torch.tensor(example["labels"][1:], device=device)  # (T-1,): position t predicts token t+1
    keep = target != IGNORE
    return model(input_ids=ids).logits[0, :-1][keep], target[keep]


def guided_losses(model, examples: list[dict], rivals: list[list[dict]], alpha: float,
                  pad_id: int) -> list[tuple[float, int]]:
    """Each example's summed negative log-likelihood over its labelled tokens under guidance, and how many
    there are: `rivals[i]` are examples[i]'s turn rendered in the rival slots (the same labelled tokens after
    another context, `slots.in_slot`). One example at a time: the rival renderings differ in length.

    Example: alpha 0 -> the same as `likelihood.example_losses(model, examples, pad_id)`
    """
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for e, others in zip(examples, rivals):
            own, target = labelled_logits(model, e)
            scored = [labelled_logits(model, r) for r in others]
            if any(t.shape != target.shape or not torch.equal(t, target) for _, t in scored):
                raise ValueError("a rival rendering labels other tokens than the example it stands beside")
            logp = combine(own, [x for x, _ in scored], alpha)
            out.append((-logp.gather(1, target[:, None]).sum().item(), int(target.numel())))
    if was_training:
        model.train()
    return out


class GuidanceLogits:
    """A transformers logits processor: each step's scores (B, V) guided against the rival prompts, each run
    through the model with its own key/value cache, one new token a step (as transformers'
    UnbatchedClassifierFreeGuidanceLogitsProcessor does for one negative prompt). `prompts`: the rival slots'
    prompt ids (lists), the same conversation as the prompt being generated from; B rows of one prompt
    (num_return_sequences) are guided against B copies of each."""

    def __init__(self, model, prompts: list[list[int]], alpha: float):
        import inspect

        self.model, self.prompts, self.alpha = model, prompts, alpha
        self.state: list[dict | None] = [None] * len(prompts)
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        # transformers 5.25 renamed past_key_values to cache (the old name goes in 5.40)
        self.cache_kw = "cache" if "cache" in inspect.signature(type(inner).forward).parameters else "past_key_values"

    def _next(self, k: int, input_ids):
        import torch

        st = self.state[k]
        if st is None:  # first step: the whole rival prompt, once per row
            ids = torch.tensor([self.prompts[k]], device=input_ids.device).expand(input_ids.shape[0], -1)  # (B, T_k)
            st = self.state[k] = {"mask": torch.ones_like(ids), "cache": None}
        else:
            ids = input_ids[:, -1:]  # (B, 1): the token just chosen, in every slot alike
            st["mask"] = torch.cat([st["mask"], torch.ones_like(ids)], dim=1)
        out = self.model(input_ids=ids, attention_mask=st["mask"], use_cache=True, **{self.cache_kw: st["cache"]})
        st["cache"] = out[self.cache_kw]
        return out.logits[:, -1]  # (B, V)

    def __call__(self, input_ids, scores):
        if not self.alpha or not self.prompts:
            return scores
        return combine(scores, [self._next(k, input_ids) for k in range(len(self.prompts))], self.alpha)
