"""A reward model of NAME: learn from comparisons which of two replies NAME would have written.

    likeme pairs --as Ana --from runs/ana-voice           # chosen: Ana's real replies; rejected: the voice's
    likeme train reward --pairs ~/.likeme/pairs/ana.jsonl  # smollm2-135m with a scalar head, LoRA
    likeme train reward --pairs pairs.jsonl --base minilm  # an encoder reading the reply alone
    likeme eval runs/ana-voice --data later.txt --as Ana --judge runs/ana-reward

setup (pairs -> token ids as `reward.render` shows them to the model, a split by prompt so that no context
is on both sides, the backbone with a one-output head, what trains) -> train (transformers' Trainer,
Bradley-Terry loss -log sigmoid(r_chosen - r_rejected), the head at its own rate, a checkpoint at each
evaluation) -> evaluate (held-out pairwise accuracy: the share of pairs whose chosen reply gets the
higher reward) -> save (model/: the whole model with its tokenizer, merged when LoRA trained it;
`reward.load_reward` reads it, `likeme score` and `--judge` use it).

run.yaml adds: backbone, max_length, as (the NAME of the pairs' system prompts, when they share one).
metrics.json: val_accuracy, base_val_accuracy (the untrained head), val_loss, val_margin, pairs, steps, seconds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import precision_field, report_to_field
from likeme.errors import LikemeError


@dataclass
class RewardConfig:
    """A reward model of NAME from comparisons (--pairs FILE, from likeme pairs or likeme compare):
    a scalar head trained so that the chosen reply scores above the rejected one.

    \b
    likeme train reward --pairs ~/.likeme/pairs/ana.jsonl
    likeme train reward --pairs pairs.jsonl --base minilm"""
    pairs: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Pairs in TRL's prompt / chosen / rejected JSONL (likeme pairs, likeme compare)."})
    base: str = field(default="smollm2-135m", metadata={
        "help": "Backbone: smollm2-135m (reads the whole chat), minilm (the reply alone), a folder, a run or a hub id."})
    trainable: str | None = field(default=None, metadata={
        "choices": ["lora", "all", "last-blocks", "head"],
        "help": "What trains besides the new head (default: lora for a causal LM, all for an encoder)."})
    last_blocks: int = field(default=1, metadata={"help": "Blocks trained with --trainable last-blocks."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (16: the QLoRA paper's sweet spot for small data)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scale numerator (2 x rank, the common choice)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    epochs: float = field(default=1.0, metadata={
        "help": "Passes over the pairs (InstructGPT trained its reward model for one: more overfits)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate of the pretrained part (default: lora 1e-4, all 1e-5 causal / 2e-5 encoder)."})
    head_lr: float = field(default=1e-3, metadata={
        "help": "Peak learning rate of the new head, which starts random (as in the classifier)."})
    batch_size: int = field(default=8, metadata={"help": "Pairs per step (each is two rows)."})
    max_length: int = field(default=512, metadata={
        "help": "Tokens per row; a longer chat loses its oldest turns, never the reply."})
    val_fraction: float = field(default=0.1, metadata={
        "help": "Share of the prompts held out with all their pairs, for the pairwise accuracy."})
    eval_every: int = field(default=20, metadata={"help": "Held-out accuracy, and a checkpoint, every N steps."})
    precision: str = precision_field()
    report_to: str = report_to_field()
    seed: int = field(default=0, metadata={"help": "Random seed (split, head init, data order)."})
    out: str | None = field(default=None, metadata={"help": "Run folder (default: $LIKEME_HOME/runs/<pairs file>-reward)."})

    def learning_rate(self, kind: str) -> float:
        if self.lr is not None:
            return self.lr
        return 1e-4 if self.trainable == "lora" else (2e-5 if kind == "encoder" else 1e-5)


def summary(cfg: RewardConfig, run: Path, m: dict) -> str:
    """What `likeme train reward` prints when done: the held-out pairwise accuracy, untrained and trained."""
    if "val_accuracy" in m:
        line = (f"{run}: held-out pairwise accuracy {m['base_val_accuracy']:.3f} (untrained head) -> "
                f"{m['val_accuracy']:.3f} on {m['val_pairs']} pairs, after {m['steps']} steps")
    else:
        line = f"{run}: trained on {m['train_pairs']} pairs (too few prompts to hold any out)"
    return line + f"\nUse it as a judge: likeme eval VOICE_RUN --data EXPORT --as NAME --judge {run}"


def train_reward(cfg: RewardConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Train, evaluate and save a reward model; returns the run folder. Ctrl-C stops after the current
    step with a checkpoint and raises `runs.Interrupted`; `resume=True` continues from the latest one."""
    from likeme import runs
    from likeme.check import plots
    from likeme.data.store import file_data
    from likeme.training import pairs
    from likeme.use import heads
    from likeme.use.reward import RewardModel, render

    # -- setup -----------------------------------------------------------------------------------
    if not resume and not cfg.pairs:
        raise LikemeError("say which comparisons to learn from: --pairs FILE (make one with likeme pairs)")
    run, cfg = runs.start("reward", cfg, default_name=f"{runs.slug(Path(cfg.pairs or 'pairs').stem)}-reward",
                          resume=resume)
    rows = pairs.read(cfg.pairs)
    import torch
    from transformers import set_seed

    from likeme.training import losses, trainable
    from likeme.training import trainer as tr

    set_seed(cfg.seed)
    model, tok, kind = heads.new_classifier(cfg.base, ["reward"])
    cfg = dataclasses.replace(cfg, trainable=cfg.trainable or ("lora" if kind == "causal" else "all"))
    train_idx, val_idx = pairs.split_by_prompt(rows, cfg.val_fraction, cfg.seed)

    def ids(row: dict, side: str) -> list[int]:
        answer = row[side] if isinstance(row[side], str) else row[side][-1]["content"]
        return render(tok, kind, row["prompt"], answer, cfg.max_length)

    examples = [{"chosen": ids(r, "chosen"), "rejected": ids(r, "rejected")} for r in rows]
    head = "score" if kind == "causal" else "head"
    model = trainable.select(model.to(tr.device()), cfg.trainable, last_blocks=cfg.last_blocks, head=head,
                             lora=trainable.Lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout),
                             task_type="SEQ_CLS" if kind == "causal" else None)
    run.begin(config=cfg, task="reward", base=cfg.base, data=file_data(cfg.pairs), backbone=kind,
              max_length=cfg.max_length, **{"as": name_of(rows)})
    val = [examples[i] for i in val_idx]

    def held_out(m) -> dict:  # pairwise accuracy, loss and margin on the held-out pairs
        rm = RewardModel(m, tok, {"backbone": kind, "max_length": cfg.max_length})
        chosen, rejected = rm.rewards_of_ids([e["chosen"] for e in val]), rm.rewards_of_ids([e["rejected"] for e in val])
        margins = torch.tensor(chosen) - torch.tensor(rejected)
        return {"loss": float(-torch.nn.functional.logsigmoid(margins).mean()),
                "accuracy": float((margins > 0).float().mean()), "margin": float(margins.mean())}

    with run.recording():
        if "baseline" not in run.meta and val:
            run.update(baseline={"val_accuracy": round(held_out(model)["accuracy"], 4)})

        # -- train -------------------------------------------------------------------------------
        train_set = [examples[i] for i in train_idx]
        total = tr.steps(len(train_set), cfg.batch_size, cfg.epochs, cfg.max_steps)[1]
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every if val else None, save_steps=cfg.eval_every,
            max_steps=total, per_device_train_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate(kind),
            lr_scheduler_type="linear", warmup_steps=max(1, total // 20), label_names=["labels"])
        optimizer = torch.optim.AdamW(trainable.param_groups(model, cfg.learning_rate(kind), cfg.head_lr),
                                      weight_decay=0.0)
        trainer = tr.make_trainer(
            run, model, args, train_set, lambda batch: collate_pairs(batch, tok.pad_token_id), progress=progress,
            total_steps=total, compute_loss_func=losses.BradleyTerryLoss(), optimizers=(optimizer, None),
            evaluate=held_out if val else None, callbacks=callbacks)
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        model.eval()
        figures = {"pairs": len(rows), "train_pairs": len(train_set), "val_pairs": len(val),
                   "steps": trainer.state.global_step, "seconds": run.metrics.rows()[-1]["seconds"]}
        if val:
            final = held_out(model)
            figures = {"val_accuracy": round(final["accuracy"], 4),
                       "base_val_accuracy": run.meta["baseline"]["val_accuracy"],
                       "val_loss": round(final["loss"], 4), "val_margin": round(final["margin"], 4), **figures}

        # -- save --------------------------------------------------------------------------------
        if cfg.trainable == "lora":
            model = model.merge_and_unload()
        with run.saving_model() as folder:
            model.float().cpu().eval().save_pretrained(folder)
            tok.save_pretrained(folder)
        plots.learning_curves(run.path, ylabel="Bradley-Terry loss", right="eval_accuracy" if val else None)
        run.finish(figures)
    return run.path


def collate_pairs(batch: list[dict], pad_id: int) -> dict:
    """Pairs -> one batch of 2B rows, [chosen_1 .. chosen_B, rejected_1 .. rejected_B] (BradleyTerryLoss's
    layout), right-padded, and labels (B,) of ones (the first of each pair is the preferred one)."""
    import torch

    from likeme.batching import pad

    ids, mask = pad([b["chosen"] for b in batch] + [b["rejected"] for b in batch], pad_id)  # (2B, T)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.ones(len(batch), dtype=torch.long)}


def name_of(rows: list[dict]) -> str | None:
    """The NAME of the voice prompts the pairs were made with ("You are NAME. ..."), when they agree."""
    from likeme.prompts import system_prompt

    names = set()
    for r in rows:
        first = r["prompt"][0] if isinstance(r["prompt"], list) and r["prompt"] else {}
        content = first.get("content", "") if first.get("role") == "system" else ""
        name = content[len("You are "):].split(".", 1)[0] if content.startswith("You are ") else None
        names.add(name if name and system_prompt(name) == content else None)
    return names.pop() if len(names) == 1 else None
