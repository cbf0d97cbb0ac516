"""Using a sentence embedder: embeddings, triplet accuracy, and the likeness score of an embedder run.
No training code is imported here.

    >>> e = load_embedder("runs/robin-embedder")
    >>> e.embed(["see you there"]).shape          # unit-length float32 rows
    (1, 384)
    >>> e.score(["sure thing", "Can you help me?"])  # 0..1: how much like Robin
    [0.83, 0.12]

The likeness score: feature = cos(text, centroid of NAME's training messages) - cos(text, centroid of
the others'), mapped to 0..1 by logistic regression on held-out messages (Platt scaling, "balanced":
0.5 means as likely NAME as not, whatever share of the chat NAME writes). An embedder run stores it in
score.json, for its own model and for its base, so that the two can be compared on new data.
"""
from __future__ import annotations

import json
import os

from likeme.errors import LikemeError


def load_model(name, *, device: str | None = None):
    """A SentenceTransformer from any name `models.resolve` knows (minilm, a folder, a run).

    Example: load_model("minilm").encode(["hi"]).shape -> (1, 384)
    """
    from likeme import models
    from likeme.paths import first_line

    ref = name if isinstance(name, models.ModelRef) else models.resolve(name)
    if ref.task in ("causal-lm", "classification"):
        raise LikemeError(f"model {ref.name!r} is a {ref.task} model, not a sentence embedder: use minilm "
                          "or a run of likeme train embedder")
    path = models.weights_path(ref)
    from sentence_transformers import SentenceTransformer

    device = device or models.default_device()
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as e:  # foreign files: say which folder
        raise LikemeError(f"{path}: could not load it as a sentence-transformers model ({first_line(e)})") from e


def embed(model, texts: list[str], *, batch_size: int = 64, progress: bool = False):
    """Unit-length float32 vectors, (N, D): cosine similarity is then a dot product."""
    import numpy as np

    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
    # sentence-transformers sorts by length inside encode, to pad less.
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=progress)
    return vecs.astype(np.float32, copy=False)


def triplet_accuracy(model, triplets: list[tuple[str, str, str]], *, batch_size: int = 64) -> float:
    """Share of triplets with cos(anchor, positive) > cos(anchor, negative); each text embedded once."""
    import numpy as np

    if not triplets:
        return float("nan")
    unique = sorted({t for row in triplets for t in row})
    where = {t: i for i, t in enumerate(unique)}
    vecs = embed(model, unique, batch_size=batch_size)
    a, p, n = (vecs[[where[row[k]] for row in triplets]] for k in range(3))  # each (N, D)
    return float(np.mean(np.sum(a * p, axis=1) > np.sum(a * n, axis=1)))


def centroid(vectors) -> list[float]:
    """The unit-length mean direction of unit vectors: [[1, 0], [0, 1]] -> [0.7071, 0.7071]."""
    import numpy as np

    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    return (mean / (np.linalg.norm(mean) or 1.0)).tolist()


def likeness_feature(vectors, calib: dict):
    """cos(v, NAME's centroid) - cos(v, the others' centroid), for unit vectors (N, D) -> (N,)."""
    import numpy as np

    diff = np.asarray(calib["name_centroid"], dtype=np.float32) - np.asarray(calib["others_centroid"], dtype=np.float32)
    return np.asarray(vectors, dtype=np.float32) @ diff  # (N, D) @ (D,) -> (N,)


def fit_calibration(name_vecs, others_vecs, cal_vecs, cal_labels: list[int]) -> dict:
    """Centroids from (training) vectors of NAME and of the others, then Platt scaling on the
    calibration set: p = sigmoid(coef * feature + intercept).

    class_weight="balanced": the score answers "NAME or not?" as if both were equally common; a
    chat where NAME writes 20% of the messages would otherwise put every score below 0.5.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    calib = {"name_centroid": centroid(name_vecs), "others_centroid": centroid(others_vecs)}
    x = likeness_feature(cal_vecs, calib).reshape(-1, 1)  # (N, 1)
    y = np.asarray(cal_labels)
    if len(set(y.tolist())) < 2:
        raise LikemeError("the likeness score needs messages by NAME and by others to calibrate on: "
                          "ingest chats where NAME talks with other people")
    lr = LogisticRegression(class_weight="balanced").fit(x, y)
    calib.update(coef=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]),
                 calibrated_on={"name": int(y.sum()), "others": int(len(y) - y.sum())})
    return calib


def calibrated(features, calib: dict):
    """Platt: sigmoid(coef * feature + intercept), elementwise."""
    import numpy as np

    z = calib["coef"] * np.asarray(features, dtype=np.float64) + calib["intercept"]
    return 1.0 / (1.0 + np.exp(-z))


def auc(labels: list[int], scores) -> float:
    """ROC-AUC: the chance a random message of NAME scores above a random one of someone else."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if 0 < sum(labels) < len(labels) else float("nan")


def fit_score(model, name: str, train_sessions: list, held_sessions: list, *, max_per_side: int = 1000,
              seed: int = 0) -> dict:
    """The likeness score of NAME on `model`: centroids from the training sessions (a sample of at most
    `max_per_side` messages per side: a mean of 1000 unit vectors moves by ~3% with the sample), Platt
    scaling on the held-out ones. `heldout_auc` is the held-out ROC-AUC of the calibrated score, the
    same quantity `evaluate.eval_embedder` reports. The calibration is monotone, so fitting it on the
    same messages can change the AUC only by its sign: a feature that ranks backwards (the base model's
    can: a question and its answer share a topic) is read forwards, as it would be by any user of it."""
    import random

    from likeme.data.authors import labelled_messages

    rng = random.Random(seed)
    mine = [m.text for s in train_sessions for m in s.messages if m.author == name]
    others = [m.text for s in train_sessions for m in s.messages if m.author != name]
    mine = rng.sample(mine, min(len(mine), max_per_side))
    others = rng.sample(others, min(len(others), max_per_side))
    texts, labels = labelled_messages(held_sessions, name)
    if not others:  # NAME's training sessions have nobody else: use the held-out others for the centroid
        others = [t for t, y in zip(texts, labels) if not y]
    held_vecs = embed(model, texts)
    calib = fit_calibration(embed(model, mine), embed(model, others), held_vecs, labels)
    calib["heldout_auc"] = auc(labels, calibrated(likeness_feature(held_vecs, calib), calib))
    return calib


class Embedder:
    """A sentence embedder, with the likeness score of NAME when its run has one (`calib`)."""

    def __init__(self, model, calib: dict | None = None, name: str = ""):
        self.model, self.calib, self.name = model, calib, name

    def __repr__(self) -> str:
        return f"Embedder(name={self.name!r}, score={self.calib is not None})"

    def embed(self, texts: list[str]):
        return embed(self.model, list(texts))

    def features(self, texts: list[str]):
        return likeness_feature(self.embed(texts), self._calib())

    def score(self, texts: list[str]) -> list[float]:
        """How much each text reads like NAME, 0..1: ["sure thing", "Can you help me?"] -> [0.83, 0.12]"""
        return [float(p) for p in calibrated(self.features(texts), self._calib())] if texts else []

    def _calib(self) -> dict:
        if self.calib is None:
            raise LikemeError("this embedder has no likeness score (score.json): train one with "
                              "likeme train embedder --as NAME")
        return self.calib


def load_embedder(run: str | os.PathLike, *, base: bool = False) -> Embedder:
    """An embedder run (or any sentence-embedding model) -> `Embedder`; the likeness score comes with a
    run of `likeme train embedder --as NAME`. `base=True`: the run's base model with the score the run
    made for it, for comparison."""
    from likeme import models, runs

    ref = models.resolve(run)
    saved = {}
    if ref.kind == "run" and (ref.path / "score.json").is_file():
        saved = json.loads((ref.path / "score.json").read_text("utf-8"))
    if base:
        if ref.kind != "run":
            raise LikemeError(f"{run} is not a run: it has no base model")
        return Embedder(load_model(runs.base_of(ref.path)), saved.get("base"), saved.get("name", ""))
    return Embedder(load_model(ref), saved.get("model"), saved.get("name", ""))


def load_scorer(run: str | os.PathLike, *, base: bool = False) -> Embedder:
    """`load_embedder` for a run that has a likeness score; a clear error for one that has not."""
    from likeme import models

    ref = models.resolve(run)
    if ref.kind != "run" or not (ref.path / "score.json").is_file():
        raise LikemeError(f"{run} has no likeness score (score.json): train one with "
                          "likeme train embedder --as NAME")
    return load_embedder(ref.path, base=base)
