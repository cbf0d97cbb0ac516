"""Merging voices: one LoRA run whose update to the base model is a weighted sum of several runs' updates
(task arithmetic, Ilharco et al. 2023; `peft`'s add_weighted_adapter with the ranks concatenated, so the sum
is exact, not an approximation of it). Runs tuned from one base model in one prompt format merge; the
merged run prompts as the first one named (its people, slots and context).

    likeme merge runs/ana-contrast runs/ana --weights 0.65,0.35 --out runs/ana-merged

What it is for: a voice that learnt the person (`--learn-from everyone --contrast`) and one that learnt the
register (`--learn-from me`) average into one voice that keeps most of each, as an ensemble of two
fine-tunes of one model does (BENCHMARKS.md, "Person, not genre").
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from likeme.errors import LikemeError

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md")


def parse_weights(text: str | None, count: int) -> list[float]:
    """`--weights "0.65,0.35"` -> [0.65, 0.35]; None -> equal weights summing to 1.

    Example: parse_weights(None, 4) -> [0.25, 0.25, 0.25, 0.25]
    """
    if text is None:
        return [1.0 / count] * count
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise LikemeError(f"--weights {text!r}: give one number per run, comma-separated (e.g. 0.65,0.35)") from None
    if len(weights) != count:
        raise LikemeError(f"--weights has {len(weights)} numbers for {count} runs: give one per run")
    return weights


def combine(refs: list, weights: list[float]):
    """The base model of `refs` (resolved LoRA runs, models.resolve) with one adapter, "default", whose
    update is sum(w_i * update_i): the runs' adapters side by side, each scaled by its weight."""
    from peft import PeftModel

    from likeme import models

    model, _ = models.load_causal_lm(refs[0].base)
    names = [f"run{i}" for i in range(len(refs))]
    merged = PeftModel.from_pretrained(model, str(refs[0].adapter), adapter_name=names[0])
    for name, ref in zip(names[1:], refs[1:]):
        merged.load_adapter(str(ref.adapter), adapter_name=name)
    merged.add_weighted_adapter(names, weights, "default", combination_type="cat")
    merged.set_adapter("default")
    for name in names:
        merged.delete_adapter(name)
    return merged


def merge(runs_: list[str | os.PathLike], weights: list[float], out: str | os.PathLike) -> Path:
    """Write a run at `out` whose LoRA update is sum(w_i * update_i) of `runs_`; returns `out`.

    A one-line error for fewer than two runs, a run without a LoRA adapter (--trainable all: its weights are
    the model), runs of different base models or prompt formats, and an `out` that exists.
    """
    from likeme import models, runs
    from likeme.paths import atomic_dir

    if len(runs_) < 2:
        raise LikemeError("merge needs two runs or more")
    if len(weights) != len(runs_):
        raise LikemeError(f"{len(weights)} weights for {len(runs_)} runs: give one weight per run")
    out = Path(out)
    if out.exists():
        raise LikemeError(f"{out} exists: merge writes a new run, give another --out")
    refs = [models.resolve(r) for r in runs_]
    for ref, name in zip(refs, runs_):
        if ref.kind != "run" or ref.adapter is None:
            raise LikemeError(f"{name} is not a LoRA run: merge adds the LoRA updates of runs trained with "
                              "--trainable lora (the default)")
        if ref.base.adapter is not None:
            raise LikemeError(f"{name} was tuned from another run ({ref.base.name}): merge runs tuned from the model itself")
    bases = {str(ref.base.path) for ref in refs}
    if len(bases) > 1:
        raise LikemeError(f"the runs were tuned from different models ({', '.join(sorted(bases))}): merge runs of one base")
    metas = [runs.read_meta(ref.path) for ref in refs]
    formats = {runs.voice_config(m).get("format", "persona") for m in metas}
    if len(formats) > 1:
        raise LikemeError(f"the runs prompt in different formats ({', '.join(sorted(formats))}): merge runs of one format")

    merged = combine(refs, weights)
    meta = dict(metas[0])
    meta["base"] = runs.base_of(refs[0].path, metas[0])
    meta["merged_from"] = [{"run": str(ref.path), "weight": w} for ref, w in zip(refs, weights)]
    meta["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cards = [runs.provenance(ref.path) for ref in refs]
    data = dict(cards[0].get("data") or {})
    messages: dict = {}  # whose words are in it: everyone's in any of the runs (`likeme forget` finds it)
    for c in cards:
        for author, n in ((c.get("data") or {}).get("messages") or {}).items():
            messages[author] = max(messages.get(author, 0), n)
    if messages:
        data["messages"] = messages
    card = {**cards[0], "created": meta["created"], "base": meta["base"], "data": data,
            "merged_from": [{"run": str(ref.path), "weight": w, "card": c} for ref, w, c in zip(refs, weights, cards)]}
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp / "model")
        for f in sorted((refs[0].path / "model").iterdir()):  # the tokenizer and chat template it prompts with
            if f.is_file() and f.name not in ADAPTER_FILES:
                shutil.copy2(f, tmp / "model" / f.name)
        runs.write_meta(tmp, meta)
        (tmp / runs.PROVENANCE_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return out
