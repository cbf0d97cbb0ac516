"""A voice among the people it speaks with: the voice recipe's data (NAME alone, or everyone's turns in their
own slots, with the person contrast's rival slots) and --blend (a contrast voice and a register voice trained
as parts of one run and merged).

    cfg, note = settings(cfg, store)            # --contrast and --blend as they apply to this store
    data, others = datasets(cfg, store, tok)    # training and held-out examples; others' turns in NAME's slot
    blend(run, cfg, train_voice)                # RUN/parts/contrast, RUN/parts/register -> RUN (use.merge)
"""
from __future__ import annotations

import json
from pathlib import Path

from likeme.errors import LikemeError
from likeme.training import causal_lm

CONTRAST, BLEND = 2.0, 0.3  # --contrast and --blend left unset, with --learn-from everyone (why: --contrast's help)


def settings(cfg, store):
    """(cfg, note): the voice's person settings as they apply to `store`, --contrast and --blend filled in
    (None: CONTRAST and BLEND with --learn-from everyone, else 0). What a default cannot do falls away, and
    `note` says what and why in a line (None when nothing fell away); what a flag asks for that cannot be is
    a LikemeError:
    - --learn-from me or --format transcript: no contrast, no blend (they need the others' slots);
    - --recall (NAME's own past messages): NAME's replies alone;
    - the contrast compares NAME's slot with others': without NAME and another speaker with --min-turns turns
      in NAME's training chats, no contrast and no blend (and with nobody else to learn from, NAME alone);
    - --blend merges LoRA adapters: with another --trainable, no contrast and no blend.

    Example: a store where Ana speaks only with Bo, who wrote 3 messages -> (cfg with learn_from "me", contrast 0,
      blend 0, "learning without the person contrast: it needs Ana and another speaker with --min-turns 20 ...")
    """
    from dataclasses import replace
    from datetime import timedelta

    from likeme.data import examples, slots

    if cfg.blend is not None and not 0 <= cfg.blend < 1:
        raise LikemeError(f"--blend {cfg.blend:g}: give the register voice's share, from 0 (off) to below 1 (e.g. 0.3)")
    alone = replace(cfg, contrast=0.0, blend=0.0)
    if cfg.format != "persona" or cfg.learn_from == "me":  # (the transcript format: --loss-on all learns everyone's)
        if cfg.contrast or cfg.blend:
            raise LikemeError("--contrast and --blend set NAME's turns against the others' slots: add --learn-from "
                              "everyone (persona format)")
        return replace(alone, learn_from="me"), None
    if cfg.recall:
        if cfg.contrast or cfg.blend:
            raise LikemeError("--recall shows the voice NAME's own past messages, which --contrast and --blend do not "
                              "support: use one of them")
        return replace(alone, learn_from="me"), (f"--recall shows the voice {cfg.name}'s own past messages: learning "
                                                 f"from {cfg.name}'s replies alone")
    contrast = CONTRAST if cfg.contrast is None else cfg.contrast
    blend = (BLEND if contrast else 0.0) if cfg.blend is None else cfg.blend
    if blend and not contrast:
        raise LikemeError("--blend W mixes a --contrast voice with a register voice: give --contrast C (above 0) too")
    if blend and cfg.trainable != "lora":
        if cfg.blend:
            raise LikemeError("--blend merges LoRA adapters: use --trainable lora, or --blend 0")
        return alone, (f"learning from everyone without the person contrast: the blend that keeps {cfg.name}'s own "
                       f"drop merges LoRA adapters (--trainable lora); --blend 0 trains the contrast alone")
    if contrast:
        train_s, _, _ = examples.reply_sessions(store, cfg.name, heldout=cfg.heldout,
                                                gap=timedelta(hours=cfg.session_gap_hours))
        people = slots.speakers(train_s, cfg.name, cfg.min_turns)
        if cfg.name not in people or len(people) < 2:  # nobody else to learn: NAME's replies alone
            return (replace(alone, learn_from="me") if set(people) <= {cfg.name} else alone), (
                f"learning without the person contrast: it needs {cfg.name} and another speaker with --min-turns "
                f"{cfg.min_turns} turns in {cfg.name}'s training chats ({', '.join(people) or 'nobody'} here)")
    return replace(cfg, contrast=contrast, blend=blend), None


def datasets(cfg, store, tok):
    """(data, others) for `cfg` (as `settings` returns it, which refuses what cannot be learnt together): the
    training and held-out examples (examples.Dataset) and other people's held-out turns in NAME's slot (for
    specificity; [] in the transcript format)."""
    from datetime import timedelta

    from likeme.data import examples, slots
    from likeme.use import recall

    gap = timedelta(hours=cfg.session_gap_hours)
    if cfg.format == "persona":
        memory = (lambda train_s: recall.for_training(train_s, cfg.name, cfg.recall, cfg.recall_model)) \
            if cfg.recall else None
        if cfg.learn_from == "everyone":
            data = slots.everyone_dataset(store, cfg.name, tok, context_turns=cfg.context_turns,
                                          max_length=cfg.block_size, heldout=cfg.heldout, gap=gap,
                                          min_turns=cfg.min_turns,
                                          contrast=cfg.contrast_slots if cfg.contrast else 0)
            data.train += data.train[: data.speakers[cfg.name]] * (cfg.own_weight - 1)  # NAME's come first
        else:
            data = examples.persona_dataset(store, cfg.name, tok, context_turns=cfg.context_turns,
                                            max_length=cfg.block_size, heldout=cfg.heldout, gap=gap, recall=memory)
        others = slots.others_heldout(store, cfg.name, tok, context_turns=cfg.context_turns,
                                      max_length=cfg.block_size, heldout=cfg.heldout, gap=gap, at_most=cfg.score_max)
    else:
        data = examples.transcript_dataset(store, cfg.name, tok, block_size=cfg.block_size,
                                           loss_on=cfg.loss_on, heldout=cfg.heldout, gap=gap)
        others = []
    return data, others


def blend(run, cfg, train, *, progress: bool = True, callbacks=()) -> Path:
    """--blend W: the --contrast voice and a register voice (everyone's turns in their slots, no contrast),
    trained one after the other as runs in RUN/parts/ (each resumes where it stopped) on 1 - W and W of the
    run's budget (--max-minutes, --max-steps, or --epochs: one pass by default), then one adapter whose
    update is (1 - W) and W of theirs (use.merge), scored on NAME's held-out replies and the others' as any
    voice is, into RUN. `train` trains one part: the voice recipe's train_voice, passed in."""
    from dataclasses import replace

    from likeme import models, runs
    from likeme.check import plots
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.use import merge

    def budget(share, first):  # the run's --max-minutes, --max-steps or --epochs (default one pass), shared
        if cfg.max_minutes:
            return {"max_minutes": cfg.max_minutes * share}
        if cfg.max_steps:
            steps = max(1, round(cfg.max_steps * (1 - cfg.blend)))
            steps = steps if first else max(1, cfg.max_steps - steps)
            return {"max_steps": steps, "eval_every": min(cfg.eval_every, steps) if cfg.eval_every else None}
        return {"epochs": (cfg.epochs or 1.0) * share}

    parts = {"contrast": replace(cfg, blend=0.0, out=str(run.path / "parts" / "contrast"), **budget(1 - cfg.blend, True)),
             "register": replace(cfg, blend=0.0, out=str(run.path / "parts" / "register"), contrast=0.0, own_weight=1,
                                 **budget(cfg.blend, False))}
    tok = causal_lm.load_tokenizer(cfg.base)
    with Store(cfg.db) as store:
        data, others = datasets(replace(parts["register"], learn_from="me"), store, tok)  # NAME's held-out replies, the others
        provenance = store.provenance(cfg.name)
    run.begin(config=cfg, task="causal-lm", base=cfg.base, data=provenance, **{"as": cfg.name, "partner": data.partner})
    follow = _following(run, parts, cfg.blend)
    with run.recording():
        for name, part in parts.items():
            done = runs.read_meta(part.out).get("status") if (Path(part.out) / runs.RUN_FILE).is_file() else None
            if done != "done":
                train(part, resume=done is not None, progress=progress, callbacks=[*callbacks, follow])
        follow.write()
        metas = {name: runs.read_meta(part.out) for name, part in parts.items()}
        weights = [1 - cfg.blend, cfg.blend]
        model = merge.combine([models.resolve(part.out) for part in parts.values()], weights)
        run.update(baseline=metas["register"]["baseline"], speakers=metas["contrast"].get("speakers") or {},
                   merged_from=[{"run": str(Path(part.out).relative_to(run.path)), "weight": w}
                                for part, w in zip(parts.values(), weights)])
        scored = examples.even_sample(data.heldout, cfg.score_max)
        ppl = causal_lm.perplexity(model, scored, tok.pad_token_id, cfg.batch_size)
        figures = {"base_ppl": run.meta["baseline"]["ppl"], "ppl": ppl,
                   **causal_lm.specificity(run, model, others, tok.pad_token_id, cfg.batch_size, ppl),
                   "heldout_replies": len(data.heldout), "scored_replies": len(scored)}
        for name, part in parts.items():  # each part's own figures, beside the blend's
            pm = json.loads((Path(part.out) / "metrics.json").read_text())
            figures[name] = {k: pm[k] for k in ("ppl", "specificity", "steps", "seconds") if k in pm}
        figures["steps"] = sum(figures[name].get("steps", 0) for name in parts)
        figures["seconds"] = round(sum(figures[name].get("seconds", 0) for name in parts), 3)
        causal_lm.save(run, model, tok)
        plots.learning_curves(run.path, ylabel="loss (nats/token)")
        run.finish(figures)
    return run.path


def _following(run, parts: dict, share: float):
    """A callback for each part that rewrites RUN/metrics.jsonl from the parts' rows as they are logged (so a
    blend's progress shows where any run's does: `likeme studio`, the loss plot): the parts one after the
    other, each row marked with its part, steps and seconds counted on. A row of the first part gives as its
    max_steps the blend's: its own and the second part's --max-steps, or, with a budget of time or passes,
    as many more as the second part's `share` of it would give at the same pace."""
    from transformers import TrainerCallback

    from likeme import runs
    from likeme.paths import atomic_write

    first, second = parts.values()  # with --max-steps each part's is known; else the second's is not yet

    def rows():
        out, step, seconds = [], 0, 0.0
        for name, part in parts.items():
            found = runs.MetricsLog(Path(part.out) / "metrics.jsonl").rows()
            for r in found:
                row = {**r, "part": name, "step": step + r.get("step", 0), "seconds": round(seconds + r.get("seconds", 0), 3)}
                if "max_steps" in r and part is first:
                    row["max_steps"] = r["max_steps"] + (second.max_steps or round(r["max_steps"] * share / (1 - share)))
                elif "max_steps" in r:
                    row["max_steps"] = step + r["max_steps"]
                out.append(row)
            if found:
                step, seconds = step + found[-1].get("step", 0), seconds + found[-1].get("seconds", 0)
        return out

    class Follow(TrainerCallback):  # after the part's own MetricsCallback, which the trainer calls first
        def write(self):
            if run.main:
                atomic_write(run.metrics.path, "".join(json.dumps(r) + "\n" for r in rows()))

        def on_log(self, args, state, control, **kw):
            self.write()

    return Follow()
