"""The runs a server serves: `load_models` loads each (voice, classifier or embedder) and names it by
its folder; `Served` is one of them, and `Served.card()` its entry in GET /v1/models."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from likeme.errors import LikemeError


@dataclass
class Served:
    """One run behind the API: `kind` is voice, classifier or embedder; `obj` what `likeme.load` gave."""

    id: str
    kind: str
    obj: Any
    run: str

    def card(self) -> dict:
        info: dict = {"kind": self.kind, "run": self.run}
        if self.kind == "voice":
            info.update({"as": self.obj.name, "partner": self.obj.partner, "chat": bool(self.obj.name)})
        elif self.kind == "classifier":
            info["labels"] = list(self.obj.labels)
        elif self.kind == "embedder":
            info.update({"as": self.obj.name or None, "likeness": self.obj.calib is not None})
        return {"id": self.id, "object": "model", "created": 0, "owned_by": "likeme", "likeme": info}


def others_learnt(run) -> list[str]:
    """The people besides its own that a voice run learnt (--learn-from everyone): `likeme serve` serves each
    as RUN@PERSON."""
    from likeme import runs

    meta = runs.read_meta(run)
    return [p for p in meta.get("speakers") or {} if p != meta.get("as")]


def load_models(runs: list[str], *, device=None, backend: str = "torch", precision: str = "auto") -> dict[str, Served]:
    """Each run (folder, name under $LIKEME_HOME/runs, or model name) loaded, named by its folder; voices
    on `backend` (`inference.load_voice`: with llama.cpp, JSON output answers a 400)."""
    from likeme import models
    from likeme.use.load import recipe_of

    served: dict[str, Served] = {}
    for run in runs:
        ref = models.resolve(run)
        recipe = recipe_of(run)
        name = ref.path.name if ref.kind == "run" else str(run)
        if name in served:
            raise LikemeError(f"two models named {name!r}: serve runs from folders with different names")
        if recipe in ("voice", "prefer"):
            from likeme.use.load import load_voice

            kw = {"device": device} if device is not None else {}
            voice = load_voice(run, backend=backend, precision=precision, **kw)
            served[name] = Served(name, "voice", voice, str(run))
            for person in others_learnt(ref.path) if ref.kind == "run" else []:  # one model per person, one in memory
                other = copy.copy(voice)
                other.name, other.partner = person, voice.name
                served[f"{name}@{person}"] = Served(f"{name}@{person}", "voice", other, str(run))
        elif recipe == "classifier":
            from likeme.use.classifier import load_classifier

            served[name] = Served(name, "classifier", load_classifier(run, device=device), str(run))
        elif recipe == "embedder":
            from likeme.use.embedder import load_embedder

            served[name] = Served(name, "embedder", load_embedder(run), str(run))
        else:
            raise LikemeError(f"{run} is a {recipe} run: likeme serve serves voice, classifier and embedder runs")
    if not served:
        raise LikemeError("nothing to serve: name one or more runs (likeme serve runs/ana-voice)")
    return served
