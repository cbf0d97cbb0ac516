"""Trainer callbacks every recipe uses: metrics.jsonl rows (and the progress bar drawn from them), and
Ctrl-C that stops after the current step with a checkpoint."""
from __future__ import annotations

import contextlib
import signal
import sys
import time

from transformers import TrainerCallback

from likeme.processes import any_process, from_main, is_main

# Trainer log keys that are not per-step figures, or that the row already has under its own name.
NOT_PER_STEP = {"loss", "learning_rate", "grad_norm", "epoch", "total_flos", "train_loss", "train_runtime",
                "train_samples_per_second", "train_steps_per_second", "train_tokens_per_second", "num_input_tokens_seen"}


class MetricsCallback(TrainerCallback):
    """Each Trainer log -> one row of run/metrics.jsonl in the schema of `runs.MetricsLog`: training rows
    (loss, lr, grad_norm, tokens_per_s or examples_per_s) and evaluation rows (eval_*), each with step,
    epoch and seconds (training time, counted on across a resume)."""

    def __init__(self, log, total_steps: int, progress: bool):
        self.log, self.total, self.progress = log, total_steps, progress
        self.last = None  # (time, step, tokens seen) at the previous training row
        self.offset = 0.0  # seconds trained before a resume

    def on_train_begin(self, args, state, control, **kw):
        rows = self.log.rows()
        self.offset = rows[-1].get("seconds", 0.0) if rows else 0.0
        self.started = time.time()
        self.last = (self.started, state.global_step, state.num_input_tokens_seen)
        if self.progress:
            self.log.show(self.total, initial=state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        now = time.time()
        row = {"step": state.global_step, "epoch": round(state.epoch or 0, 4),
               "seconds": round(self.offset + now - self.started, 3)}
        if "loss" in logs:
            dt = now - self.last[0]
            row.update(loss=round(logs["loss"], 4), lr=logs.get("learning_rate"),
                       max_steps=state.max_steps)  # the last step, as a time budget moves it: for time left
            if logs.get("grad_norm") is not None:
                row["grad_norm"] = round(float(logs["grad_norm"]), 4)
            if state.num_input_tokens_seen:
                row["tokens_per_s"] = round((state.num_input_tokens_seen - self.last[2]) / dt, 1) if dt > 0 else None
            else:
                seen = (state.global_step - self.last[1]) * args.train_batch_size * args.gradient_accumulation_steps \
                    * args.world_size
                row["examples_per_s"] = round(seen / dt, 1) if dt > 0 else None
            self.last = (now, state.global_step, state.num_input_tokens_seen)
            # what a trainer adds to its training logs (TRL's DPO: rewards/chosen, rewards/margins, ...)
            row.update({k.replace("/", "_"): round(v, 4) if isinstance(v, float) else v for k, v in logs.items()
                        if isinstance(v, (int, float)) and k not in NOT_PER_STEP and not k.startswith("eval_")})
        figures = {k.replace("/", "_"): round(v, 4) if isinstance(v, float) else v for k, v in logs.items()
                   if k.startswith("eval_") and not k.endswith(("_runtime", "_per_second"))}
        if not figures and "loss" not in logs:
            return  # the Trainer's closing summary (train_runtime, ...): nothing per step
        row.update(figures)
        if args.process_index == 0:  # one process writes the run folder
            self.log.append(row)

    def on_step_end(self, args, state, control, **kw):
        bar = self.log.bar
        if bar is not None and bar.bar.total != state.max_steps:  # a time budget moved the last step
            bar.bar.total = state.max_steps
            bar.bar.refresh()

    def on_train_end(self, args, state, control, **kw):
        self.log.close()


class StopOnInterrupt(TrainerCallback):
    """First Ctrl-C: finish the current step, save a checkpoint, stop. A second Ctrl-C: stop now."""

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def installed(self):
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            if is_main():
                print("\nStopping after this step and saving a checkpoint (Ctrl-C again to quit now)...", file=sys.stderr)

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    def on_step_end(self, args, state, control, **kw):
        if args.world_size > 1:  # every process stops at the same step, or the others wait for it forever
            self.requested = any_process(self.requested)
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


class TimeBudget(TrainerCallback):
    """Fit training into `minutes` of wall time: every `probe` steps, and after each evaluation, the number
    of steps the time left allows at the pace measured so far becomes the last step, and the
    learning-rate schedule is stretched or shrunk to end there (a schedule cut short would stop at a high
    rate). Planning again as it goes matters: steps differ in cost (length-grouped batches start with the
    longest). The recipe gives the Trainer an upper bound of steps; this lowers it."""

    def __init__(self, minutes: float, probe: int = 3):
        self.budget, self.probe = minutes * 60.0, probe

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kw):
        self.started, self.first = time.time(), state.global_step
        self.ceiling = args.max_steps  # the recipe's upper bound: a later plan may raise the last step up to it
        if state.max_steps != args.max_steps:  # resumed: the plan was made before, the schedule is rebuilt
            _stretch(lr_scheduler, state.max_steps)

    def on_step_end(self, args, state, control, lr_scheduler=None, **kw):
        done = state.global_step - self.first
        if done >= self.probe and done % self.probe == 0:
            self._plan(state, lr_scheduler)
        if state.global_step >= state.max_steps:
            control.should_training_stop = True
        return control

    def on_evaluate(self, args, state, control, lr_scheduler=None, **kw):
        if state.global_step - self.first >= self.probe:
            self._plan(state, lr_scheduler)

    def _plan(self, state, lr_scheduler) -> None:
        spent = from_main(time.time() - self.started)  # one clock for all processes: one last step, one schedule
        pace = spent / max(1, state.global_step - self.first)
        state.max_steps = max(state.global_step + 1, min(self.ceiling or state.max_steps,
                                                         state.global_step + int((self.budget - spent) / pace)))
        _stretch(lr_scheduler, state.max_steps)


def _stretch(lr_scheduler, total: int) -> None:
    """Make a transformers schedule (a LambdaLR over partials with `num_training_steps`) end at `total`."""
    import functools

    if lr_scheduler is None:
        return
    lambdas = getattr(lr_scheduler, "lr_lambdas", [])
    for i, fn in enumerate(lambdas):
        if isinstance(fn, functools.partial) and "num_training_steps" in fn.keywords:
            lambdas[i] = functools.partial(fn.func, *fn.args, **{**fn.keywords, "num_training_steps": total})


class SampleCallback(TrainerCallback):
    """At each evaluation, what the model writes after each of `prompts` (token id lists: `<|endoftext|>`
    for a pretrained model, held-out contexts for a voice), sampled at temperature 0.8 with top-k 200 as
    nanoGPT's sample.py, logged beside the validation loss as a metrics row {"step", "seconds", "samples",
    "loops"}: loops counts the samples that repeat one phrase three times in a row (`style.loops`), the
    sign of a model collapsing. The random state is set aside and restored, so sampling changes neither
    training nor a resumed run."""

    def __init__(self, log, tokenizer, prompts: list[list[int]], tokens: int = 64, stop_ids: list[int] | None = None):
        self.log, self.tokenizer, self.tokens = log, tokenizer, tokens
        self.prompts = [p for p in prompts if p]
        self.stop_ids = stop_ids

    def on_evaluate(self, args, state, control, model=None, **kw):
        import torch

        from likeme.check.style import loops, words

        if model is None or args.process_index != 0 or not self.tokens or not self.prompts:
            return
        was_training = model.training
        model.eval()
        samples = []
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(state.global_step)
            for prompt in self.prompts:
                ids = torch.tensor([prompt], device=model.device)  # (1, T)
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.tokens, do_sample=True,
                                     temperature=0.8, top_k=200,
                                     pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                     **({"eos_token_id": self.stop_ids} if self.stop_ids else {}))
                samples.append(self.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True).strip())
        model.train(was_training)
        rows = self.log.rows()  # the evaluation row just written: its clock (a resume counts on from the last row)
        self.log.append({"step": state.global_step, "seconds": rows[-1].get("seconds", 0.0) if rows else 0.0,
                         "samples": samples, "loops": sum(loops(words(t)) for t in samples)})
