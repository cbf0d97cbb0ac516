"""Write like me: fine-tune a causal LM on one person's side of their chats.

    likeme train voice --as Ana                     # LoRA on smollm2-135m, persona format
    likeme train voice --as Ana --max-steps 60 --out runs/ana
    likeme train voice --out runs/ana --resume      # after Ctrl-C

setup (store -> dataset, base model, trainable parameters) -> train (transformers' Trainer, early
stopping on the held-out loss, a checkpoint on Ctrl-C) -> evaluate (held-out perplexity of NAME's
replies, base and final) -> save (the run folder describes itself).

Run folder:
    run.yaml        resolved config + base, task, recipe, as, partner, status
    tokenizer files and chat template
    adapter/        LoRA adapter (safetensors)        or  model/  full weights (safetensors)
    metrics.jsonl   one line per log: step, loss, lr, tokens_per_s (and eval_loss at evaluations)
    metrics.json    base_ppl, ppl, heldout_replies, train_examples, steps, seconds
    plots/loss.png  train and held-out loss by step
    checkpoints/    only while a run is unfinished (Ctrl-C): what --resume continues from
"""
from __future__ import annotations

import functools
import json
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from likeme.errors import LikemeError


@dataclass
class VoiceConfig:
    name: str = field(default="", metadata={"flag": "as", "metavar": "NAME",
                                            "help": "Whose voice to learn, as `likeme people` shows them."})
    db: str | None = field(default=None, metadata={"help": "The store to read (default: $LIKEME_HOME/likeme.db)."})
    base: str = field(default="smollm2-135m", metadata={
        "help": "Base model: smollm2-135m, a local folder, a run or a Hugging Face id you have."})
    format: str = field(default="persona", metadata={
        "choices": ["persona", "transcript"],
        "help": "persona: NAME's replies in the chat template; transcript: plain 'Name: message' LM."})
    method: str = field(default="lora", metadata={
        "choices": ["lora", "full", "last-layers"],
        "help": "What to train: LoRA adapters, every weight, or the last --last-layers blocks."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (16: the QLoRA paper's sweet spot for small data)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scale numerator (2 x rank, the common choice)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path (small data overfits)."})
    last_layers: int = field(default=2, metadata={"help": "Blocks trained with --method last-layers."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training examples."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate (default 2e-4 for LoRA, 2e-5 for full / last-layers)."})
    batch_size: int = field(default=8, metadata={"help": "Examples per forward pass."})
    grad_accum: int = field(default=1, metadata={"help": "Forward passes per optimizer step."})
    block_size: int = field(default=512, metadata={
        "help": "Tokens per example (persona: context is cut from the oldest turn; transcript: block length)."})
    context_turns: int = field(default=8, metadata={"help": "Turns before a reply kept as its context (persona)."})
    loss_on: str = field(default="me", metadata={"choices": ["me", "all"],
                                                 "help": "transcript format: learn NAME's lines only, or everyone's."})
    heldout: float = field(default=0.1, metadata={"help": "Latest fraction of sessions never trained on."})
    session_gap_hours: float = field(default=6.0, metadata={"help": "A pause this long starts a new session."})
    eval_every: int = field(default=20, metadata={"help": "Evaluate the held-out loss every N steps."})
    eval_max: int = field(default=64, metadata={
        "help": "Held-out examples scored at each evaluation (early stopping); metrics.json scores them all."})
    patience: int = field(default=3, metadata={"help": "Stop after this many evaluations without improvement."})
    seed: int = field(default=0, metadata={"help": "Random seed (data order, LoRA init, dropout)."})
    out: str | None = field(default=None, metadata={"help": "Run folder (default: $LIKEME_HOME/runs/NAME-voice)."})

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.method == "lora" else 2e-5)


# ---------------------------------------------------------------------------------------------
def train_voice(cfg: VoiceConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Train, evaluate and save a voice; returns the run folder. Ctrl-C stops after the current
    step with a checkpoint in the run folder and raises `Interrupted`."""
    from datetime import timedelta

    from likeme import datasets, models
    from likeme.config import to_dict
    from likeme.evaluate import perplexity
    from likeme.store import Store

    # -- setup -----------------------------------------------------------------------------------
    run = Path(cfg.out) if cfg.out else models.runs_dir() / f"{_slug(cfg.name)}-voice"
    ckpt_dir = run / "checkpoints"
    if resume:
        if not (run / "run.yaml").is_file():
            raise LikemeError(f"{run}: no run to resume (no run.yaml); start one without --resume")
        saved = models.read_run_meta(run)
        cfg = VoiceConfig(**{k: v for k, v in saved.get("config", {}).items() if k in VoiceConfig.__dataclass_fields__})
        if not _latest_checkpoint(ckpt_dir):
            raise LikemeError(f"{run}: no checkpoint to resume from; train again without --resume")
    else:
        if not cfg.name:
            raise LikemeError("say whose voice to learn: --as NAME (see likeme people)")
        if run.exists() and any(run.iterdir()):
            raise LikemeError(f"{run} already exists: pass --out for a new run, or --resume to continue it")
    import torch
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainingArguments, set_seed

    set_seed(cfg.seed)
    tok = models.load_tokenizer(cfg.base)  # the data is checked before the (slower) model loads
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    with Store(cfg.db) as store:
        gap = timedelta(hours=cfg.session_gap_hours)
        if cfg.format == "persona":
            data = datasets.persona_dataset(store, cfg.name, tok, context_turns=cfg.context_turns,
                                            max_length=cfg.block_size, heldout=cfg.heldout, gap=gap)
        else:
            data = datasets.transcript_dataset(store, cfg.name, tok, block_size=cfg.block_size,
                                               loss_on=cfg.loss_on, heldout=cfg.heldout, gap=gap)
    model, _ = models.load_causal_lm(cfg.base)
    cuda = torch.cuda.is_available()
    if cuda:
        model = model.to("cuda")
    run.mkdir(parents=True, exist_ok=True)
    meta = {"base": cfg.base, "task": "causal-lm", "recipe": "voice", "as": cfg.name, "partner": data.partner,
            "status": "training", "config": to_dict(cfg)}
    models.write_run_meta(run, meta)
    tok.save_pretrained(run)

    base_ppl = perplexity(model, data.heldout, tok.pad_token_id, cfg.batch_size)
    model = _make_trainable(model, cfg)
    model.train()

    # -- train -----------------------------------------------------------------------------------
    steps_per_epoch = max(1, -(-len(data.train) // (cfg.batch_size * cfg.grad_accum)))
    total = cfg.max_steps or max(1, int(steps_per_epoch * cfg.epochs + 0.999))
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        max_steps=total,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate(),
        lr_scheduler_type="cosine",
        warmup_steps=max(1, total // 20),  # 5% warm-up: LoRA's B starts at 0, full fine-tuning needs it more
        weight_decay=0.0,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=cfg.eval_every,
        save_strategy="steps",
        save_steps=cfg.eval_every,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        bf16=cuda,  # bf16 on CUDA, fp32 on CPU (CPU bf16 matmuls are slower than fp32 on most laptops)
        use_cpu=not cuda,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
    )
    MetricsCallback, StopOnInterrupt = _callbacks()
    logger = MetricsCallback(run / "metrics.jsonl", total, progress)
    stopper = StopOnInterrupt()
    trainer = Trainer(
        # A fixed, evenly spread subset keeps evaluations cheap on a CPU (~1 s per 8 examples for 135M).
        model=model, args=args, train_dataset=data.train,
        eval_dataset=data.heldout[:: max(1, -(-len(data.heldout) // cfg.eval_max))],
        data_collator=lambda batch: datasets.collate(batch, tok.pad_token_id),
        callbacks=[logger, stopper, EarlyStoppingCallback(early_stopping_patience=cfg.patience), *callbacks],
    )
    trainer.remove_callback(PrinterCallback)  # our callback logs and draws the bar
    resume_from = _latest_checkpoint(ckpt_dir) if resume else None
    if resume_from:
        logger.truncate_after(int(resume_from.name.split("-")[-1]))
    started = time.time()
    with stopper.installed():
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    logger.close()
    if stopper.requested:
        _plot(run)
        raise Interrupted(run, trainer.state.global_step)

    # -- evaluate --------------------------------------------------------------------------------
    model = trainer.model
    ppl = perplexity(model, data.heldout, tok.pad_token_id, cfg.batch_size)
    metrics = {
        "base_ppl": round(base_ppl, 4), "ppl": round(ppl, 4),
        "heldout_replies": len(data.heldout), "train_examples": len(data.train),
        "train_sessions": data.train_sessions, "heldout_sessions": data.heldout_sessions,
        "steps": trainer.state.global_step, "best_step": _best_step(trainer),
        "train_tokens": int(trainer.state.num_input_tokens_seen), "seconds": round(time.time() - started, 1),
    }

    # -- save ------------------------------------------------------------------------------------
    if cfg.method == "lora":
        model.save_pretrained(run / "adapter")
    else:
        model.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    _plot(run)
    meta["status"] = "done"
    models.write_run_meta(run, meta)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # a finished run needs no optimizer state
    return run



def _plot(run: Path) -> None:
    from likeme import plots

    plots.curves(run, [("loss", "train", "-"), ("eval_loss", "held-out", "o-")], ylabel="loss (nats/token)")


class Interrupted(LikemeError):
    def __init__(self, run: Path, step: int):
        self.run, self.step = run, step
        super().__init__(f"interrupted at step {step}; a checkpoint is in {run}: continue with "
                         f"likeme train voice --out {run} --resume")


def _slug(name: str) -> str:
    import re

    return re.sub(r"[^\w.-]+", "-", name).strip("-").lower() or "voice"


def _latest_checkpoint(folder: Path) -> Path | None:
    found = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if folder.is_dir() else []
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def _best_step(trainer) -> int | None:
    best = trainer.state.best_model_checkpoint
    return int(best.rsplit("-", 1)[-1]) if best else None


def _make_trainable(model, cfg: VoiceConfig):
    """LoRA adapters on every linear layer, all weights, or only the last N blocks + final norm."""
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        return get_peft_model(model, lora)
    if cfg.method == "last-layers":
        blocks = _blocks(model)
        if not 0 < cfg.last_layers <= len(blocks):
            raise LikemeError(f"--last-layers must be between 1 and {len(blocks)} for this model")
        for p in model.parameters():
            p.requires_grad_(False)
        for block in blocks[-cfg.last_layers:]:
            for p in block.parameters():
                p.requires_grad_(True)
        norm = getattr(getattr(model, "model", model), "norm", None)
        if norm is not None:
            for p in norm.parameters():
                p.requires_grad_(True)
    return model


def _blocks(model):
    inner = getattr(model, "model", None)
    for holder in (inner, getattr(model, "transformer", None)):
        for attr in ("layers", "h", "blocks"):
            if holder is not None and hasattr(holder, attr):
                return list(getattr(holder, attr))
    raise LikemeError("cannot find the transformer blocks of this model; use --method lora or full")


# ---------------------------------------------------------------------------------------------
@functools.cache
def _callbacks():
    """The Trainer callbacks, made on first use so that importing this module (for its config, by
    the CLI) does not import transformers."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """metrics.jsonl (step, loss, lr, tokens_per_s; eval_loss at evaluations) and the progress bar."""

        def __init__(self, path: Path, total: int, progress: bool):
            self.path, self.total, self.progress = path, total, progress
            self.bar = None
            self.last = None  # (time, tokens seen) at the previous log

        def truncate_after(self, step: int) -> None:
            """On resume: drop lines logged after the checkpoint, they will be logged again."""
            if self.path.is_file():
                keep = [l for l in self.path.read_text("utf-8").splitlines() if l and json.loads(l)["step"] <= step]
                self.path.write_text("".join(l + "\n" for l in keep), "utf-8")

        def on_train_begin(self, args, state, control, **kw):
            if self.progress:
                import sys

                from tqdm import tqdm

                self.bar = tqdm(total=self.total, initial=state.global_step, unit="step", desc="training",
                                file=sys.stderr, dynamic_ncols=True)
            self.last = (time.time(), state.num_input_tokens_seen)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            row = {"step": state.global_step}
            if "loss" in logs:
                now, seen = time.time(), state.num_input_tokens_seen
                dt = now - self.last[0]
                row.update(loss=round(logs["loss"], 4), lr=logs.get("learning_rate"),
                           tokens_per_s=round((seen - self.last[1]) / dt, 1) if dt > 0 else None,
                           epoch=round(state.epoch or 0, 4))
                self.last = (now, seen)
                if self.bar is not None:
                    self.bar.set_postfix(loss=f"{logs['loss']:.3f}", tok_s=f"{row['tokens_per_s'] or 0:.0f}")
            elif "eval_loss" in logs:
                row["eval_loss"] = round(logs["eval_loss"], 4)
                if self.bar is not None:
                    self.bar.write(f"step {state.global_step}: held-out loss {logs['eval_loss']:.4f}")
            else:
                return
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def close(self):
            if self.bar is not None:
                self.bar.close()


    class StopOnInterrupt(TrainerCallback):
        """First Ctrl-C: finish the current step, save a checkpoint, stop. Second Ctrl-C: stop now."""

        def __init__(self):
            self.requested = False

        def installed(self):
            import contextlib

            @contextlib.contextmanager
            def ctx():
                previous = signal.getsignal(signal.SIGINT)

                def handler(signum, frame):
                    if self.requested:
                        raise KeyboardInterrupt
                    self.requested = True
                    import sys

                    print("\nStopping after this step and saving a checkpoint (Ctrl-C again to quit now)...",
                          file=sys.stderr)

                signal.signal(signal.SIGINT, handler)
                try:
                    yield
                finally:
                    signal.signal(signal.SIGINT, previous)

            return ctx()

        def on_step_end(self, args, state, control, **kw):
            if self.requested:
                control.should_save = True
                control.should_training_stop = True
            return control

    return MetricsCallback, StopOnInterrupt
