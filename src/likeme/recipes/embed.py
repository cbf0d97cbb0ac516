"""Match my vibe: fine-tune a sentence embedder so that messages written by NAME lie close together.

    likeme train embedder --as Robin                  # minilm, triplets from who wrote what
    likeme train embedder --data pairs.csv --out runs/qa   # or your own pairs / triplets
    likeme score robin-embedder "sure, see you there"     # 0..1: how much like Robin
    likeme search robin-embedder "see you there" --k 5    # most similar messages in the store

setup (store -> time-split sessions -> authorship triplets, base model) -> train (a plain loop over
sentence-transformers' `TripletLoss`, batches of similar length; Ctrl-C stops and saves what was
trained) -> evaluate (held-out triplet accuracy and ROC-AUC of the likeness score, base and final)
-> save (the run folder describes itself).

Measured on the demo chat (`examples/chatterbot_chat.py`: Robin answers in lower case without a full
stop, Sam and Kai ask; 1,543 training triplets), defaults, 2 idle CPU cores: 49 steps, 1 min 39 s
wall; on the later export never trained on, triplet accuracy 0.08 -> 0.93 and score AUC 0.87 (base
feature) -> 0.97.

Triplets from authorship (`--as NAME`, the default source; built by `datasets.authorship_triplets`):
    anchor    a text message by NAME (at least --min-chars characters: "ok", "k", "?" say nothing
              about style and would be as likely anyone's),
    positive  another message by NAME, from a different session when there is one, so that what the
              two share is NAME's style rather than one evening's topic,
    negative  a message by someone else in the anchor's session (else in its conversation): same
              topic, same moment, different person, the hardest thing to tell apart and the one that
              teaches style.
The latest --heldout fraction of the sessions NAME speaks in is never trained on
(`datasets.split_by_time`); held-out triplets and messages come from those sessions only.

A likeness score in 0..1 (`load_scorer(run).score(texts)`): feature = cos(text, centroid of NAME's
training messages) - cos(text, centroid of the others' training messages), mapped to 0..1 by
logistic regression on the held-out messages (Platt scaling, "balanced": 0.5 means as likely NAME
as not, whatever share of the chat NAME writes). The same is stored for the base model so that
`evaluate.eval_embedder` can compare the two on a file never trained on.

Run folder:
    run.yaml        base, task: sentence-embedding, recipe: embed, as, status, resolved config
    model/          a sentence-transformers folder (modules.json, config.json, model.safetensors, tokenizer)
    score.json      centroids and calibration of the likeness score, for the model and its base
    metrics.jsonl   step, loss, lr (and eval_loss, triplet_accuracy at evaluations)
    metrics.json    base_/triplet_accuracy, base_/auc, counts, steps, seconds
    plots/loss.png  train and held-out loss, held-out triplet accuracy
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from likeme import datasets
from likeme.errors import LikemeError

MIN_MESSAGES = 10  # fewer messages by NAME than this: nothing to learn a style from


@dataclass
class EmbedConfig:
    name: str = field(default="", metadata={"flag": "as", "metavar": "NAME",
                                            "help": "Whose style to learn, as `likeme people` shows them."})
    db: str | None = field(default=None, metadata={"help": "The store to read (default: $LIKEME_HOME/likeme.db)."})
    base: str = field(default="minilm", metadata={
        "help": "Base model: minilm (all-MiniLM-L6-v2, bundled), a sentence-transformers folder or run."})
    data: str | None = field(default=None, metadata={
        "metavar": "FILE",
        "help": "Train on this CSV/JSONL of anchor,positive[,negative] rows instead of the store's authorship."})
    epochs: float = field(default=1.0, metadata={
        "help": "Passes over the triplets (fresh positives and negatives each pass). One is enough: on the "
                "demo chat held-out triplet accuracy is 0.96 after half of it."})
    max_triplets: int = field(default=2000, metadata={
        "help": "Triplets per pass at most (anchors sampled when NAME wrote more): bounds a CPU run to "
                "minutes whatever the store's size."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps (overrides --epochs)."})
    batch_size: int = field(default=32, metadata={"help": "Triplets per step (x3 sentences per forward pass)."})
    lr: float = field(default=5e-5, metadata={
        "help": "Peak learning rate (5e-5: a little above sentence-transformers' 2e-5, for short runs)."})
    margin: float = field(default=0.3, metadata={
        "help": "Triplet margin in cosine distance: the negative must be this much further than the positive."})
    min_chars: int = field(default=3, metadata={
        "help": "Messages shorter than this ('ok', '?') are left out of triplets and centroids."})
    max_seq_length: int = field(default=64, metadata={
        "help": "Word pieces per message: chat messages are short; the few longer ones are cut, which "
                "halves the cost of a step against 128."})
    heldout: float = field(default=0.1, metadata={"help": "Latest fraction of sessions never trained on."})
    session_gap_hours: float = field(default=6.0, metadata={"help": "A pause this long starts a new session."})
    eval_every: int = field(default=25, metadata={"help": "Held-out loss and triplet accuracy every N steps."})
    eval_max: int = field(default=512, metadata={"help": "Held-out triplets used at each evaluation during training."})
    centroid_max: int = field(default=1000, metadata={
        "help": "Training messages (per side) averaged into the score's centroids: a mean of 1000 unit "
                "vectors moves by ~1/sqrt(1000) = 3% with the sample."})
    seed: int = field(default=0, metadata={"help": "Random seed (triplet sampling, data order, dropout)."})
    out: str | None = field(default=None, metadata={"help": "Run folder (default: $LIKEME_HOME/runs/NAME-embedder)."})


def read_rows(path: str | Path) -> list[tuple[str, ...]]:
    """A --data file -> rows of (anchor, positive) or (anchor, positive, negative).

    CSV/TSV with a header line naming the columns, or JSONL with those keys:
      anchor,positive            -> [("how are you?", "good hbu"), ...]
      {"anchor": "a", "positive": "p", "negative": "n"} -> [("a", "p", "n")]
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise LikemeError(f"{path}: no such file: pass a CSV or JSONL of anchor,positive[,negative] rows")
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LikemeError(f"{path}: cannot read it as UTF-8 text ({e})") from None
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as e:
                    raise LikemeError(f"{path}: line {n}: not JSON ({e}); write one object per line") from None
    else:
        dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
        records = list(csv.DictReader(text.splitlines(), dialect=dialect))
    cols = ("anchor", "positive", "negative") if records and isinstance(records[0], dict) and \
        "negative" in records[0] else ("anchor", "positive")
    rows = []
    for n, r in enumerate(records, 1):
        if not isinstance(r, dict) or any(not str(r.get(c) or "").strip() for c in cols):
            raise LikemeError(f"{path}: row {n} lacks one of the columns {', '.join(cols)}: "
                              f"every row needs {', '.join(cols)} (a header line in CSV)")
        rows.append(tuple(str(r[c]).strip() for c in cols))
    if not rows:
        raise LikemeError(f"{path}: no rows: write a header line anchor,positive[,negative] and one row per example")
    return rows


# ---------------------------------------------------------------------------------------------
# Embeddings, accuracy and the likeness score: shared with evaluate.eval_embedder and index.py


def load_model(name, *, device: str | None = None):
    """A SentenceTransformer from any name `models.resolve` knows (minilm, a folder, a run).

    Example: load_model("minilm").encode(["hi"]).shape -> (1, 384)
    """
    from likeme import models

    ref = name if isinstance(name, models.ModelRef) else models.resolve(name)
    if ref.task in ("causal-lm", "classification"):
        raise LikemeError(f"model {ref.name!r} is a {ref.task} model, not a sentence embedder: use minilm "
                          "or a run of likeme train embedder")
    path = models.weights_path(ref)
    import torch
    from sentence_transformers import SentenceTransformer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as e:  # foreign files: say which folder
        raise LikemeError(f"{path}: could not load it as a sentence-transformers model "
                          f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from e


def embed(model, texts: list[str], *, batch_size: int = 64, progress: bool = False):
    """Unit-length float32 vectors, (N, D): cosine similarity is then a dot product."""
    import numpy as np

    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension() or 0), dtype=np.float32)
    # Longest first inside encode: sentence-transformers sorts by length itself to pad less.
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


class Scorer:
    """How much a text reads like NAME, 0..1. Get one with `load_scorer(run)`.

    Example: load_scorer("runs/robin-embedder").score(["sure thing", "Can you help me?"]) -> [0.83, 0.12]
    """

    def __init__(self, model, calib: dict, name: str = ""):
        self.model, self.calib, self.name = model, calib, name

    def features(self, texts: list[str]):
        return likeness_feature(embed(self.model, list(texts)), self.calib)

    def score(self, texts: list[str]) -> list[float]:
        return [float(p) for p in calibrated(self.features(texts), self.calib)] if texts else []


def load_scorer(run, *, base: bool = False) -> Scorer:
    """The likeness scorer a `likeme train embedder --as NAME` run saved (`base=True`: the same
    score built on its base model's embeddings, for comparison)."""
    from likeme import models

    ref = models.resolve(run)
    path = (ref.path / "score.json") if ref.kind == "run" else None
    if path is None or not path.is_file():
        raise LikemeError(f"{run} has no likeness score (score.json): train one with "
                          "likeme train embedder --as NAME")
    saved = json.loads(path.read_text("utf-8"))
    if base:
        return Scorer(load_model(base_of(ref.path)), saved["base"], saved.get("name", ""))
    return Scorer(load_model(ref), saved["model"], saved.get("name", ""))


def base_of(run: Path) -> str:
    """The base named in run.yaml, relative to the run folder when it is one there."""
    from likeme import models

    base = str(models.read_run_meta(Path(run)).get("base", ""))
    local = Path(run) / base
    return str(local) if base and local.exists() else base


# ---------------------------------------------------------------------------------------------
def train_embedder(cfg: EmbedConfig, *, progress: bool = True) -> Path:
    """Train, evaluate and save a style embedder; returns the run folder."""
    from likeme import models, plots
    from likeme.config import to_dict
    from likeme.store import Store

    # -- setup -----------------------------------------------------------------------------------
    if not cfg.name and not cfg.data:
        raise LikemeError("say whose style to learn: --as NAME (see likeme people), or give --data FILE")
    run = Path(cfg.out) if cfg.out else models.runs_dir() / f"{_slug(cfg.name or Path(cfg.data).stem)}-embedder"
    if run.exists() and any(run.iterdir()):
        raise LikemeError(f"{run} already exists: pass --out for a new run, or delete it")

    # Sessions of NAME, split by time: they give the authorship triplets (without --data) and the
    # likeness score (whenever NAME is known).
    train_s = held_s = []
    if cfg.name:
        from datetime import timedelta

        with Store(cfg.db) as store:
            sessions = datasets.store_sessions(store, cfg.name, gap=timedelta(hours=cfg.session_gap_hours),
                                      min_chars=cfg.min_chars)
        train_s, held_s = datasets.split_by_time(sessions, cfg.heldout)
        n_mine = sum(m.author == cfg.name for s in sessions for m in s.messages)
        if n_mine < MIN_MESSAGES:
            raise LikemeError(f"too little to learn {cfg.name}'s style: {n_mine} messages of {cfg.min_chars}+ "
                              f"characters by {cfg.name}, at least {MIN_MESSAGES} needed (ingest more chats)")
        if not any(m.author != cfg.name for s in sessions for m in s.messages):
            raise LikemeError(f"only {cfg.name} writes in these chats: a style is learnt against other people's "
                              "messages; ingest chats with others in them")
        if not held_s:
            raise LikemeError("--heldout 0 leaves nothing to calibrate the likeness score on: use a fraction "
                              "like 0.1" if cfg.heldout <= 0 else f"{cfg.name} speaks in only one session: "
                              "ingest chats spanning more sessions")
    if cfg.data:
        rows = read_rows(cfg.data)
        # The file's order is taken as time order: its last rows are held out.
        n_held = max(1, math.ceil(len(rows) * cfg.heldout)) if cfg.heldout > 0 and len(rows) > 1 else 0
        fixed_train, held_rows = rows[: len(rows) - n_held], rows[len(rows) - n_held:]

        def epoch_rows(epoch: int) -> list[tuple]:
            out = list(fixed_train)
            random.Random(cfg.seed + epoch).shuffle(out)
            return out[: cfg.max_triplets]
    else:
        held_rows = datasets.authorship_triplets(held_s, cfg.name, random.Random(cfg.seed + 10_000))
        fixed_train = datasets.authorship_triplets(train_s, cfg.name, random.Random(cfg.seed))

        def epoch_rows(epoch: int) -> list[tuple]:
            # Fresh positives and negatives (and anchors, past --max-triplets) each pass.
            out = datasets.authorship_triplets(train_s, cfg.name, random.Random(cfg.seed + epoch))
            random.Random(cfg.seed + epoch).shuffle(out)
            return out[: cfg.max_triplets]
    if not fixed_train:
        raise LikemeError("no training triplets: NAME needs messages in at least two sessions with other people")
    arity = len(fixed_train[0])

    import torch  # the data is checked before the slow imports and the model load
    from sentence_transformers.sentence_transformer.losses import (MultipleNegativesRankingLoss, TripletDistanceMetric,
                                                                   TripletLoss)
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(cfg.seed)
    model = load_model(cfg.base)
    model.max_seq_length = cfg.max_seq_length
    device = model.device
    if arity == 3:
        # TripletLoss, not MultipleNegativesRankingLoss: with MNRL every other row's positive is an
        # in-batch negative, and here every positive is NAME's, so MNRL would push NAME's messages
        # apart from each other. Cosine distance: the score and the search compare by cosine too.
        loss_fn = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=cfg.margin)
    else:
        # Pairs only (a --data file without negatives): in-batch negatives are all there is (MNRL,
        # Henderson et al. 2017); the pairs are assumed to be about different things.
        loss_fn = MultipleNegativesRankingLoss(model)

    run.mkdir(parents=True, exist_ok=True)
    meta = {"base": cfg.base, "task": "sentence-embedding", "recipe": "embed", "as": cfg.name or None,
            "status": "training", "config": to_dict(cfg)}
    models.write_run_meta(run, meta)
    eval_rows = held_rows[:: max(1, -(-len(held_rows) // cfg.eval_max))] if held_rows else []
    base_acc = _evaluate(model, loss_fn, held_rows, cfg.batch_size)[1]
    base_calib = _calibrate(model, cfg, train_s, held_s) if cfg.name else None

    # -- train -----------------------------------------------------------------------------------
    # A plain loop, not SentenceTransformerTrainer: that one needs the `datasets` package, which
    # likeme does not otherwise depend on; the loss modules are sentence-transformers' own.
    steps_per_epoch = max(1, -(-min(len(fixed_train), cfg.max_triplets) // cfg.batch_size))
    total = cfg.max_steps or max(1, int(steps_per_epoch * cfg.epochs + 0.999))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    # 10% warm-up, then linear decay: the sentence-transformers training examples' schedule.
    scheduler = get_linear_schedule_with_warmup(optimizer, max(1, total // 10), total)
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", desc="training", file=sys.stderr, dynamic_ncols=True)
    log = open(run / "metrics.jsonl", "w", encoding="utf-8")
    started = time.time()
    step, epoch, batches, stopped = 0, 0, [], False
    try:
        while step < total:
            if not batches:
                batches = _length_batches(epoch_rows(epoch), cfg.batch_size, random.Random(cfg.seed + epoch))
                epoch += 1
            batch = batches.pop(0)
            model.train()
            features = [_to(model.preprocess(list(col)), device) for col in zip(*batch)]  # arity x {input_ids: (B, T)}
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            row = {"step": step, "loss": round(loss.item(), 4), "lr": scheduler.get_last_lr()[0],
                   "epoch": round(epoch - 1 + (steps_per_epoch - len(batches)) / steps_per_epoch, 4)}
            if eval_rows and (step % cfg.eval_every == 0 or step == total):
                held_loss, acc = _evaluate(model, loss_fn, eval_rows, cfg.batch_size)
                row["eval_loss"] = round(held_loss, 4)
                row["triplet_accuracy" if arity == 3 else "recall_at_1"] = round(acc, 4)
                if bar is not None:
                    bar.write(f"step {step}: held-out loss {row['eval_loss']:.4f}")
            log.write(json.dumps(row) + "\n")
            log.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
    except KeyboardInterrupt:  # Ctrl-C: keep the steps done; evaluate and save them (Ctrl-C again quits)
        stopped = True
        import sys

        print(f"\nStopped at step {step} of {total}: evaluating and saving what was trained...", file=sys.stderr)
    finally:
        log.close()
        if bar is not None:
            bar.close()
    seconds = round(time.time() - started, 1)

    # -- evaluate --------------------------------------------------------------------------------
    model.eval()
    metrics: dict = {}
    acc = _evaluate(model, loss_fn, held_rows, cfg.batch_size)[1]
    key = "triplet_accuracy" if arity == 3 else "recall_at_1"
    metrics.update({f"base_{key}": _r(base_acc), key: _r(acc)})
    calib = _calibrate(model, cfg, train_s, held_s) if cfg.name else None
    if calib:
        metrics.update(base_auc=_r(base_calib.pop("heldout_auc")), auc=_r(calib.pop("heldout_auc")),
                       heldout_messages=sum(calib["calibrated_on"].values()))
    metrics.update(train_examples=len(fixed_train), heldout_examples=len(held_rows),
                   train_sessions=len(train_s), heldout_sessions=len(held_s), steps=step, seconds=seconds)
    if stopped:
        metrics["stopped_early"] = True

    # -- save ------------------------------------------------------------------------------------
    model.save(str(run / "model"))
    if calib:
        score = {"name": cfg.name,
                 "feature": "cos(text, NAME's centroid) - cos(text, others' centroid); p = sigmoid(coef * feature + intercept)",
                 "model": calib, "base": base_calib}
        (run / "score.json").write_text(json.dumps(score) + "\n", "utf-8")
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    plots.curves(run, [("loss", "train loss", "-"), ("eval_loss", "held-out loss", "o-")],
                 right=(key, "held-out " + key.replace("_", " ")))
    meta["status"] = "done"
    models.write_run_meta(run, meta)
    return run


def _calibrate(model, cfg: EmbedConfig, train_s: list, held_s: list) -> dict:
    """Centroids from the training sessions (a sample of at most cfg.centroid_max per side), Platt
    scaling on the held-out ones; `heldout_auc` is the held-out ROC-AUC of the calibrated score, the
    same quantity `evaluate.eval_embedder` reports. The calibration is monotone, so fitting it on the
    same messages can change the AUC only by its sign: a feature that ranks backwards (the base model's
    can: a question and its answer share a topic) is read forwards, as it would be by any user of it."""
    rng = random.Random(cfg.seed)
    mine = [m.text for s in train_s for m in s.messages if m.author == cfg.name]
    others = [m.text for s in train_s for m in s.messages if m.author != cfg.name]
    mine = rng.sample(mine, min(len(mine), cfg.centroid_max))
    others = rng.sample(others, min(len(others), cfg.centroid_max))
    texts, labels = datasets.labelled_messages(held_s, cfg.name)
    if not others:  # NAME's training sessions have nobody else: use the held-out others for the centroid
        others = [t for t, y in zip(texts, labels) if not y]
    held_vecs = embed(model, texts)
    calib = fit_calibration(embed(model, mine), embed(model, others), held_vecs, labels)
    calib["heldout_auc"] = auc(labels, calibrated(likeness_feature(held_vecs, calib), calib))
    return calib


def _length_batches(rows: list[tuple], size: int, rng: random.Random, window: int = 16) -> list[list[tuple]]:
    """Batches of rows of similar length, in random order: rows are sorted by their longest text within
    windows of `window` batches. A batch pads to its longest text, and chat lengths vary a lot (one long
    message in 32 costs the other 31 its padding); a triplet's loss does not depend on its batch-mates.

    Example (size 2, one window): rows of lengths 1, 9, 2, 8 -> batches [[1, 2], [8, 9]] in random order.
    """
    out = []
    for i in range(0, len(rows), size * window):
        chunk = sorted(rows[i: i + size * window], key=lambda r: max(len(t) for t in r))
        out += [chunk[j: j + size] for j in range(0, len(chunk), size)]
    rng.shuffle(out)
    return out


def _evaluate(model, loss_fn, rows: list[tuple], batch_size: int) -> tuple[float, float]:
    """(held-out loss, accuracy) from one embedding pass, dropout off. Accuracy: for triplets the
    share with cos(a, p) > cos(a, n); for pairs recall@1, the share of anchors whose own positive is
    the nearest of the batch's positives. The loss is the training loss module's own
    `compute_loss_from_embeddings`, batch by batch as in training (in-batch negatives for pairs)."""
    import numpy as np
    import torch

    if not rows:
        return float("nan"), float("nan")
    unique = sorted({t for row in rows for t in row})
    where = {t: i for i, t in enumerate(unique)}
    vecs = torch.from_numpy(embed(model, unique, batch_size=2 * batch_size))  # (U, D)
    losses, hits = [], []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            batch = rows[i: i + batch_size]
            cols = [vecs[[where[r[k]] for r in batch]] for k in range(len(batch[0]))]  # arity x (B, D)
            losses.append(loss_fn.compute_loss_from_embeddings(cols, None).item() * len(batch))
            if len(cols) == 3:
                hits.extend(((cols[0] * cols[1]).sum(1) > (cols[0] * cols[2]).sum(1)).tolist())
            else:
                hits.extend(((cols[0] @ cols[1].T).argmax(1) == torch.arange(len(batch))).tolist())  # (B, B) -> (B,)
    return sum(losses) / len(rows), float(np.mean(hits))


def _to(features: dict, device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


def _r(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^\w.-]+", "-", name).strip("-").lower() or "embedder"
