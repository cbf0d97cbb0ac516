"""transformers' Trainer the way every likeme recipe runs it.

    args = arguments(run, seed=cfg.seed, max_steps=60, per_device_train_batch_size=8, learning_rate=2e-4,
                     eval_steps=20)
    trainer = make_trainer(run, model, args, train_set, collate, progress=True, eval_dataset=held)
    fit(trainer, run, resume=False)        # Ctrl-C: a checkpoint, then runs.Interrupted

One engine for every recipe, so that checkpoints, resuming (optimizer, schedule, data order and random
state come back), logging and Ctrl-C work the same way everywhere. A checkpoint is written at every
evaluation (`eval_steps`), so a kill -9 or a power cut loses at most the steps since the last one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from transformers import PrinterCallback, Trainer, TrainingArguments

from likeme.runs import Interrupted
from likeme.training.callbacks import MetricsCallback, StopOnInterrupt


def device() -> str:
    """Where training runs: models.default_device(), "cuda" when a CUDA GPU is visible, else "cpu"."""
    from likeme.models import default_device

    return default_device()


def precision(name: str | None = "auto"):
    """`--precision` for training on this machine -> precision.Choice: auto is bf16 mixed precision on a
    CUDA GPU, and on a CPU with native bf16 where a training-sized bf16 matrix product measures faster
    than fp32's; fp32 elsewhere (bf16 is slower than fp32 on CPUs without AVX512-BF16 / AMX)."""
    from likeme import precision as p

    return p.choose(name, device(), inference=False)


def steps(examples: int, per_step: int, epochs: float, max_steps: int | None = None) -> tuple[int, int]:
    """(optimizer steps per epoch, steps in all) for `examples` at `per_step` examples a step (batch x
    accumulation): `max_steps` when given, else `epochs` passes, at least one step each.

    Example: steps(100, 8, 1.5) -> (13, 20); steps(100, 8, 1.5, max_steps=5) -> (13, 5)
    """
    per_epoch = max(1, -(-examples // per_step))
    return per_epoch, max_steps or max(1, math.ceil(per_epoch * epochs - 1e-9))


SMALL_DATA = 500  # training examples below which a voice gets three passes by default, and a warning past five


@dataclass(frozen=True)
class Plan:
    steps_per_epoch: int
    planned: int             # the steps --epochs asks for (the schedule's length when no other bound is given)
    total: int               # the Trainer's last step (a time budget may end it earlier)
    eval_every: int
    warning: str | None      # the data is too small for these steps: it will overfit


def plan(examples: int, per_step: int, *, epochs: float | None = None, max_steps: int | None = None,
         max_minutes: float | None = None, eval_every: int | None = None, patience: int = 3) -> Plan:
    """Steps and evaluation interval from the dataset's size, for what the user left unset: three passes
    under SMALL_DATA examples (one teaches a small chat little), else one; about five evaluations, at
    most 20 steps apart, so that early stopping on the held-out loss can act; and a warning when the
    steps asked for pass over a small dataset more than five times.

    Example: plan(120, 8) -> Plan(steps_per_epoch=15, planned=45, total=45, eval_every=9, warning=None)
    """
    epochs = epochs if epochs is not None else (3.0 if examples < SMALL_DATA else 1.0)
    per_epoch, planned = steps(examples, per_step, epochs)
    total = max_steps or (100 * per_epoch if max_minutes else planned)
    every = eval_every or max(1, min(20, total // 5))
    passes = (max_steps or planned) * per_step / max(1, examples)
    warning = None
    if examples < SMALL_DATA and passes > 5 and not max_minutes:
        warning = (f"{examples} training examples for {max_steps or planned} steps of {per_step}: {passes:.0f} passes over "
                   f"the same messages, expect overfitting (training stops {patience} evaluations after the best "
                   "held-out loss; ingest more chats for a better voice)")
    return Plan(per_epoch, planned, total, every, warning)


def arguments(run, *, seed: int, eval_steps: int | None = None, save_steps: int | None = None,
              precision: str | None = "auto", cls=TrainingArguments, **overrides) -> TrainingArguments:
    """TrainingArguments with likeme's defaults; `overrides` are the recipe's own (batch size, rate, ...).

    precision: `--precision` (see `precision`): bf16 / fp16 are mixed precision (fp32 master weights,
    matrix products in 16 bits under autocast, fp16 with loss scaling); the choice and why are written
    to run.yaml as `precision`.
    eval_steps: evaluate, and write a checkpoint, every N steps; save_steps: write a checkpoint every N
    steps when nothing is evaluated. The two newest checkpoints are kept, and the best one when the
    recipe keeps the best model. cls: a TrainingArguments subclass (TRL's DPOConfig) for its trainer.
    The run's config's `report_to` (`--report-to`, config.report_to_field) also sends the logs to that tracker.
    """
    chosen = globals()["precision"](precision)
    report_to = ((run.meta or {}).get("config") or {}).get("report_to") or "none"
    if report_to == "tensorboard":  # beside the run, not in checkpoints/ (which a finished run drops)
        import os

        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(run.path / "tensorboard"))
    run.update(precision={"name": chosen.name, **({"why": chosen.why} if chosen.why else {})})
    defaults = dict(
        output_dir=str(run.checkpoints),
        logging_steps=1,
        eval_strategy="no",
        save_strategy="no",
        save_total_limit=2,
        weight_decay=0.0,
        bf16=chosen.name == "bf16",
        fp16=chosen.name == "fp16",
        use_cpu=device() == "cpu",
        seed=seed,
        data_seed=seed,
        report_to=report_to,
        project="likeme",  # trackio's project
        run_name=run.path.name,
        disable_tqdm=True,  # our progress bar is drawn from metrics.jsonl
        remove_unused_columns=False,  # our collators build the batches
        dataloader_num_workers=0,
        log_level_replica="error",  # processes other than the main one: errors only
        ddp_find_unused_parameters=False,  # several processes: frozen weights need no gradient, nothing is unused
    )
    if eval_steps:
        defaults.update(eval_strategy="steps", eval_steps=eval_steps)
    if save_steps or eval_steps:
        defaults.update(save_strategy="steps", save_steps=eval_steps or save_steps)
    return cls(**{**defaults, **overrides})


def make_trainer(run, model, args: TrainingArguments, train_dataset, collate, *, progress: bool, total_steps: int,
                 callbacks=(), evaluate=None, trainer_cls=Trainer, **kwargs) -> Trainer:
    """A Trainer that logs into run/metrics.jsonl and stops cleanly on Ctrl-C (see `fit`).

    evaluate: a function model -> {figure: value} that replaces the Trainer's own evaluation loop (for
    figures a loss-only loop cannot give, like the embedder's triplet accuracy); it runs at each
    evaluation step and its figures are logged as eval_<figure>.
    trainer_cls: a Trainer subclass (TRL's DPOTrainer); collate None: its own data collator.
    """
    cls = trainer_cls if evaluate is None else _evaluating(evaluate, trainer_cls)
    if evaluate is not None and kwargs.get("eval_dataset") is None:
        kwargs["eval_dataset"] = [0]  # the Trainer requires one to evaluate; `evaluate` ignores it
    if collate is not None:
        kwargs["data_collator"] = collate
    if kwargs.get("compute_metrics") is None:
        # An evaluation then needs only the loss: otherwise the Trainer keeps every batch's logits to the end of
        # it (a causal LM's: 64 held-out replies x their positions x 49,152 floats, most of a GiB on a voice)
        args.prediction_loss_only = True
    trainer = cls(model=model, args=args, train_dataset=train_dataset,
                  callbacks=[MetricsCallback(run.metrics, total_steps, progress), StopOnInterrupt(), *callbacks],
                  **kwargs)
    trainer.remove_callback(PrinterCallback)  # our callback logs and draws the bar
    return trainer


def _evaluating(fn, base=Trainer):
    class EvaluatingTrainer(base):
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            was_training = self.model.training
            self.model.eval()
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in fn(self.model).items()}
            self.model.train(was_training)
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    return EvaluatingTrainer


def fit(trainer: Trainer, run, *, resume: bool = False) -> None:
    """Train, from the run's latest checkpoint when resuming (metrics.jsonl keeps each step once).
    On Ctrl-C: the current step ends, a checkpoint is written, and `runs.Interrupted` is raised.
    In several processes (likeme.processes) all of them train and go on through the recipe's evaluation
    and save (the Trainer's evaluation gathers from all of them); only the main one writes (runs.Run)."""
    checkpoint = run.latest_checkpoint() if resume else None
    run.metrics.truncate_after(int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else 0)
    stop = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, StopOnInterrupt))
    with stop.installed():
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            run.metrics.close()
    if stop.requested:
        if not run.main:
            raise SystemExit(0)  # the main process says it, and exits 130
        raise Interrupted(run.path, trainer.state.global_step, run.recipe)


def with_objective(objective, base=Trainer):
    """A Trainer class whose training batches that carry `example` (`batching.collate_groups`) are scored
    by `objective(model, batch) -> (loss, parts)` (`losses.SlotContrastLoss`), a per-micro-batch mean the
    Trainer divides by the accumulation steps; other batches (evaluation) as the Trainer scores them. The
    parts' mean since the last log is logged beside the loss (`train_lm`, `train_contrast`)."""

    class ObjectiveTrainer(base):
        loss_is_scaled_for_ga = False

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._parts = {}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "example" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, parts = objective(model, inputs)
            for k, v in parts.items() if model.training else ():  # an evaluation's are its eval_loss
                self._parts.setdefault(k, []).append(float(v))
            return (loss, {"loss": loss}) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if "loss" in logs and getattr(self, "_parts", None):
                logs = {**logs, **{f"train_{k}": round(sum(v) / len(v), 4) for k, v in self._parts.items()}}
                self._parts = {}
            return super().log(logs, *args, **kwargs)

    return ObjectiveTrainer
