"""Preference tuning: make a voice prefer what NAME would say, from comparisons (DPO, Rafailov et al. 2023;
IPO, Azar et al. 2023; ORPO, Hong et al. 2024; SimPO, Meng et al. 2024) or from single good / bad marks
(KTO, Ethayarajh et al. 2024).

    likeme pairs --as Ana --from runs/ana-voice --others        # chosen: Ana's real replies
    likeme train prefer --from runs/ana-voice --pairs ~/.likeme/pairs/ana.jsonl --loss orpo
    likeme train prefer --from runs/ana-voice --data runs/ana-voice/marks.jsonl --loss kto   # /good, /bad
    likeme chat runs/ana-prefer                                 # a voice run: chat, eval, pairs work on it

setup (the voice, its LoRA merged; pairs, or marks for kto, split by prompt; each prompt trimmed from its
oldest turn to fit --max-length) -> train (the loss's TRL trainer: a new LoRA on top of the voice; dpo, ipo
and kto compare with a reference, the same model with the adapter switched off, whose log-probabilities are
computed once before training, so one copy of the model fits a laptop; orpo and simpo have no reference;
a checkpoint at each evaluation) -> evaluate (held-out reward accuracy and margin: how often, and by how
much, the tuned voice prefers the chosen reply; kto: the margin between good and bad marks) -> save
(model/: the LoRA adapter on `base` = the voice run, with the tokenizer).

run.yaml adds: loss, as, partner, voice_config (how the voice builds its prompts, for chat and eval).
metrics.jsonl rows add TRL's rewards_chosen, rewards_rejected, rewards_margins (rewards_accuracies but kto).
metrics.json: val_reward_accuracy (not kto), val_reward_margin, pairs (kto: marks), steps, seconds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import LoraFields, RunFields, TrainingFields, with_default
from likeme.errors import LikemeError


@dataclass(frozen=True)
class Loss:
    """A preference objective as a TRL trainer optimises it."""
    trainer: str            # "module:Class" of the trainer; `config` likewise for its TrainingArguments
    config: str
    fixed: dict             # the config's arguments that make this loss
    beta: float             # the default --beta (what it weighs differs by loss: PreferConfig.beta)
    reference: bool         # compares with the voice it started from (the adapter off, log-probabilities once)
    unpaired: bool = False  # learns from single marks (prompt, completion, label) rather than pairs

    def classes(self) -> tuple:
        """(trainer class, config class), imported."""
        import importlib
        import os

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # ORPO and CPO live in trl.experimental
        return tuple(getattr(importlib.import_module(m), c) for m, c in (x.split(":") for x in (self.trainer, self.config)))


LOSSES = {  # --loss -> how TRL trains it
    "dpo": Loss("trl:DPOTrainer", "trl:DPOConfig", {"loss_type": ["sigmoid"]}, 0.1, reference=True),
    "ipo": Loss("trl:DPOTrainer", "trl:DPOConfig", {"loss_type": ["ipo"]}, 0.1, reference=True),
    "orpo": Loss("trl.experimental.orpo:ORPOTrainer", "trl.experimental.orpo:ORPOConfig", {}, 0.1, reference=False),
    # SimPO is CPO's trainer without its behaviour-cloning term (cpo_alpha 0, as in Meng et al.); gamma, the target
    # margin, is TRL's default 0.5 (the paper's runs used 0.3 to 1.6 with beta 2 to 2.5)
    "simpo": Loss("trl.experimental.cpo:CPOTrainer", "trl.experimental.cpo:CPOConfig",
                  {"loss_type": "simpo", "cpo_alpha": 0.0, "simpo_gamma": 0.5}, 2.0, reference=False),
    "kto": Loss("trl:KTOTrainer", "trl:KTOConfig", {}, 0.1, reference=True, unpaired=True),
}


@dataclass
class PreferConfig(RunFields, LoraFields, TrainingFields):
    """Preference tuning: make a voice prefer NAME's real replies (--pairs FILE) or your good marks (--data FILE).

    orpo and simpo need no reference model: one model in memory, and no pass over the data to score a
    reference first. dpo, ipo and kto compare with the voice they start from (its adapter switched off).

    \b
    likeme pairs --as Ana --from runs/ana-voice --others
    likeme train prefer --from runs/ana-voice --pairs ~/.likeme/pairs/ana.jsonl --loss simpo
    likeme train prefer --from runs/ana-voice --data runs/ana-voice/marks.jsonl --loss kto
    likeme chat runs/ana-prefer"""
    run_name = "NAME-prefer"
    seeded = "split, LoRA init, data order"
    from_run: str | None = field(default=None, metadata={
        "flag": "from", "metavar": "RUN", "help": "The voice run to tune (likeme train voice, or an earlier prefer run)."})
    pairs: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Pairs in TRL's prompt / chosen / rejected JSONL (likeme pairs, likeme compare); "
                                   "for --loss kto each is a good and a bad mark."})
    data: str | None = field(default=None, metadata={
        "metavar": "FILE", "help": "Good / bad marks in TRL's prompt / completion / label JSONL, for --loss kto "
                                   "(RUN/marks.jsonl: /good and /bad in likeme chat, likeme compare)."})
    loss: str = field(default="dpo", metadata={
        "choices": list(LOSSES),
        "help": "dpo: Rafailov et al.'s, against the voice it starts from; ipo: Azar et al.'s, less prone to overfit "
                "near-certain preferences; orpo: Hong et al.'s, the chosen reply's likelihood plus an odds-ratio "
                "term, no reference model (one model in memory); simpo: Meng et al.'s, a length-normalised margin, "
                "no reference model; kto: Ethayarajh et al.'s, from single good / bad marks (--data), no pairs needed."})
    beta: float | None = field(default=None, metadata={
        "help": "The loss's strength (default: each paper's). dpo, ipo, kto: how far the voice may move from where it "
                "started (the KL weight, 0.1); orpo: the odds-ratio term's weight beside the likelihood (0.1); "
                "simpo: the reward scale (2.0)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of the new adapter."})
    lora_alpha: int = with_default(LoraFields, "lora_alpha", 32)  # 2 x rank
    lora_dropout: float = field(default=0.0, metadata={
        "help": "Dropout on the LoRA path (0: DPO compares the model with itself, so dropout adds noise to it)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps (overrides --epochs)."})
    lr: float = field(default=5e-5, metadata={
        "help": "Peak learning rate of the adapter (DPO wants less than supervised LoRA's 5e-4; on a 10-minute "
                "voice 2.5e-4 kept the replies' length and 5e-4 halved it: bench/likeness.py)."})
    batch_size: int = field(default=4, metadata={
        "help": "Pairs per forward pass (each is two rows); kto: marks, at least 2 (its KL estimate pairs them up)."})
    grad_accum: int = field(default=2, metadata={"help": "Forward passes per optimizer step."})
    max_length: int = field(default=512, metadata={
        "help": "Tokens per prompt + reply; a longer prompt loses its oldest turns, never the reply."})
    val_fraction: float = field(default=0.1, metadata={"help": "Share of the prompts held out with all their pairs."})
    eval_every: int = field(default=20, metadata={"help": "Held-out rewards, and a checkpoint, every N steps."})


def summary(cfg: PreferConfig, run: Path, m: dict) -> str:
    """What `likeme train prefer` prints when done: how often the tuned voice prefers the chosen reply."""
    lines = []
    if "val_reward_accuracy" in m:
        lines.append(f"{run}: on {m['val_pairs']} held-out pairs the tuned voice prefers the chosen reply in "
                     f"{m['val_reward_accuracy']:.0%} (reward margin {m['val_reward_margin']:.3f}), after {m['steps']} steps")
    elif "val_reward_margin" in m:
        lines.append(f"{run}: on {m['val_pairs']} held-out marks the reward margin of good over bad is "
                     f"{m['val_reward_margin']:.3f}, after {m['steps']} steps")
    return "\n".join(lines + [f"Talk to it: likeme chat {run}"])


def preference_rows(cfg: PreferConfig) -> tuple[list[dict], dict]:
    """(rows, the data's provenance): the pairs of --pairs, or for kto the marks of --data and of --pairs
    (each pair a good and a bad mark), checked; errors say what to do."""
    from likeme.data.store import file_data
    from likeme.training import marks, pairs

    files = [f for f in (cfg.pairs, cfg.data) if f]
    data = file_data(files[0]) if len(files) == 1 else {"files": [file_data(f) for f in files]}
    if not LOSSES[cfg.loss].unpaired:
        if cfg.data:
            raise LikemeError(f"--data takes good / bad marks, which --loss kto learns from; {cfg.loss} learns from "
                              "pairs: --pairs FILE (likeme pairs, likeme compare)")
        return pairs.read(cfg.pairs), data
    rows = (marks.unpaired(pairs.read(cfg.pairs)) if cfg.pairs else []) + (marks.read(cfg.data) if cfg.data else [])
    if cfg.batch_size < 2:
        raise LikemeError("--loss kto needs --batch-size 2 or more: it estimates its KL term from the other marks "
                          "of a batch")
    return marks.both_kinds(rows, cfg.data if not cfg.pairs else " and ".join(files)), data


def train_prefer(cfg: PreferConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Tune a voice on comparisons or marks, evaluate and save it; returns the run folder (a voice run).
    Ctrl-C stops after the current step with a checkpoint; `resume=True` continues from the latest one."""
    from likeme import models, runs
    from likeme.check import plots
    from likeme.training import pairs

    # -- setup -----------------------------------------------------------------------------------
    if cfg.loss not in LOSSES:
        raise LikemeError(f"unknown loss {cfg.loss!r}: use one of {', '.join(LOSSES)}")
    if not resume and not (cfg.from_run and (cfg.pairs or cfg.data)):
        raise LikemeError("say which voice to tune and on what: --from RUN --pairs FILE (make pairs with likeme "
                          "pairs), or --from RUN --data RUN/marks.jsonl --loss kto")
    voice_meta = runs.read_meta(models.resolve(cfg.from_run).path) if cfg.from_run else {}
    run, cfg = runs.start("prefer", cfg, default_name=f"{runs.slug(str(voice_meta.get('as') or 'voice'))}-prefer",
                          resume=resume)
    loss = LOSSES[cfg.loss]
    cfg = dataclasses.replace(cfg, beta=loss.beta if cfg.beta is None else cfg.beta)
    voice = models.resolve(cfg.from_run)
    voice_meta = runs.read_meta(voice.path) if voice.kind == "run" else {}
    if runs.used_as(voice_meta) not in runs.VOICES:
        raise LikemeError(f"{cfg.from_run} is not a voice run: tune one made by likeme train voice")
    rows, data = preference_rows(cfg)
    train_idx, val_idx = pairs.split_by_prompt(rows, cfg.val_fraction, cfg.seed)
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed

    from likeme import processes
    from likeme.training import causal_lm
    from likeme.training import trainer as tr

    set_seed(cfg.seed)
    trainer_cls, config_cls = loss.classes()
    model, tok = models.load_causal_lm(voice, device=tr.device())  # the voice's own LoRA merged in
    causal_lm.pad_with_eos(tok)
    fitted = [fit_prompt(tok, r, cfg.max_length) for r in rows]
    train_set = Dataset.from_list([fitted[i] for i in train_idx])
    val_set = Dataset.from_list([fitted[i] for i in val_idx]) if val_idx else None
    options = dict(loss.fixed)
    if loss.reference:  # once, before training; in several processes each step instead (TRL's cached table lives
        # in one process's temporary folder, which the others cannot read)
        options["precompute_ref_log_probs"] = processes.world_size() == 1
    if loss.unpaired:
        # KTO reads its batches in order (its KL estimate pairs each mark with a neighbour's prompt): shuffle once
        train_set = train_set.shuffle(seed=cfg.seed)
        options.update(kto_weights(train_set["label"]))
    run.begin(config=cfg, task="causal-lm", base=str(voice.path.resolve()), data=data,
              **{"loss": cfg.loss, "as": voice_meta.get("as"), "partner": voice_meta.get("partner"),
                 "voice_config": runs.voice_config(voice_meta)})
    with run.recording():
        # -- train -------------------------------------------------------------------------------
        total = tr.steps(len(train_set), cfg.batch_size * cfg.grad_accum, cfg.epochs, cfg.max_steps)[1]
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every if val_set else None, save_steps=cfg.eval_every,
            cls=config_cls, max_steps=total, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=max(1, total // 10),
            beta=cfg.beta, max_length=cfg.max_length, disable_dropout=True, **options)
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")
        trainer = tr.make_trainer(run, model, args, train_set, None, progress=progress, total_steps=total,
                                  trainer_cls=trainer_cls, eval_dataset=val_set, processing_class=tok,
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
            named = {"val_reward_accuracy": "eval_rewards_accuracies", "val_reward_margin": "eval_rewards_margins"}
            figures = {**{k: last[0][v] for k, v in named.items() if v in last[0]}, "val_loss": last[0]["eval_loss"],
                       **figures}

        # -- save --------------------------------------------------------------------------------
        causal_lm.save(run, trainer.model, tok)  # the new adapter, on the voice
        plots.learning_curves(run.path, ylabel=f"{cfg.loss.upper()} loss",
                              right="eval_rewards_accuracies" if val_set and not loss.unpaired else None)
        run.finish(figures)
    return run.path


def kto_weights(labels: list[bool]) -> dict:
    """KTO's desirable / undesirable weights that balance the good marks against the bad: Ethayarajh et al.
    (eq. 8) keep weight_good x good / (weight_bad x bad) in [1, 4/3]; this makes it 1 by weighing up the
    rarer kind. Example: [True, False, False, False] -> {"desirable_weight": 3.0, "undesirable_weight": 1.0}"""
    good = sum(1 for x in labels if x)
    bad = len(labels) - good
    if not good or not bad:
        return {}
    return {"desirable_weight": max(1.0, bad / good), "undesirable_weight": max(1.0, good / bad)}


def fit_prompt(tokenizer, row: dict, max_length: int) -> dict:
    """The pair (or mark) with its prompt's oldest turns dropped (the system turn kept) until the prompt and the
    longest answer fit in `max_length` tokens: TRL cuts an over-long row at its end, which would cut the reply."""
    from likeme.prompts import token_ids

    if isinstance(row["prompt"], str):
        return row
    prompt = list(row["prompt"])
    longest = max((row[k] for k in ("chosen", "rejected", "completion") if k in row),
                  key=lambda m: len(m[-1]["content"]))
    while len(prompt) > 2:
        n = len(token_ids(tokenizer.apply_chat_template(prompt + longest, tokenize=True)))
        if n <= max_length:
            break
        system = prompt[0]["role"] == "system"
        del prompt[1 if system else 0]
    return {**row, "prompt": prompt}
