"""Smaller and faster, like me: a student model learns from a trained run (the teacher), not only from labels.
(Examples: `DistillConfig`, which is `likeme train distill --help`.)

Knowledge distillation (Hinton et al. 2015): the loss is alpha * CE on the real labels + (1 - alpha) *
T^2 * KL(teacher || student) at temperature T (`losses.DistillationLoss`). The teacher runs once, before
the student loads (its outputs are kept, the teacher is not), so memory holds one model while training.

- classifier teacher: its soft labels on --data's texts and on --unlabelled texts (KL only for those);
  the student is any backbone the classifier recipe accepts (default minilm). Same steps and run folder
  as `likeme train classifier` (training/classifying.py): `likeme classify` and `likeme eval` use it.
- voice teacher: its next-token distributions on NAME's tokens of the same persona (or transcript)
  examples the voice was trained on, kept as the top --top-k logits and their ids per token; the student
  (a smaller causal LM with the SAME tokenizer) learns them in full weights. `likeme chat` uses it.

setup (teacher, data, the teacher's outputs, student) -> train (transformers' Trainer: `DistillObjective`,
an evaluation per epoch / every --eval-every steps, early stopping, the best kept) -> evaluate (validation
accuracy and macro-F1, or held-out perplexity; the teacher's beside) -> save (model/ as the teacher's recipe).
run.yaml adds: teacher (its path), temperature, alpha (and top_k for a voice).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import RunFields, TrainingFields
from likeme.errors import LikemeError


@dataclass
class DistillConfig(RunFields, TrainingFields):
    """Smaller and faster: a student model learns a classifier's or a voice's outputs (--teacher RUN).

    \b
    likeme train distill --teacher runs/intents --student minilm --data intents.csv
    likeme train distill --teacher runs/intents --data intents.csv --unlabelled more.txt
    likeme train distill --teacher runs/ana-voice --student runs/small-lm"""
    run_name = "<teacher>-distilled"
    seeded = "split, head init, data order"
    teacher: str = field(default="", metadata={"metavar": "RUN", "help": "The trained run to learn from: a classifier or a voice."})
    student: str | None = field(default=None, metadata={
        "help": "The smaller model: classifier teacher: any backbone `likeme train classifier` accepts (default "
                "minilm: 22M parameters); voice teacher: a causal LM folder or run with the teacher's tokenizer."})
    data: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Classifier: labelled texts, with the teacher's labels (CSV, TSV or JSONL)."})
    unlabelled: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Classifier: more texts without labels, one per line or a table's --text-column: "
                                   "the student learns the teacher's soft labels on them."})
    text_column: str | None = field(default=None, metadata={"help": "Text column of --data (default: the teacher's)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column of --data (default: the teacher's)."})
    db: str | None = field(default=None, metadata={
        "help": "The store to read (voice, or an author classifier; default: the teacher's)."})
    name: str | None = field(default=None, metadata={"flag": "as", "metavar": "NAME",
                                                     "help": "Voice: whose replies (default: the teacher's)."})
    temperature: float = field(default=2.0, metadata={
        "help": "T: both distributions are softened by it (2: Hinton et al. use 1-20; higher shows more of the "
                "teacher's ranking of the wrong answers)."})
    alpha: float = field(default=0.5, metadata={
        "help": "Weight of the cross-entropy on the real labels/tokens; 1 - alpha goes to the teacher's KL."})
    top_k: int = field(default=32, metadata={
        "help": "Voice: teacher logits kept per token (the rest of a 49k vocabulary holds little mass; 32 keeps "
                "memory small: 256 bytes a token)."})
    trainable: str | None = field(default=None, metadata={
        "choices": ["all", "last-blocks", "head", "lora"],
        "help": "What trains in the student (default: all, or last-blocks for a causal classifier student)."})
    last_blocks: int = field(default=1, metadata={"help": "Blocks trained with --trainable last-blocks."})
    epochs: float | None = field(default=None, metadata={"help": "Passes over the data (default: classifier 10, voice 1)."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate (default as `likeme train classifier` for the same student; voice 5e-5, lora 5e-4)."})
    head_lr: float = field(default=2e-3, metadata={"help": "Classifier: the new head's rate (it starts random)."})
    batch_size: int | None = field(default=None, metadata={"help": "Examples per step (default: classifier 16, voice 8)."})
    val_fraction: float = field(default=0.1, metadata={"help": "Classifier: share of each label held out for validation."})
    select_by: str = field(default="macro_f1", metadata={
        "choices": ["macro_f1", "loss"], "help": "Classifier: the validation figure that picks the best epoch."})
    eval_every: int = field(default=20, metadata={"help": "Voice: evaluate and checkpoint every N steps."})
    eval_max: int = field(default=64, metadata={"help": "Voice: held-out examples scored at each evaluation."})
    patience: int = field(default=3, metadata={"help": "Stop after this many evaluations without improvement."})


def summary(cfg: DistillConfig, run: Path, m: dict) -> str:
    """What `likeme train distill` prints when done: the student's figures beside the teacher's."""
    if "val_accuracy" in m:
        return (f"{run}: validation accuracy {m['val_accuracy']:.4f} (teacher {m['teacher_val_accuracy']:.4f}), "
                f"macro-F1 {m['val_macro_f1']:.4f} on {m['val_examples']} texts\nUse it: likeme classify {run} \"some text\"")
    if "ppl" in m:
        return (f"{run}: held-out perplexity {m['base_ppl']:.2f} (student) -> {m['ppl']:.2f} after {m['steps']} "
                f"steps; teacher {m['teacher_ppl']:.2f}\nTalk to it: likeme chat {run}")
    return f"{run}: trained on {m['train_examples']} texts (too few to hold any out)"


def train_distill(cfg: DistillConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Distil the teacher into the student, evaluate and save; returns the run folder.

    Example: train_distill(DistillConfig(teacher="runs/intents", data="intents.csv"))
      -> Path("~/.likeme/runs/intents-distilled"): a classifier run (minilm) with teacher: in its run.yaml
    """
    from likeme import models, runs

    if not cfg.teacher:
        raise LikemeError("say which run to learn from: --teacher RUN (a classifier or a voice run)")
    ref = models.resolve(cfg.teacher)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    kind = runs.used_as(meta)
    if kind not in ("classifier", "voice"):
        raise LikemeError(f"{cfg.teacher} is neither a classifier run nor a voice run (recipe {meta.get('recipe')!r}): "
                          "a teacher is a run of likeme train classifier or likeme train voice")
    run, cfg = runs.start("distill", cfg, default_name=f"{runs.slug(ref.path.name)}-distilled", resume=resume)
    steps = _classifier if kind == "classifier" else _voice
    return steps(cfg, ref, meta, run, resume=resume, progress=progress, callbacks=callbacks)


def _classifier(cfg: DistillConfig, ref, meta: dict, run, *, resume: bool, progress: bool, callbacks) -> Path:
    from likeme.data import examples, tables
    from likeme.data.labels import stratified_split
    from likeme.training import classifying
    from likeme.use import heads
    from likeme.use.classifier import load_classifier

    # -- setup: the labelled texts, the teacher's logits on them (then the teacher goes), the student ----
    teacher_cfg = meta.get("config") or {}
    by_author = not cfg.data and teacher_cfg.get("label_by") == "author"
    if not cfg.data and not by_author:
        raise LikemeError("say where the labelled texts are: --data FILE (with the teacher's labels)")
    text_col = cfg.text_column or (meta.get("text_column") if cfg.data else None) or "text"
    label_col = cfg.label_column or (meta.get("label_column") if cfg.data else None) or "label"
    texts, labels, provenance = classifying.labelled_texts(
        cfg.data, text_col, label_col, db=cfg.db or teacher_cfg.get("db"), min_messages=teacher_cfg.get("min_messages", 10))
    names = list(meta["labels"])  # the teacher's order: its logits' columns
    if set(labels) != set(names):
        extra, missing = sorted(set(labels) - set(names)), sorted(set(names) - set(labels))
        raise LikemeError(f"{cfg.teacher}'s labels differ from {cfg.data or 'the store'}'s "
                          f"(not in the teacher: {extra or 'none'}; not in the data: {missing or 'none'}): "
                          "distil on texts labelled as the teacher was trained")
    extra_texts = []
    if cfg.unlabelled:
        if Path(cfg.unlabelled).suffix.lower() in tables.DELIMITED + tables.JSON_LINES + (".json",):
            extra_texts = tables.read_labelled(cfg.unlabelled, text_col, None, need_labels=False)[0]
        else:
            extra_texts = [line.strip() for line in Path(cfg.unlabelled).read_text("utf-8").splitlines() if line.strip()]
    import torch
    from transformers import EarlyStoppingCallback, set_seed

    from likeme.training import losses, soft_targets, trainable
    from likeme.training import trainer as tr

    started = time.time()
    teacher = load_classifier(ref.path, device=tr.device())
    soft = teacher.logits(texts + extra_texts, batch_size=32)  # (N + U, K), computed once
    del teacher
    teacher_seconds = round(time.time() - started, 1)

    set_seed(cfg.seed)
    model, tok, backbone = heads.new_classifier(cfg.student or "minilm", names)
    method = cfg.trainable or ("last-blocks" if backbone == "causal" else "all")
    cfg = dataclasses.replace(cfg, student=cfg.student or "minilm", trainable=method, epochs=cfg.epochs or 10.0,
                              batch_size=cfg.batch_size or 16)
    template = classifying.template_for(backbone, None)
    y = [names.index(label) for label in labels] + [-100] * len(extra_texts)  # -100: no label, KL only
    train_idx, val_idx = stratified_split(labels, cfg.val_fraction, cfg.seed)
    train_idx += list(range(len(labels), len(y)))  # every unlabelled text trains
    rows, max_length = classifying.encode_rows(tok, texts + extra_texts, train_idx, template, None)
    head = "score" if backbone == "causal" else "head"
    model = trainable.select(model.to(tr.device()), method, last_blocks=cfg.last_blocks, head=head,
                             task_type="SEQ_CLS" if backbone == "causal" else None)
    run.begin(config=cfg, task="classification", base=cfg.student, data=provenance, teacher=str(ref.path.resolve()),
              temperature=cfg.temperature, alpha=cfg.alpha,
              **classifying.run_fields(backbone, names, template, max_length,
                                       text_col if cfg.data else "text", label_col if cfg.data else "author"))
    with run.recording():
        examples = [{"input_ids": rows[i], "labels": y[i], "teacher": soft[i]} for i in range(len(rows))]
        train_set, val_set = [examples[i] for i in train_idx], [examples[i] for i in val_idx]
        # -- train -------------------------------------------------------------------------------
        steps_per_epoch, total = tr.steps(len(train_set), cfg.batch_size, cfg.epochs, cfg.max_steps)
        lr = cfg.lr or classifying.learning_rate(method, backbone, cfg.head_lr)
        args = classifying.epoch_arguments(
            run, seed=cfg.seed, precision=cfg.precision, steps_per_epoch=steps_per_epoch, total=total, epochs=cfg.epochs, max_steps=cfg.max_steps,
            batch_size=cfg.batch_size, lr=lr, has_val=bool(val_set), select_by=cfg.select_by)
        objective = losses.DistillObjective(model, losses.DistillationLoss(cfg.temperature, cfg.alpha))
        optimizer = torch.optim.AdamW(trainable.param_groups(objective, lr, cfg.head_lr), weight_decay=0.0)
        trainer = tr.make_trainer(
            run, objective, args, train_set, functools.partial(soft_targets.collate, pad_id=tok.pad_token_id),
            progress=progress, total_steps=total, eval_dataset=val_set or None, compute_metrics=classifying.accuracy_f1,
            optimizers=(optimizer, None),
            callbacks=[*([EarlyStoppingCallback(early_stopping_patience=cfg.patience)] if val_set else []), *callbacks])
        tr.fit(trainer, run, resume=resume)
        # -- evaluate ----------------------------------------------------------------------------
        best = trainer.state.best_model_checkpoint
        validation, confusion = classifying.validate(trainer, val_set, names)
        if val_idx:  # the teacher on the same validation texts, from the logits it gave before training
            right = soft[val_idx].argmax(-1) == torch.tensor([y[i] for i in val_idx])  # (V,)
            validation["teacher_val_accuracy"] = round(float(right.float().mean()), 4)
        figures = {**validation, "labels": len(names), "train_examples": len(train_idx) - len(extra_texts),
                   "unlabelled_examples": len(extra_texts), "val_examples": len(val_set), "trainable": method,
                   "max_length": max_length, "steps": trainer.state.global_step,
                   "epochs": round(trainer.state.epoch or 0, 4),
                   "best_epoch": round(int(best.rsplit("-", 1)[-1]) / steps_per_epoch, 4) if best else None,
                   "teacher_seconds": teacher_seconds, "seconds": run.metrics.rows()[-1]["seconds"]}
        # -- save --------------------------------------------------------------------------------
        if method == "lora":
            model = model.merge_and_unload()  # a plain model: loads with no PEFT, as fast as the base
        classifying.save(run, model, tok, names, confusion,
                         ylabel=f"distillation loss (T={cfg.temperature:g}, alpha={cfg.alpha:g})")
        run.finish(figures)
    return run.path


def _voice(cfg: DistillConfig, ref, meta: dict, run, *, resume: bool, progress: bool, callbacks) -> Path:
    from datetime import timedelta

    from likeme import models, runs
    from likeme.check.evaluate import perplexity
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.training import causal_lm

    # -- setup: the same examples the voice learned from, the teacher's top-k on them, the student ----
    if not cfg.student:
        raise LikemeError("say which smaller causal LM learns the voice: --student MODEL (a folder or run with "
                          f"the tokenizer of {cfg.teacher})")
    voice = dict(runs.voice_config(meta), recall=0)  # how the teacher's examples were built (without recall)
    name = cfg.name or meta.get("as")
    tok, teacher_tok = causal_lm.load_tokenizer(cfg.student), models.load_tokenizer(ref)
    if tok.get_vocab() != teacher_tok.get_vocab():
        raise LikemeError(f"{cfg.student} and {cfg.teacher} do not share a tokenizer ({len(tok)} and {len(teacher_tok)} "
                          "tokens): the student learns the teacher's next-token distributions, token by token")
    with Store(cfg.db or voice.get("db")) as store:
        gap = timedelta(hours=voice.get("session_gap_hours", 6.0))
        if voice.get("format", "persona") == "persona":
            data = examples.persona_dataset(store, name, tok, context_turns=voice.get("context_turns", 8),
                                            max_length=voice.get("block_size", 512), heldout=voice.get("heldout", 0.1),
                                            gap=gap)
        else:
            data = examples.transcript_dataset(store, name, tok, block_size=voice.get("block_size", 512),
                                               loss_on=voice.get("loss_on", "me"), heldout=voice.get("heldout", 0.1),
                                               gap=gap)
        provenance = store.provenance(name)
    from transformers import EarlyStoppingCallback, set_seed

    from likeme.training import losses, soft_targets, trainable
    from likeme.training import trainer as tr

    cfg = dataclasses.replace(cfg, trainable=cfg.trainable or "all", epochs=cfg.epochs or 1.0,
                              batch_size=cfg.batch_size or 8)
    held = causal_lm.spread(data.heldout, cfg.eval_max)  # evaluations: an even subset
    teacher, _ = models.load_causal_lm(ref, device=tr.device())
    teacher_ppl = perplexity(teacher, data.heldout, tok.pad_token_id, cfg.batch_size)
    train_set, eval_set = (soft_targets.top_k(teacher, d, tok.pad_token_id, cfg.top_k, cfg.batch_size)
                           for d in (data.train, held))
    del teacher  # from here on only the student is in memory

    set_seed(cfg.seed)
    model, _ = models.load_causal_lm(cfg.student, device=tr.device())
    run.begin(config=cfg, task="causal-lm", base=cfg.student, data=provenance, teacher=str(ref.path.resolve()),
              temperature=cfg.temperature, alpha=cfg.alpha, top_k=cfg.top_k, voice_config=voice,
              **{"as": name, "partner": data.partner})
    with run.recording():
        causal_lm.baseline_perplexity(run, model, data.heldout, tok.pad_token_id, cfg.batch_size)
        model = trainable.select(model, cfg.trainable, last_blocks=cfg.last_blocks, task_type="CAUSAL_LM").train()
        # -- train -------------------------------------------------------------------------------
        _, total = tr.steps(len(train_set), cfg.batch_size, cfg.epochs, cfg.max_steps)
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every, max_steps=total, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size, learning_rate=causal_lm.learning_rate(cfg.lr, cfg.trainable, full=5e-5),
            lr_scheduler_type="cosine", warmup_steps=max(1, total // 20), label_names=["labels"], **causal_lm.KEEP_BEST)
        # (an evaluation is the distillation loss on held-out replies: make_trainer keeps only the loss)
        objective = losses.DistillObjective(model, losses.DistillationLoss(cfg.temperature, cfg.alpha), tokens=True)
        trainer = tr.make_trainer(
            run, objective, args, train_set, functools.partial(soft_targets.collate, pad_id=tok.pad_token_id),
            progress=progress, total_steps=total, eval_dataset=eval_set,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), *callbacks])
        tr.fit(trainer, run, resume=resume)
        # -- evaluate ----------------------------------------------------------------------------
        figures = {"base_ppl": run.meta["baseline"]["ppl"], "teacher_ppl": round(teacher_ppl, 4),
                   "ppl": causal_lm.perplexity(model, data.heldout, tok.pad_token_id, cfg.batch_size),
                   "heldout_replies": len(data.heldout), "train_examples": len(data.train),
                   "teacher_tokens": sum(len(e["teacher"]) for e in train_set), "top_k": cfg.top_k,
                   "steps": trainer.state.global_step, "best_step": causal_lm.best_step(trainer),
                   "seconds": run.metrics.rows()[-1]["seconds"]}
        # -- save --------------------------------------------------------------------------------
        if cfg.trainable == "lora":
            model = model.merge_and_unload()  # full weights: the run loads without its student's folder
        causal_lm.save(run, model.float().cpu().eval(), tok)
        from likeme.check import plots

        plots.learning_curves(run.path, ylabel=f"distillation loss (T={cfg.temperature:g}, alpha={cfg.alpha:g})")
        run.finish(figures)
    return run.path

