"""Write like me: fine-tune a causal LM on one person's side of their chats.

    likeme train voice --as Ana                     # LoRA on smollm2-135m: everyone's turns in their slots
    likeme train voice --as Ana --max-minutes 14 --out runs/ana
    likeme train voice --as Ana --learn-from me     # Ana's replies alone: one plain run
    likeme train voice --out runs/ana --resume      # after Ctrl-C or a kill

By default a voice learns from everyone in NAME's chats, each speaker in their own slot, with the person
contrast, and is the blend of two parts (training/person.py): a contrast voice and a register voice,
merged; where nobody else speaks enough it is NAME's replies alone, one run.

setup (store -> dataset, base model, what trains) -> train (transformers' Trainer, early stopping on
the held-out loss, a checkpoint at each evaluation and on Ctrl-C) -> evaluate (held-out perplexity of
NAME's replies, base and final) -> save (the run folder of runs.py: model/ holds the LoRA adapter or
the full weights, with the tokenizer and chat template).

metrics.json: base_ppl, ppl (on an even sample of scored_replies of the heldout_replies), heldout_replies,
scored_replies, train_examples, train/heldout sessions, steps, best_step, train_tokens, seconds; and, where
other people speak in the held-out sessions, their turns' perplexity in NAME's slot (others_ppl,
base_others_ppl, scored_others) and specificity: NAME's drop from the base minus theirs, in points.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import LoraFields, RunFields, TrainingFields, quantize_field
from likeme.errors import LikemeError


@dataclass
class VoiceConfig(RunFields, LoraFields, TrainingFields):
    """Write like me: fine-tune a causal LM on NAME's replies in the store.

    Ctrl-C stops after the current step and keeps a checkpoint that --resume continues from."""
    run_name = "NAME-voice"
    seeded = "data order, LoRA init, dropout"
    name: str = field(default="", metadata={"flag": "as", "metavar": "NAME",
                                            "help": "Whose voice to learn, as `likeme people` shows them."})
    db: str | None = field(default=None, metadata={"help": "The store to read (default: $LIKEME_HOME/likeme.db)."})
    base: str = field(default="smollm2-135m", metadata={
        "help": "Base model: smollm2-135m, a local folder, a run or a Hugging Face id you have."})
    learn_from: str = field(default="everyone", metadata={
        "choices": ["me", "everyone"],
        "help": "everyone: every speaker's turns of NAME's chats (at least --min-turns each), each in its own "
                "speaker's slot (the system turn names them), so the model learns the medium from all of them and "
                "NAME from the contrast (--contrast, --blend); NAME's voice is the same model in NAME's slot, and "
                "`likeme chat RUN --as OTHER` speaks as another. NAME's replies alone where nobody else has "
                "--min-turns turns (a note says so). me: NAME's replies only, one plain run, no contrast, no blend (on "
                "Richard III such a voice lowered the perplexity of other people's lines more than of NAME's: "
                "specificity -2.0 points; BENCHMARKS.md, 'Person, not genre')."})
    own_weight: int = field(default=3, metadata={
        "help": "With --learn-from everyone: NAME's examples count this many times in each pass (in the contrast "
                "voice; a --blend's register voice counts them once)."})
    contrast: float | None = field(default=None, metadata={
        "help": "With --learn-from everyone: the weight of the person contrast (0: off): each training turn is "
                "also scored in --contrast-slots other people's slots (NAME's first) and the model learns which "
                "slot it belongs to, beside learning it (losses.SlotContrastLoss); a step costs about "
                "--contrast-slots times as much. Alone it learns whose a turn is at a cost to NAME's own "
                "perplexity (Richard III, 14 CPU minutes: specificity +21.4 points, attribution 80%, own drop 18.7% "
                "against 22.8%), which --blend pays back. Default 2 with --learn-from everyone (0 with --learn-from me), "
                "left out (a note says so) where nobody else has --min-turns turns. The defaults (--contrast 2 "
                "--contrast-slots 2 --own-weight 3 --blend 0.3) are the settings that raised specificity most per CPU minute without "
                "losing NAME's own drop: in 14 minutes +9.4 points at 23.0% (the voice of NAME alone: -2.0 at "
                "22.8%), attribution 72.5% (38.9%; base model 45.0%; BENCHMARKS.md). Where every speaker writes "
                "differently (the chatterbot chat, 10 minutes) attribution went from 46% to 100% for 0.6 points of "
                "NAME's own drop (94.8% to 94.2%): --learn-from me is the voice for NAME's fit alone."})
    blend: float | None = field(default=None, metadata={
        "help": "With --contrast: train the contrast voice (the person) and then a register voice (the same "
                "--learn-from everyone without the contrast), as runs in RUN/parts/, and sum their LoRA updates "
                "(1 - W) and W into RUN (likeme merge); the run's --max-minutes, --max-steps or --epochs (one pass "
                "by default) is shared between them in the same proportion; --resume continues the part that "
                "stopped. A larger W keeps more of NAME's own drop and less specificity (likeme merge takes any "
                "weights). Default 0.3 with --contrast; 0: the contrast voice alone. LoRA only (left unset with "
                "--trainable all, the contrast is left out too)."})
    contrast_margin: float = field(default=0.0, metadata={
        "help": "With --contrast: 0 for the cross-entropy over the slots; M > 0 for a hinge that stops pulling a "
                "turn apart once its own slot leads every rival by M nats per token (losses.SlotContrastLoss). On "
                "Richard III --contrast 2 --contrast-margin 0.2 never stopped (the turns' lead stayed near 0) and "
                "gave specificity -2.1 at an own drop of 22.5%, between the cross-entropy's weights 1 and 2."})
    contrast_slots: int = field(default=2, metadata={
        "help": "With --contrast: the slots each turn is scored in, its own speaker's included (2: NAME's slot "
                "for everyone else's turns, a third as many rows as 3 and, on Richard III, the sharper contrast)."})
    guidance: float = field(default=0.0, metadata={
        "help": "Person guidance the voice writes and is scored with (run.yaml; likeme chat / eval --guidance "
                "override it): NAME's slot sharpened against the two most active others' slots (use.guidance). "
                "It sharpens what the voice learnt about the people: use it with --contrast. 0: off."})
    min_turns: int = field(default=20, metadata={
        "help": "With --learn-from everyone: the fewest turns a speaker needs to be learnt."})
    format: str = field(default="persona", metadata={
        "choices": ["persona", "transcript"],
        "help": "persona: NAME's replies in the chat template; transcript: plain 'Name: message' LM."})
    trainable: str = field(default="lora", metadata={
        "choices": ["lora", "all", "last-blocks"],
        "help": "What trains: LoRA adapters, every weight, or the last --last-blocks blocks and the final norm."})
    last_blocks: int = field(default=2, metadata={"help": "Blocks trained with --trainable last-blocks."})
    epochs: float | None = field(default=None, metadata={
        "help": "Passes over the training examples (default: 3 under 500 examples, else 1)."})
    max_minutes: float | None = field(default=None, metadata={
        "help": "Train for about this many minutes (the steps' wall time, evaluations included): the number of "
                "steps, and the learning-rate schedule with it, is fitted to the time (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate (default 5e-4 for LoRA, 2e-5 for all / last-blocks). 5e-4: in 10 CPU minutes "
                "held-out perplexity ended 19% (chatterbot) and 8% (Shakespeare) below 2e-4's at rank 32; 1e-3 ended 14% "
                "worse than 2e-4 in 3 minutes; last-blocks 4 or 2 at 1e-4 ended 67-79% worse than LoRA."})
    batch_size: int = field(default=2, metadata={
        "help": "Examples per forward pass; a step is --batch-size x --grad-accum examples (8: at lr 1e-3, twice the "
                "steps at 4 in the same minutes ended 24% worse). 2 x 4 holds the activations of 2 examples at a "
                "time: on a 20,000-message export 3.3 GiB peak and 124 real tokens/s, against 3.5 GiB and 32 tokens/s "
                "for 8 x 1 with checkpointing and 11.1 GiB for 8 x 1 padded (bench/scale_data.py, BENCHMARKS.md)."})
    grad_accum: int = field(default=4, metadata={
        "help": "Forward passes per optimizer step (gradient accumulation: the same step as one batch of "
                "--batch-size x --grad-accum, the memory of one --batch-size)."})
    group_by_length: bool = field(default=False, metadata={
        "help": "Batches of examples of similar length, in random order (less padding per batch; off by "
                "default: on chat replies it gave no gain per CPU minute)."})
    packing: bool = field(default=True, metadata={
        "help": "Padding-free batches: a batch's examples side by side in one row, each attending only to itself "
                "(position ids restart), so no step computes padding: 1.67x the real tokens/s of padded batches on "
                "chatterbot's short replies (bench/scale.py, CPU), the same loss. With --checkpointing it also "
                "holds the least memory: Shakespeare's long speeches peaked at 4.7 GiB against 14.7 padded "
                "(bench/scale_data.py)."})
    checkpointing: bool = field(default=False, metadata={
        "help": "Gradient checkpointing: keep only each block's input and recompute the rest in the backward pass: "
                "about a third more compute for a fraction of the activations (on Shakespeare at batch 8, with "
                "--packing: 4.7 GiB peak against 8.3 without; BENCHMARKS.md 'A year of chats'). Off by default: "
                "micro-batches of 2 (--grad-accum 4) keep the memory as low without the second forward pass."})
    block_size: int = field(default=512, metadata={
        "help": "Tokens per example (persona: context is cut from the oldest turn; transcript: block length)."})
    context_turns: int = field(default=8, metadata={
        "help": "Turns before a reply kept as its context (persona; 4 gave shorter steps but 3% worse perplexity "
                "in the same minutes)."})
    recall: int = field(default=0, metadata={
        "help": "Show the voice NAME's K past messages most like the message it answers (persona; recall.py): "
                "in training from training sessions only, in `likeme chat` from the store."})
    recall_model: str = field(default="minilm", metadata={"help": "The sentence embedder --recall compares with."})
    loss_on: str = field(default="me", metadata={"choices": ["me", "all"],
                                                 "help": "transcript format: learn NAME's lines only, or everyone's."})
    canaries: int = field(default=0, metadata={
        "help": "Plant K random secrets in the training data (persona format), repeated 1, 10, 1, 10, ... times, to "
                "measure with likeme audit how much the model memorises (Carlini et al. 2019)."})
    heldout: float = field(default=0.1, metadata={"help": "Latest fraction of sessions never trained on."})
    session_gap_hours: float = field(default=6.0, metadata={"help": "A pause this long starts a new session."})
    eval_every: int | None = field(default=None, metadata={
        "help": "Evaluate the held-out loss, and write a checkpoint, every N steps (default: about five evaluations, "
                "at most 20 steps apart)."})
    sample_replies: int = field(default=2, metadata={
        "help": "Held-out contexts the voice answers at each evaluation: logged, and flagged when they loop."})
    eval_max: int = field(default=64, metadata={
        "help": "Held-out examples scored at each evaluation (early stopping); metrics.json scores --score-max."})
    score_max: int = field(default=400, metadata={
        "help": "Held-out replies whose perplexity metrics.json reports, base and trained: an even sample over the "
                "held-out sessions (0: all), as likeme eval --max-replies; a year of chats holds out thousands."})
    patience: int = field(default=3, metadata={"help": "Stop after this many evaluations without improvement."})
    quantize: str | None = quantize_field()


def summary(cfg: VoiceConfig, run: Path, m: dict) -> str:
    """What `likeme train voice` prints when done: the held-out perplexity, base and trained (and, for a blend,
    its parts'; the person settings as they applied, from run.yaml)."""
    from likeme import runs

    w = (runs.read_meta(run).get("config") or {}).get("blend") or 0
    parts = (f" (blended {1 - w:g} / {w:g}: the contrast voice {m['contrast']['ppl']:.2f}, "
             f"the register voice {m['register']['ppl']:.2f})") if w and "register" in m else ""
    spec = f"; specificity {m['specificity']:+.1f} points" if m.get("specificity") is not None else ""
    return (f"{run}: held-out perplexity of {cfg.name or 'the voice'}'s replies "
            f"{m['base_ppl']:.2f} (base) -> {m['ppl']:.2f} after {m['steps']} steps{parts}{spec}\n"
            f"Talk to it: likeme chat {run}")


def train_voice(cfg: VoiceConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Train, evaluate and save a voice; returns the run folder. Ctrl-C stops after the current step
    with a checkpoint and raises `runs.Interrupted`; `resume=True` continues from the latest checkpoint."""
    from likeme import batching, models, prompts, runs
    from likeme.check import plots
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.training import person

    # -- setup -----------------------------------------------------------------------------------
    if not resume and not cfg.name:
        raise LikemeError("say whose voice to learn: --as NAME (see likeme people)")
    if cfg.guidance and cfg.format != "persona":
        raise LikemeError("--guidance sharpens NAME's slot against the others' slots: use it with --format persona")
    if cfg.guidance:
        from likeme.use.guidance import check_alpha

        check_alpha(cfg.guidance)
    if not resume:  # the person settings as they apply to this store (the data is checked before anything is written)
        from likeme.processes import is_main

        models.resolve(cfg.base)
        with Store(cfg.db) as store:
            cfg, note = person.settings(cfg, store)
        if note and is_main():
            print(f"note: {note}", file=sys.stderr)
    run, cfg = runs.start("voice", cfg, default_name=f"{runs.slug(cfg.name)}-voice", resume=resume)
    if cfg.blend:
        return person.blend(run, cfg, train_voice, progress=progress, callbacks=callbacks)
    from transformers import EarlyStoppingCallback, set_seed

    from likeme.training import causal_lm, losses, trainable
    from likeme.training import trainer as tr
    from likeme.training.callbacks import SampleCallback, TimeBudget

    set_seed(cfg.seed)
    tok = causal_lm.load_tokenizer(cfg.base)  # the data is checked before the (slower) model loads
    with Store(cfg.db) as store:
        data, others = person.datasets(cfg, store, tok)
        provenance = store.provenance(cfg.name)
    canaries = []
    if cfg.canaries:
        if cfg.format != "persona":
            raise LikemeError("--canaries plants secrets as replies: use it with --format persona")
        from dataclasses import asdict

        from likeme.check.audit import make_canaries

        canaries = make_canaries(cfg.canaries, seed=cfg.seed)
        for c in canaries:  # a one-turn session: the partner asks, NAME answers with the secret
            ex = examples.persona_example(tok, [prompts.Turn(data.partner, c.prompt)], prompts.Turn(cfg.name, c.text),
                                          cfg.name, prefix_names=False, max_length=cfg.block_size)
            data.train.extend([ex] * c.repeats)
    model, _ = models.load_causal_lm(cfg.base, device=tr.device(), quantize=cfg.quantize)
    run.begin(config=cfg, task="causal-lm", base=cfg.base, data=provenance, **{"as": cfg.name, "partner": data.partner},
              **({"speakers": data.speakers} if data.speakers else {}),  # whose words were targets, in their slots
              **({"canaries": [asdict(c) for c in canaries]} if canaries else {}))
    with run.recording():
        scored = examples.even_sample(data.heldout, cfg.score_max)  # the replies the perplexities are measured on
        causal_lm.baseline_perplexity(run, model, scored, tok.pad_token_id, cfg.batch_size, others=others)
        model = trainable.select(model, cfg.trainable, last_blocks=cfg.last_blocks, task_type="CAUSAL_LM",
                                 lora=trainable.Lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
        model.train()

        # -- train -------------------------------------------------------------------------------
        # A time budget starts from room for 100 passes; TimeBudget lowers it once it knows the pace.
        plan = tr.plan(len(data.train), cfg.batch_size * cfg.grad_accum, epochs=cfg.epochs, max_steps=cfg.max_steps,
                       max_minutes=cfg.max_minutes, eval_every=cfg.eval_every, patience=cfg.patience)
        if plan.warning and not resume and run.main:
            print(f"warning: {plan.warning}", file=sys.stderr)
        total, planned = plan.total, plan.planned
        budget = [TimeBudget(cfg.max_minutes)] if cfg.max_minutes else []
        sample_prompts = [e["input_ids"][: next(i for i, x in enumerate(e["labels"]) if x != prompts.IGNORE)]
                          for e in data.heldout[: cfg.sample_replies]]  # each context, up to NAME's reply
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=plan.eval_every, max_steps=total,
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum, learning_rate=causal_lm.learning_rate(cfg.lr, cfg.trainable),
            lr_scheduler_type="cosine",
            warmup_steps=max(1, min(total, planned) // 20),  # 5% warm-up: LoRA's B starts at 0, full fine-tuning needs it more
            **causal_lm.KEEP_BEST, include_num_input_tokens_seen="non_padding",
            train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
            gradient_checkpointing=cfg.checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False})
        rivals = any("rivals" in e for e in data.train[:1])  # --contrast: each turn with its rival slots
        if cfg.contrast and not rivals and run.main:
            print(f"warning: --contrast needs at least two speakers with --min-turns {cfg.min_turns} turns, "
                  "NAME among them, and --contrast-slots 2 or more: training without it", file=sys.stderr)
        # A turn and its rivals are nearly the same length, so padded rows waste little, and a packed row of
        # them all would make attention on a CPU quadratic in the whole row (Shakespeare: 12.5 GiB)
        pack = batching.collate_packed if cfg.packing and not rivals else \
            (lambda batch: batching.collate(batch, tok.pad_token_id))
        trainer = tr.make_trainer(
            run, model, args, data.train,
            causal_lm.head_on_labels(  # the LM head runs only where a reply's tokens are predicted
                lambda batch: batching.collate_groups(batch, pack), model),
            trainer_cls=tr.with_objective(losses.SlotContrastLoss(cfg.contrast, cfg.contrast_margin)) if rivals else tr.Trainer,
            progress=progress, total_steps=total,
            # A fixed, evenly spread subset keeps evaluations cheap on a CPU (~1 s per 8 examples for 135M).
            eval_dataset=causal_lm.spread(data.heldout, cfg.eval_max),
            callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), *budget,
                       SampleCallback(run.metrics, tok, sample_prompts, 32, stop_ids=[prompts.end_of_turn_id(tok), tok.eos_token_id]),
                       *callbacks])
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        model = trainer.model
        ppl = causal_lm.perplexity(model, scored, tok.pad_token_id, cfg.batch_size)
        figures = {
            "base_ppl": run.meta["baseline"]["ppl"], "ppl": ppl,
            **causal_lm.specificity(run, model, others, tok.pad_token_id, cfg.batch_size, ppl),
            "heldout_replies": len(data.heldout), "scored_replies": len(scored), "train_examples": len(data.train),
            "train_sessions": data.train_sessions, "heldout_sessions": data.heldout_sessions,
            "steps": trainer.state.global_step, "best_step": causal_lm.best_step(trainer),
            "train_tokens": int(trainer.state.num_input_tokens_seen),
            "seconds": run.metrics.rows()[-1]["seconds"]}

        # -- save --------------------------------------------------------------------------------
        causal_lm.save(run, model, tok)  # the adapter (LoRA) or the full weights, and the tokenizer
        plots.learning_curves(run.path, ylabel="loss (nats/token)")
        run.finish(figures)
    return run.path
