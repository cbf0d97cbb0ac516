"""Is a voice like its person, or like everyone in the chat? Specificity, attribution and the
likelihood-ratio judge's strength, on turns the voice never saw.

    >>> scorer = RunAndBase("runs/gloucester-voice")
    >>> found = slots.by_person(held_sessions)             # {person: their turns, with context}
    >>> specificity(scorer, found, "Gloucester")
    {"specificity": 6.1, "own_drop": 0.31, "others_drop": 0.25, "by_person": {...}, "likelihood_auc": 0.71}
    >>> attribution(scorer, found, ["Gloucester", "Buckingham", "Hastings"])
    {"accuracy": 0.64, "base_accuracy": 0.41, "judge_auc": 0.78, ...}

- **drop**: 1 - perplexity under the run / perplexity under its base model, on one person's turns, every
  turn scored in NAME's slot (as if NAME had written it there). A voice of the medium lowers everyone's
  perplexity alike; a voice of the person lowers NAME's more.
- **specificity**: NAME's drop minus the others' (their turns pooled), in points (x 100).
- **attribution**: each turn of the given people, given to the person whose slot makes it most likely
  (the lowest loss per token), right or wrong; under the run and, as the control, under the base model
  (a famous text may be known to it already). Chance is 1 / people.
- **guidance** (`use.guidance`): with `guidance` a > 0 every turn in NAME's slot is scored by the voice
  sharpened against the `against` people's slots, as `likeme chat --guidance` writes; the base as it is.
- **judge AUC**: the likelihood-ratio judge (`use.likelihood.Who`) telling NAME's single turns from
  others': ROC-AUC of the run's gain over the base in NAME's slot (`specificity`), and of that gain
  minus the mean gain over everyone's slots (`attribution`: who, rather than how chatty).
"""
from __future__ import annotations

import math

from likeme.use.likelihood import ratio

MAX_TURNS = 400  # turns scored per person at most (an even sample)


def _ppl(losses) -> float:
    n = sum(c for _, c in losses)
    return math.exp(sum(s for s, _ in losses) / n) if n else float("nan")


def _target(example) -> list[int]:
    from likeme.prompts import IGNORE

    return [t for t in example["labels"] if t != IGNORE]


def _scored(scorer, found: list, slot: str, max_length: int, guidance: float = 0.0, against=()):
    """(run losses, base losses) of each turn in `slot`: None for a turn that leaves nothing to label. With
    `guidance`, the run's are guided against the `against` slots (`use.guidance`)."""
    from likeme.data.slots import in_slot

    made = in_slot(scorer.tokenizer, found, slot, max_length=max_length)
    against = [p for p in against if p != slot] if guidance else []
    if against:
        renders = [in_slot(scorer.tokenizer, found, p, max_length=max_length) for p in against]
        made = [e if e and all(r[i] and _target(r[i]) == _target(e) for r in renders) else None
                for i, e in enumerate(made)]  # a turn cut differently in some slot: left out
    kept = [e for e in made if e]
    if against:
        rivals = [[r[i] for r in renders] for i, e in enumerate(made) if e]
        run = iter(scorer.guided_losses(kept, rivals, guidance))
    else:
        run = iter(scorer.losses(kept))
    base = iter(scorer.losses(kept, base=True))
    return [next(run) if e else None for e in made], [next(base) if e else None for e in made]


def specificity(scorer, found: dict, name: str, *, max_turns: int = MAX_TURNS, max_length: int = 512,
                guidance: float = 0.0, against=()) -> dict:
    """NAME's drop, the others' pooled drop, specificity (points) and each person's figures; every turn in
    NAME's slot (the run's guided against `against` with `guidance` > 0). `found`: {person: [Reply]}
    (`slots.by_person`), NAME among them."""
    from likeme.data.examples import even_sample
    from likeme.use.embedder import auc

    if not found.get(name):
        raise ValueError(f"no turns of {name} to score")
    per, others_run, others_base, labels, gains = {}, [], [], [], []
    for person, turns in found.items():
        turns = even_sample(turns, max_turns)
        if not turns:
            continue
        run, base = (list(filter(None, x)) for x in _scored(scorer, turns, name, max_length, guidance, against))
        ppl, base_ppl = _ppl(run), _ppl(base)
        per[person] = {"turns": len(run), "ppl": round(ppl, 4), "base_ppl": round(base_ppl, 4),
                       "drop": round(1 - ppl / base_ppl, 4)}
        if person != name:
            others_run += run
            others_base += base
        labels += [int(person == name)] * len(run)
        gains += ratio(run, base)
    own = per[name]["drop"]
    others = 1 - _ppl(others_run) / _ppl(others_base) if others_run else float("nan")
    return {"specificity": round(100 * (own - others), 2), "own_drop": own, "others_drop": round(others, 4),
            "by_person": per, **({"guidance": guidance, "against": list(against)} if guidance and against else {}),
            "likelihood_auc": round(auc(labels, gains), 4) if 0 < sum(labels) < len(labels) else None}


def attribution(scorer, found: dict, people: list[str], *, name: str | None = None, max_turns: int = MAX_TURNS,
                max_length: int = 512) -> dict:
    """Each turn of `people` given to the slot (among theirs) that makes it most likely: accuracy under the
    run and under its base, a confusion table {true: {given: n}}, and the judge's AUC for `name` (default:
    the first person): its gain in NAME's slot minus the mean gain over the slots."""
    from likeme.data.examples import even_sample
    from likeme.use.embedder import auc

    name = name or people[0]
    right = {"run": 0, "base": 0}
    confusion = {p: {q: 0 for q in people} for p in people}
    labels, judged, total = [], [], 0
    for person in people:
        turns = even_sample(found.get(person, []), max_turns)
        scores = {s: _scored(scorer, turns, s, max_length) for s in people}  # slot -> (run, base) losses
        n = 0
        for i in range(len(turns)):
            if any(r[i] is None or not r[i][1] for r, _ in scores.values()):
                continue  # nothing left to score in some slot
            n += 1
            per_token = {s: (r[i][0] / r[i][1], b[i][0] / b[i][1]) for s, (r, b) in scores.items()}
            given = min(people, key=lambda s: per_token[s][0])
            confusion[person][given] += 1
            right["run"] += given == person
            right["base"] += min(people, key=lambda s: per_token[s][1]) == person
            gain = {s: b - r for s, (r, b) in per_token.items()}
            labels.append(int(person == name))
            judged.append(gain[name] - sum(gain.values()) / len(gain))
        total += n
    return {"people": people, "turns": total, "accuracy": round(right["run"] / total, 4) if total else None,
            "base_accuracy": round(right["base"] / total, 4) if total else None, "chance": round(1 / len(people), 4),
            "confusion": confusion, "judge": name,
            "judge_auc": round(auc(labels, judged), 4) if 0 < sum(labels) < len(labels) else None}
