"""Loading any run by its path: run.yaml's `recipe:` says what it is, and what using it looks like.

    >>> import likeme
    >>> likeme.load("runs/ana-voice")          # recipe: voice -> generate.Voice
    Voice(name='Ana', partner='Sam', run='runs/ana-voice', device='cpu')
    >>> likeme.load("runs/banking77")          # recipe: classifier -> classifier.Classifier
    Classifier(labels=77, base='smollm2-135m')
    >>> likeme.load("runs/ana-embedder")       # recipe: embedder -> embedder.Embedder
    Embedder(name='Ana', score=True)
    >>> likeme.load("runs/ana-reward")         # recipe: reward -> reward.RewardModel
    RewardModel(as='Ana', base='smollm2-135m')

A model that is not a run loads by what it is: a causal LM as a `Voice` (raw text; pass name= to chat),
a sentence-embedding model as an `Embedder`. Training code is never imported here.
"""
from __future__ import annotations

import os

from likeme.errors import LikemeError

RECIPES = ("voice", "prefer", "classifier", "embedder", "reward")
BY_TASK = {"causal-lm": "voice", "sentence-embedding": "embedder", "classification": "classifier"}


def recipe_of(run: str | os.PathLike) -> str:
    """The recipe that made a run (run.yaml `recipe:`), else what its model is for: a folder or bundled
    model of task causal-lm -> "voice". Raises LikemeError for what likeme cannot use."""
    from likeme import models, runs

    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    recipe = runs.used_as(meta) if ref.kind == "run" else BY_TASK.get(ref.task)
    if recipe not in RECIPES:
        raise LikemeError(f"{run}: cannot tell what kind of model it is (recipe {meta.get('recipe')!r}, task {ref.task!r}): "
                          f"likeme uses {', '.join(RECIPES)} runs")
    return recipe


def load(run: str | os.PathLike, **kwargs):
    """A run folder (or a model name) -> a Voice, a Classifier or an Embedder; kwargs go to that loader
    (Voice: device, precision, name, partner; Classifier, RewardModel: device; Embedder: base)."""
    recipe = recipe_of(run)
    if recipe == "classifier":
        from likeme.use.classifier import load_classifier as loader
    elif recipe == "embedder":
        from likeme.use.embedder import load_embedder as loader
    elif recipe == "reward":
        from likeme.use.reward import load_reward as loader
    else:
        from likeme.use.generate import load as loader
    return loader(run, **kwargs)


BACKENDS = ("auto", "torch", "llama.cpp")
LLAMA_QUANTS = {"auto": "f16", "fp16": "f16", "fp32": "f32", "bf16": "bf16", "int8": "q8_0"}  # --precision -> GGUF


def load_voice(run: str | os.PathLike, *, backend: str = "auto", precision: str = "auto", **kwargs):
    """A voice on a backend: "torch" (`generate.load`: transformers), "llama.cpp" (`llama.load`: the run's
    GGUF through llama-cpp-python, exported on first use), or "auto": llama.cpp when llama-cpp-python is
    installed and the model can be exported, else torch.
    precision: auto, fp32, bf16, fp16 or int8 (`precision.choose`); on llama.cpp the GGUF's weights:
      auto and fp16 -> f16, fp32 -> f32, bf16 -> bf16, int8 -> q8_0.
    kwargs: name, partner, format, context_turns, recall, db (both backends); device (torch)."""
    if backend not in BACKENDS:
        raise LikemeError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend != "torch":
        from likeme import models
        from likeme.use import llama

        if backend == "llama.cpp" or llama.usable(models.resolve(run)):
            light = {k: v for k, v in kwargs.items() if k != "device"}
            quant = LLAMA_QUANTS.get(str(precision))
            if quant is None:
                raise LikemeError(f"unknown precision {precision!r}: use one of {', '.join(LLAMA_QUANTS)}")
            try:
                return llama.load(run, quant=quant, **light)
            except LikemeError:
                if backend == "llama.cpp":
                    raise
    from likeme.use.generate import load

    return load(run, precision=precision, **kwargs)
