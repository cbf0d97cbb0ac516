"""Decide like me: fine-tune a model to put texts into classes (sequence classification).

    likeme train classifier --data tickets.csv --label-column team      # smollm2-135m, last block trained
    likeme train classifier --label-by author --min-messages 50          # who in the store wrote this?
    likeme train classifier --data intents.jsonl --base minilm           # an encoder, mean pooling
    likeme train classifier --data tickets.csv --out runs/t --resume     # after Ctrl-C or a kill

setup (labelled texts from a file or the store, a stratified train/validation split, the backbone with a
new head (heads.py), what trains) -> cache (what the frozen part computes, once: training/frozen.py) ->
train (transformers' Trainer, class-weighted cross-entropy with label smoothing, the new head at its own
higher learning rate, an evaluation and a checkpoint per epoch, early stopping on validation macro-F1 or
loss, the best epoch kept) -> evaluate (validation accuracy, macro-F1, confusion matrix) -> save (model/:
the whole classifier with its tokenizer, merged when LoRA trained it; `classifier.load_classifier` reads it).

What trains (--trainable): `last-blocks` (causal default: the last block, the final norm and the head,
the set-up of Raschka's LLMs-from-scratch ch. 6), `head`, `all` (encoder default), or `lora` (PEFT
adapters on every linear layer, the head trained in full).

run.yaml adds: backbone (causal | encoder), pooling, labels, text_column, label_column, template, max_length.
metrics.json: val_accuracy, val_macro_f1, val_loss, labels, train/val examples, best_epoch, steps, seconds, ...
plots/: loss.png (with validation macro-F1), confusion.png (validation).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import precision_field, report_to_field
from likeme.errors import LikemeError
from likeme.training.classifying import MAX_LENGTH_CAP  # light: no torch at import

TRAINABLE = ["last-blocks", "all", "head", "lora"]


@dataclass
class ClassifyConfig:
    """Decide like me: learn labels from labelled texts (--data FILE) or who wrote a message (--label-by author).

    \b
    likeme train classifier --data tickets.csv --label-column team
    likeme train classifier --label-by author --min-messages 50
    likeme train classifier --data intents.jsonl --base minilm"""
    data: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Labelled texts: a CSV, TSV or JSONL file with a header (or keys)."})
    text_column: str = field(default="text", metadata={"help": "The column of --data that holds the text."})
    label_column: str = field(default="label", metadata={"help": "The column of --data that holds the label."})
    db: str | None = field(default=None, metadata={
        "help": "The store --label-by reads (default: $LIKEME_HOME/likeme.db)."})
    label_by: str | None = field(default=None, metadata={
        "choices": ["author"], "help": "Take the texts from the store instead of --data: author = who wrote each message."})
    min_messages: int = field(default=10, metadata={
        "help": "--label-by author: leave out people with fewer text messages (too few to learn or to check)."})
    base: str = field(default="smollm2-135m", metadata={
        "help": "Backbone: smollm2-135m (causal LM), minilm (encoder), a local folder, a run or a Hugging Face id."})
    trainable: str | None = field(default=None, metadata={
        "choices": TRAINABLE,
        "help": "What trains: the last --last-blocks blocks + final norm + head, everything, the head only, or "
                "LoRA + head (default: last-blocks for a causal LM, all for an encoder)."})
    last_blocks: int = field(default=1, metadata={"help": "Blocks trained with --trainable last-blocks."})
    template: str | None = field(default=None, metadata={
        "help": "How a text is shown to the model, {text} standing for it (default for a causal LM: "
                "'Message: {text}\\nThe sender wants to', so that its last token sums the message up; "
                "for an encoder: '{text}')."})
    cache: bool = field(default=True, metadata={
        "help": "last-blocks / head: compute the frozen part once per example, not every epoch (same model, faster)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (16: the QLoRA paper's sweet spot for small data)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scale numerator (2 x rank, the common choice)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    epochs: float = field(default=10.0, metadata={
        "help": "Passes over the training texts (early stopping may end sooner); cheap with the cache "
                "(banking77, 40 texts per intent: test accuracy still rises until epoch 8-9)."})
    max_steps: int | None = field(default=None, metadata={
        "help": "Stop after this many optimizer steps (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate of the pretrained part that trains (default: lora 2e-4, last-blocks 2e-4, "
                "all 5e-5 encoder / 2e-5 causal; head: --head-lr)."})
    head_lr: float = field(default=2e-3, metadata={
        "help": "Peak learning rate of the new head, which starts random (ULMFiT's discriminative rates: "
                "on banking77, 40 texts per intent, last-blocks reached 0.64 test accuracy in 4 epochs with "
                "one rate of 1e-4 for all, 0.81 with the head at 1e-3)."})
    label_smoothing: float = field(default=0.1, metadata={
        "help": "Share of each target spread over the other labels (Szegedy et al. 2016): the training loss "
                "of a 135M model on a few dozen texts per label reaches ~0 within 5 epochs otherwise; "
                "+1 point of banking77 test accuracy."})
    batch_size: int = field(default=16, metadata={"help": "Texts per optimizer step."})
    max_length: int | None = field(default=None, metadata={
        "help": f"Tokens kept per text (default: the longest training text, at most {MAX_LENGTH_CAP})."})
    val_fraction: float = field(default=0.1, metadata={
        "help": "Share of each label held out for validation (early stopping, metrics.json)."})
    select_by: str = field(default="macro_f1", metadata={
        "choices": ["macro_f1", "loss"],
        "help": "Validation figure that picks the best epoch and stops early (macro-F1: every label counts the same)."})
    patience: int = field(default=3, metadata={
        "help": "Stop after this many epochs without a better validation figure (3: a small validation set "
                "is noisy, and with a decaying rate later epochs still gain)."})
    class_weights: bool = field(default=True, metadata={
        "help": "Weight the loss by n / (k * count) per label, so rare labels count as much as common ones."})
    precision: str = precision_field()
    report_to: str = report_to_field()
    seed: int = field(default=0, metadata={"help": "Random seed (split, head init, data order)."})
    out: str | None = field(default=None, metadata={
        "help": "Run folder (default: $LIKEME_HOME/runs/<data file name>-classifier)."})

    def learning_rate(self, backbone: str) -> float:
        """The peak learning rate: --lr, else by what trains (a fresh head needs more than pretrained blocks)."""
        from likeme.training.classifying import learning_rate

        return self.lr if self.lr is not None else learning_rate(self.trainable, backbone, self.head_lr)


def summary(cfg: ClassifyConfig, run: Path, m: dict) -> str:
    """What `likeme train classifier` prints when done: validation accuracy and macro-F1."""
    if "val_accuracy" in m:
        line = (f"{run}: validation accuracy {m['val_accuracy']:.4f}, macro-F1 {m['val_macro_f1']:.4f} on "
                f"{m['val_examples']} texts ({m['labels']} labels, best epoch {m['best_epoch']})")
    else:
        line = f"{run}: trained on {m['train_examples']} texts ({m['labels']} labels; too few to hold any out)"
    return line + f'\nUse it: likeme classify {run} "some text"'


def train_classifier(cfg: ClassifyConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Train, evaluate and save a classifier; returns the run folder. Ctrl-C stops after the current step
    with a checkpoint and raises `runs.Interrupted`; `resume=True` continues from the latest checkpoint.

    Example: train_classifier(ClassifyConfig(data="banking77/train.csv", label_column="category"))
      -> Path("~/.likeme/runs/train-classifier") with run.yaml, model/, metrics.json(l), plots/
    """
    from likeme import batching, runs
    from likeme.data.labels import class_weights, label_order, stratified_split
    from likeme.training import classifying
    from likeme.use import heads

    # -- setup -----------------------------------------------------------------------------------
    if not resume and bool(cfg.data) == bool(cfg.label_by):
        raise LikemeError("say where the labelled texts are: --data FILE, or --label-by author (texts from the store)")
    default = f"{runs.slug(Path(cfg.data).stem)}-classifier" if cfg.data else "authors-classifier"
    run, cfg = runs.start("classifier", cfg, default_name=default, resume=resume)
    texts, labels, provenance = classifying.labelled_texts(cfg.data, cfg.text_column, cfg.label_column, db=cfg.db,
                                                           min_messages=cfg.min_messages)
    names = label_order(labels)
    if len(names) < 2:
        raise LikemeError(f"every text has the label {names[0]!r}: a classifier needs at least two labels")
    import torch
    from transformers import EarlyStoppingCallback, set_seed

    from likeme.training import frozen, losses, trainable
    from likeme.training import trainer as tr

    set_seed(cfg.seed)
    model, tok, kind = heads.new_classifier(cfg.base, names)
    cfg = dataclasses.replace(cfg, trainable=cfg.trainable or ("last-blocks" if kind == "causal" else "all"),
                              template=classifying.template_for(kind, cfg.template))
    y = [names.index(label) for label in labels]
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
    rows, max_length = classifying.encode_rows(tok, texts, train_idx, cfg.template, cfg.max_length)
    head = "score" if kind == "causal" else "head"
    model = trainable.select(model.to(tr.device()), cfg.trainable, last_blocks=cfg.last_blocks, head=head,
                             lora=trainable.Lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout),
                             task_type="SEQ_CLS" if kind == "causal" else None)
    run.begin(config=cfg, task="classification", base=cfg.base, data=provenance,
              **classifying.run_fields(kind, names, cfg.template, max_length,
                                       cfg.text_column if cfg.data else "text", cfg.label_column if cfg.data else "author"))
    with run.recording():
        # -- cache: the frozen part, once --------------------------------------------------------
        split = frozen.FrozenSplit.make(model, cfg.trainable, kind, cfg.last_blocks) if cfg.cache else None
        if split is not None and not split.check([rows[i] for i in train_idx[:8]], tok.pad_token_id):
            _say(progress, f"the frozen-part cache does not reproduce {cfg.base}'s own forward pass: training the plain way")
            split = None
        started = time.time()
        if split is not None:
            bar = _bar(progress, len(rows), "caching the frozen part")
            cached = split.cache(rows, tok.pad_token_id, batch_size=max(cfg.batch_size, 32),
                                 progress=bar.update if bar else None)
            if bar:
                bar.close()
            # "input_ids" stays in each example only for its length (the length-grouped sampler reads it)
            examples = [{"input_ids": rows[i], "cached": cached[i], "labels": y[i]} for i in range(len(rows))]
            train_model, collate = split.top, frozen.collate_cached
        else:
            examples = [{"input_ids": rows[i], "labels": y[i]} for i in range(len(rows))]
            train_model, collate = model, functools.partial(batching.collate, pad_id=tok.pad_token_id)
        train_set, val_set = [examples[i] for i in train_idx], [examples[i] for i in val_idx]
        cache_seconds = round(time.time() - started, 1)

        # -- train -------------------------------------------------------------------------------
        steps_per_epoch, total = tr.steps(len(train_set), cfg.batch_size, cfg.epochs, cfg.max_steps)
        args = classifying.epoch_arguments(
            run, seed=cfg.seed, precision=cfg.precision, steps_per_epoch=steps_per_epoch, total=total, epochs=cfg.epochs, max_steps=cfg.max_steps,
            batch_size=cfg.batch_size, lr=cfg.learning_rate(kind), has_val=bool(val_set), select_by=cfg.select_by)
        weights = class_weights([y[i] for i in train_idx], len(names)) if cfg.class_weights else None
        optimizer = torch.optim.AdamW(trainable.param_groups(train_model, cfg.learning_rate(kind), cfg.head_lr),
                                      weight_decay=0.0)
        trainer = tr.make_trainer(
            run, train_model, args, train_set, collate, progress=progress, total_steps=total,
            eval_dataset=val_set or None, compute_loss_func=losses.WeightedCrossEntropy(weights, cfg.label_smoothing),
            compute_metrics=classifying.accuracy_f1, optimizers=(optimizer, None),  # the Trainer adds the schedule
            callbacks=[*([EarlyStoppingCallback(early_stopping_patience=cfg.patience)] if val_set else []), *callbacks])
        set_seed(cfg.seed)  # the same data order whichever path (cached or plain) trains
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        best = trainer.state.best_model_checkpoint
        figures = {"labels": len(names), "train_examples": len(train_set), "val_examples": len(val_set),
                   "trainable": cfg.trainable, "cached": split is not None, "max_length": max_length,
                   "steps": trainer.state.global_step, "epochs": round(trainer.state.epoch or 0, 4),
                   "best_epoch": round(int(best.rsplit("-", 1)[-1]) / steps_per_epoch, 4) if best else None,
                   "cache_seconds": cache_seconds, "seconds": run.metrics.rows()[-1]["seconds"]}
        validation, confusion = classifying.validate(trainer, val_set, names)
        figures = {**validation, **figures}

        # -- save --------------------------------------------------------------------------------
        if cfg.trainable == "lora":
            model = model.merge_and_unload()  # a plain model: loads with no PEFT, as fast as the base
        classifying.save(run, model, tok, names, confusion, ylabel="cross-entropy (class-weighted)")
        run.finish(figures)
    return run.path


def _say(progress: bool, text: str) -> None:
    if progress:
        import sys

        print(text, file=sys.stderr)


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="text", file=sys.stderr, dynamic_ncols=True, leave=False)
