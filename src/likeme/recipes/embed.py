"""Match my vibe: fine-tune a sentence embedder so that messages written by NAME lie close together.

    likeme train embedder --as Robin                  # minilm, triplets from who wrote what
    likeme train embedder --data pairs.csv --out runs/qa   # or your own pairs / triplets
    likeme train embedder --out runs/robin-embedder --resume   # after Ctrl-C or a kill
    likeme score robin-embedder "sure, see you there"     # 0..1: how much like Robin
    likeme search robin-embedder "see you there" --k 5    # most similar messages in the store

setup (store -> time-split sessions -> authorship triplets, base model) -> train (transformers' Trainer
over sentence-transformers' `TripletLoss`, batches of similar length, fresh triplets each pass, a
checkpoint at each evaluation and on Ctrl-C) -> evaluate (held-out triplet accuracy and ROC-AUC of the
likeness score, base and final) -> save (model/: a sentence-transformers folder; score.json: the
likeness score for the model and its base, see embedder.py).

Measured on the demo chat (`examples/chatterbot_chat.py`: Robin answers in lower case without a full
stop, Sam and Kai ask; 1,543 training triplets), defaults, 2 idle CPU cores: 49 steps, 1 min 39 s
wall; on the later export never trained on, triplet accuracy 0.08 -> 0.93 and score AUC 0.87 (base
feature) -> 0.97.

Triplets from authorship (`--as NAME`, the default source; built by `authors.authorship_triplets`):
    anchor    a text message by NAME (at least --min-chars characters: "ok", "k", "?" say nothing
              about style and would be as likely anyone's),
    positive  another message by NAME, from a different session when there is one, so that what the
              two share is NAME's style rather than one evening's topic,
    negative  a message by someone else in the anchor's session (else in its conversation): same
              topic, same moment, different person, the hardest thing to tell apart and the one that
              teaches style.
The latest --heldout fraction of the sessions NAME speaks in is never trained on
(`examples.split_by_time`); held-out triplets and messages come from those sessions only.

metrics.json: base_/triplet_accuracy (or recall_at_1 for pairs), base_/auc, counts, steps, seconds.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from likeme.batching import Passes
from likeme.config import precision_field, report_to_field
from likeme.errors import LikemeError

MIN_MESSAGES = 10  # fewer messages by NAME than this: nothing to learn a style from
FEATURE = "cos(text, NAME's centroid) - cos(text, others' centroid); p = sigmoid(coef * feature + intercept)"


@dataclass
class EmbedConfig:
    """Match my vibe: fine-tune sentence embeddings so NAME's messages lie close together.

    Triplets from the store: anchor and positive by NAME, negative by someone else in the same
    session. Saves a likeness score for `likeme score` and a model for `likeme search`."""
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
    eval_every: int = field(default=25, metadata={
        "help": "Held-out loss and triplet accuracy, and a checkpoint, every N steps."})
    eval_max: int = field(default=512, metadata={"help": "Held-out triplets used at each evaluation during training."})
    centroid_max: int = field(default=1000, metadata={
        "help": "Training messages (per side) averaged into the score's centroids: a mean of 1000 unit "
                "vectors moves by ~1/sqrt(1000) = 3% with the sample."})
    precision: str = precision_field()
    report_to: str = report_to_field()
    seed: int = field(default=0, metadata={"help": "Random seed (triplet sampling, data order, dropout)."})
    out: str | None = field(default=None, metadata={"help": "Run folder (default: $LIKEME_HOME/runs/NAME-embedder)."})


def summary(cfg: EmbedConfig, run: Path, m: dict) -> str:
    """What `likeme train embedder` prints when done: held-out triplet accuracy and AUC, base and trained."""
    lines = []
    if "triplet_accuracy" in m:
        lines.append(f"{run}: held-out triplet accuracy {m['base_triplet_accuracy']} (base) -> "
                     f"{m['triplet_accuracy']} after {m['steps']} steps")
    if m.get("auc") is not None:
        lines.append(f"held-out AUC of the likeness score: {m['base_auc']} (base) -> {m['auc']}")
        lines.append(f'Try: likeme score {run} "some text"   or   likeme search {run} "some text"')
    return "\n".join(lines)


def train_embedder(cfg: EmbedConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Train, evaluate and save a style embedder; returns the run folder. Ctrl-C stops after the current
    step with a checkpoint and raises `runs.Interrupted`; `resume=True` continues from the latest one."""
    from likeme import runs
    from likeme.check import plots
    from likeme.data import authors, tables
    from likeme.data.store import file_data
    from likeme.use import embedder

    # -- setup -----------------------------------------------------------------------------------
    if not resume and not cfg.name and not cfg.data:
        raise LikemeError("say whose style to learn: --as NAME (see likeme people), or give --data FILE")
    stem = cfg.name or (Path(cfg.data).stem if cfg.data else "")
    run, cfg = runs.start("embedder", cfg, default_name=f"{runs.slug(stem)}-embedder", resume=resume)
    # NAME's sessions, split by time, give the authorship triplets (without --data) and the likeness score.
    train_s, held_s, provenance = _sessions(cfg) if cfg.name else ([], [], {})
    if cfg.data:
        rows = tables.read_pairs(cfg.data)
        provenance.update(file_data(cfg.data))
        # The file's order is taken as time order: its last rows are held out.
        n_held = max(1, math.ceil(len(rows) * cfg.heldout)) if cfg.heldout > 0 and len(rows) > 1 else 0
        fixed_train, held_rows = rows[: len(rows) - n_held], rows[len(rows) - n_held:]

        def epoch_rows(epoch: int) -> list[tuple]:
            out = list(fixed_train)
            random.Random(cfg.seed + epoch).shuffle(out)
            return out
    else:
        held_rows = authors.authorship_triplets(held_s, cfg.name, random.Random(cfg.seed + 10_000))
        fixed_train = authors.authorship_triplets(train_s, cfg.name, random.Random(cfg.seed))

        def epoch_rows(epoch: int) -> list[tuple]:  # fresh positives and negatives (and anchors) each pass
            out = authors.authorship_triplets(train_s, cfg.name, random.Random(cfg.seed + epoch))
            random.Random(cfg.seed + epoch).shuffle(out)
            return out
    if not fixed_train:
        raise LikemeError("no training triplets: NAME needs messages in at least two sessions with other people")
    arity = len(fixed_train[0])
    key = "triplet_accuracy" if arity == 3 else "recall_at_1"

    from sentence_transformers.sentence_transformer.losses import (
        MultipleNegativesRankingLoss,
        TripletDistanceMetric,
        TripletLoss,
    )
    from transformers import set_seed

    from likeme.training import losses, trainable
    from likeme.training import trainer as tr

    set_seed(cfg.seed)
    model = embedder.load_model(cfg.base, device=tr.device())
    model.max_seq_length = cfg.max_seq_length
    if arity == 3:
        # TripletLoss, not MultipleNegativesRankingLoss: with MNRL every other row's positive is an
        # in-batch negative, and here every positive is NAME's, so MNRL would push NAME's messages
        # apart from each other. Cosine distance: the score and the search compare by cosine too.
        loss = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=cfg.margin)
    else:
        # Pairs only (a --data file without negatives): in-batch negatives are all there is (MNRL,
        # Henderson et al. 2017); the pairs are assumed to be about different things.
        loss = MultipleNegativesRankingLoss(model)

    def score_of(m) -> dict | None:  # the likeness score of NAME on model m (embedder.py)
        return embedder.fit_score(m, cfg.name, train_s, held_s, max_per_side=cfg.centroid_max, seed=cfg.seed) \
            if cfg.name else None

    run.begin(config=cfg, task="sentence-embedding", base=cfg.base, data=provenance, **{"as": cfg.name or None})
    with run.recording():
        if "baseline" not in run.meta:  # the base model's figures, measured once (a resumed run has them)
            base_calib = score_of(model)
            base_auc = _r(base_calib.pop("heldout_auc")) if base_calib else None
            if base_calib and run.main:
                _write_score(run.path, cfg.name, base=base_calib)
            run.update(baseline={key: _r(_evaluate(model, loss, held_rows, cfg.batch_size)[1]), "auc": base_auc})
        model = trainable.select(model, "all")
        eval_rows = held_rows[:: max(1, -(-len(held_rows) // cfg.eval_max))] if held_rows else []

        # -- train -------------------------------------------------------------------------------
        passes = Passes(epoch_rows, min(len(fixed_train), cfg.max_triplets), cfg.batch_size, cfg.seed)
        total = tr.steps(len(passes), cfg.batch_size, cfg.epochs, cfg.max_steps)[1]
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every if eval_rows else None, save_steps=cfg.eval_every,
            max_steps=total, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.lr, weight_decay=0.01,
            # 10% warm-up, then linear decay: the sentence-transformers training examples' schedule.
            lr_scheduler_type="linear", warmup_steps=max(1, total // 10),
            train_sampling_strategy="sequential",  # Passes orders each pass in batches of similar length
            ddp_find_unused_parameters=True)  # several processes: an encoder's pooler is unused by mean pooling

        def collate(batch: list[tuple]) -> dict:  # arity columns -> {"features": [{input_ids: (B, T), ...}, ...]}
            return {"features": [model.preprocess(list(column)) for column in zip(*batch)]}

        trainer = tr.make_trainer(
            run, losses.SentenceObjective(model, loss), args, passes, collate, progress=progress, total_steps=total,
            evaluate=(lambda _: dict(zip(("loss", key), _evaluate(model, loss, eval_rows, cfg.batch_size))))
            if eval_rows else None, callbacks=callbacks)
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        model.eval()
        baseline = run.meta["baseline"]
        figures = {f"base_{key}": baseline[key], key: _r(_evaluate(model, loss, held_rows, cfg.batch_size)[1])}
        calib = score_of(model)
        if calib:
            figures.update(base_auc=baseline["auc"], auc=_r(calib.pop("heldout_auc")),
                           heldout_messages=sum(calib["calibrated_on"].values()))
        figures.update(train_examples=len(fixed_train), heldout_examples=len(held_rows), train_sessions=len(train_s),
                       heldout_sessions=len(held_s), steps=trainer.state.global_step,
                       seconds=run.metrics.rows()[-1]["seconds"])

        # -- save --------------------------------------------------------------------------------
        with run.saving_model() as folder:
            model.save(str(folder))
        if calib and run.main:
            _write_score(run.path, cfg.name, model=calib)
        plots.learning_curves(run.path, right=f"eval_{key}" if eval_rows else None)
        run.finish(figures)
    return run.path


def _sessions(cfg: EmbedConfig):
    """(training sessions, held-out sessions, provenance) of NAME's chats, checked for enough to learn from."""
    from datetime import timedelta

    from likeme.data import authors, examples
    from likeme.data.store import Store

    with Store(cfg.db) as store:
        sessions = authors.store_sessions(store, cfg.name, gap=timedelta(hours=cfg.session_gap_hours),
                                           min_chars=cfg.min_chars)
        provenance = store.provenance(cfg.name)
    n_mine = sum(m.author == cfg.name for s in sessions for m in s.messages)
    if n_mine < MIN_MESSAGES:
        raise LikemeError(f"too little to learn {cfg.name}'s style: {n_mine} messages of {cfg.min_chars}+ "
                          f"characters by {cfg.name}, at least {MIN_MESSAGES} needed (ingest more chats)")
    if not any(m.author != cfg.name for s in sessions for m in s.messages):
        raise LikemeError(f"only {cfg.name} writes in these chats: a style is learnt against other people's "
                          "messages; ingest chats with others in them")
    train_s, held_s = examples.split_by_time(sessions, cfg.heldout)
    if not held_s:
        raise LikemeError("--heldout 0 leaves nothing to calibrate the likeness score on: use a fraction like 0.1"
                          if cfg.heldout <= 0 else f"{cfg.name} speaks in only one session: ingest chats spanning more sessions")
    return train_s, held_s, provenance


def _write_score(run: Path, name: str, **calibrations) -> None:
    """score.json: the likeness score's centroids and calibration, for the model and/or its base."""
    path = run / "score.json"
    saved = json.loads(path.read_text("utf-8")) if path.is_file() else {"name": name, "feature": FEATURE}
    path.write_text(json.dumps({**saved, **calibrations}) + "\n", "utf-8")


def _evaluate(model, loss_fn, rows: list[tuple], batch_size: int) -> tuple[float, float]:
    """(held-out loss, accuracy) from one embedding pass, dropout off. Accuracy: for triplets the
    share with cos(a, p) > cos(a, n); for pairs recall@1, the share of anchors whose own positive is
    the nearest of the batch's positives. The loss is the training loss module's own
    `compute_loss_from_embeddings`, batch by batch as in training (in-batch negatives for pairs)."""
    import numpy as np
    import torch

    from likeme.use.embedder import embed

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


def _r(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)
