"""Preference tuning: make a voice prefer what NAME would say, from comparisons (DPO, Rafailov et al. 2023).

    likeme pairs --as Ana --from runs/ana-voice                 # chosen: Ana's real replies
    likeme train prefer --from runs/ana-voice --pairs ~/.likeme/pairs/ana.jsonl
    likeme chat runs/ana-prefer                                 # a voice run: chat, eval, pairs work on it

setup (the voice, its LoRA merged; pairs split by prompt; each prompt trimmed from its oldest turn to fit
--max-length) -> train (TRL's DPOTrainer: a new LoRA on top of the voice; the reference is the same model
with the adapter switched off, and its log-probabilities are computed once before training, so one copy
of the model fits a laptop; a checkpoint at each evaluation) -> evaluate (held-out reward accuracy and
margin: how often, and by how much, the tuned voice prefers NAME's real reply over the written one,
relative to the voice it started from) -> save (model/: the LoRA adapter on `base` = the voice run,
with the tokenizer).

run.yaml adds: as, partner, voice_config (how the voice builds its prompts, for chat and eval).
metrics.jsonl rows add TRL's rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins.
metrics.json: val_reward_accuracy, val_reward_margin, pairs, steps, seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import LoraFields, RunFields, TrainingFields, with_default
from likeme.errors import LikemeError

LOSSES = {"dpo": "sigmoid", "ipo": "ipo"}  # --method -> TRL's loss_type


@dataclass
class PreferConfig(RunFields, LoraFields, TrainingFields):
    """Preference tuning (DPO): make a voice prefer NAME's real replies over what it wrote (--pairs FILE).

    \b
    likeme pairs --as Ana --from runs/ana-voice
    likeme train prefer --from runs/ana-voice --pairs ~/.likeme/pairs/ana.jsonl
    likeme chat runs/ana-prefer"""
    run_name = "NAME-prefer"
    seeded = "split, LoRA init, data order"
    from_run: str | None = field(default=None, metadata={
        "flag": "from", "metavar": "RUN", "help": "The voice run to tune (likeme train voice, or an earlier prefer run)."})
    pairs: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Pairs in TRL's prompt / chosen / rejected JSONL (likeme pairs, likeme compare)."})
    method: str = field(default="dpo", metadata={
        "choices": list(LOSSES), "help": "dpo: the sigmoid loss of Rafailov et al.; ipo: Azar et al.'s, less prone "
                                         "to overfit near-deterministic preferences."})
    beta: float = field(default=0.1, metadata={
        "help": "How far the voice may move from where it started (DPO's KL weight; 0.1 is the paper's)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of the new adapter."})
    lora_alpha: int = with_default(LoraFields, "lora_alpha", 32)  # 2 x rank
    lora_dropout: float = field(default=0.0, metadata={
        "help": "Dropout on the LoRA path (0: DPO compares the model with itself, so dropout adds noise to it)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps (overrides --epochs)."})
    lr: float = field(default=5e-5, metadata={
        "help": "Peak learning rate of the adapter (DPO wants less than supervised LoRA's 5e-4; on a 10-minute "
                "voice 2.5e-4 kept the replies' length and 5e-4 halved it: bench/likeness.py)."})
    batch_size: int = field(default=4, metadata={"help": "Pairs per forward pass (each is two rows)."})
    grad_accum: int = field(default=2, metadata={"help": "Forward passes per optimizer step."})
    max_length: int = field(default=512, metadata={
        "help": "Tokens per prompt + reply; a longer prompt loses its oldest turns, never the reply."})
    val_fraction: float = field(default=0.1, metadata={"help": "Share of the prompts held out with all their pairs."})
    eval_every: int = field(default=20, metadata={"help": "Held-out rewards, and a checkpoint, every N steps."})


def summary(cfg: PreferConfig, run: Path, m: dict) -> str:
    """What `likeme train prefer` prints when done: how often the tuned voice prefers the real reply."""
    lines = []
    if "val_reward_accuracy" in m:
        lines.append(f"{run}: on {m['val_pairs']} held-out pairs the tuned voice prefers the real reply in "
                     f"{m['val_reward_accuracy']:.0%} (reward margin {m['val_reward_margin']:.3f}), after {m['steps']} steps")
    return "\n".join(lines + [f"Talk to it: likeme chat {run}"])


def train_prefer(cfg: PreferConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Tune a voice on comparisons, evaluate and save it; returns the run folder (a voice run). Ctrl-C stops
    after the current step with a checkpoint; `resume=True` continues from the latest one."""
    from likeme import models, runs
    from likeme.check import plots
    from likeme.training import pairs

    # -- setup -----------------------------------------------------------------------------------
    if not resume and not (cfg.from_run and cfg.pairs):
        raise LikemeError("say which voice to tune and on what: --from RUN --pairs FILE (make pairs with likeme pairs)")
    voice_meta = runs.read_meta(models.resolve(cfg.from_run).path) if cfg.from_run else {}
    run, cfg = runs.start("prefer", cfg, default_name=f"{runs.slug(str(voice_meta.get('as') or 'voice'))}-prefer",
                          resume=resume)
    voice = models.resolve(cfg.from_run)
    voice_meta = runs.read_meta(voice.path) if voice.kind == "run" else {}
    if runs.used_as(voice_meta) not in runs.VOICES:
        raise LikemeError(f"{cfg.from_run} is not a voice run: tune one made by likeme train voice")
    rows = pairs.read(cfg.pairs)
    train_idx, val_idx = pairs.split_by_prompt(rows, cfg.val_fraction, cfg.seed)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from likeme import processes
    from likeme.data.store import file_data
    from likeme.training import causal_lm
    from likeme.training import trainer as tr

    set_seed(cfg.seed)
    model, tok = models.load_causal_lm(voice, device=tr.device())  # the voice's own LoRA merged in
    causal_lm.pad_with_eos(tok)
    fitted = [fit_prompt(tok, r, cfg.max_length) for r in rows]
    train_set = Dataset.from_list([fitted[i] for i in train_idx])
    val_set = Dataset.from_list([fitted[i] for i in val_idx]) if val_idx else None
    run.begin(config=cfg, task="causal-lm", base=str(voice.path.resolve()), data=file_data(cfg.pairs),
              **{"as": voice_meta.get("as"), "partner": voice_meta.get("partner"),
                 "voice_config": runs.voice_config(voice_meta)})
    with run.recording():
        # -- train -------------------------------------------------------------------------------
        total = tr.steps(len(train_set), cfg.batch_size * cfg.grad_accum, cfg.epochs, cfg.max_steps)[1]
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every if val_set else None, save_steps=cfg.eval_every,
            cls=DPOConfig, max_steps=total, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=max(1, total // 10),
            beta=cfg.beta, loss_type=[LOSSES[cfg.method]], max_length=cfg.max_length,
            # once, before training; in several processes each step instead (TRL's cached table lives in one
            # process's temporary folder, which the others cannot read)
            precompute_ref_log_probs=processes.world_size() == 1, disable_dropout=True)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = tr.make_trainer(run, model, args, train_set, None, progress=progress, total_steps=total,
                                  trainer_cls=DPOTrainer, eval_dataset=val_set, processing_class=tok,
                                  peft_config=lora, callbacks=callbacks)
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        figures = {"pairs": len(rows), "train_pairs": len(train_set), "val_pairs": len(val_idx),
                   "steps": trainer.state.global_step, "seconds": run.metrics.rows()[-1]["seconds"]}
        if val_set is not None:
            last = [r for r in run.metrics.rows() if "eval_loss" in r][-1:]
            if not last or last[0]["step"] != trainer.state.global_step:  # evaluate the final weights once
                trainer.evaluate()
                last = [r for r in run.metrics.rows() if "eval_loss" in r][-1:]
            figures = {"val_reward_accuracy": last[0]["eval_rewards_accuracies"],
                       "val_reward_margin": last[0]["eval_rewards_margins"], "val_loss": last[0]["eval_loss"], **figures}

        # -- save --------------------------------------------------------------------------------
        causal_lm.save(run, trainer.model, tok)  # the new adapter, on the voice
        plots.learning_curves(run.path, ylabel="DPO loss", right="eval_rewards_accuracies" if val_set else None)
        run.finish(figures)
    return run.path


def fit_prompt(tokenizer, row: dict, max_length: int) -> dict:
    """The pair with its prompt's oldest turns dropped (the system turn kept) until the prompt and the longer
    answer fit in `max_length` tokens: TRL cuts an over-long row at its end, which would cut the reply."""
    from likeme.prompts import token_ids

    if isinstance(row["prompt"], str):
        return row
    prompt = list(row["prompt"])
    longest = max((row[k] for k in ("chosen", "rejected")), key=lambda m: len(m[-1]["content"]))
    while len(prompt) > 2:
        n = len(token_ids(tokenizer.apply_chat_template(prompt + longest, tokenize=True)))
        if n <= max_length:
            break
        system = prompt[0]["role"] == "system"
        del prompt[1 if system else 0]
    return {**row, "prompt": prompt}
