"""A voice among the people it speaks with: the voice recipe's data (NAME alone, or everyone's turns in their
own slots, with the person contrast's rival slots) and --blend (a contrast voice and a register voice trained
as parts of one run and merged).

    data, others = datasets(cfg, store, tok)    # training and held-out examples; others' turns in NAME's slot
    blend(run, cfg, train_voice)                # RUN/parts/contrast, RUN/parts/register -> RUN (use.merge)
"""
from __future__ import annotations

import json
from pathlib import Path

from likeme.errors import LikemeError
from likeme.training import causal_lm


def datasets(cfg, store, tok):
    """(data, others) for `cfg`: the training and held-out examples (examples.Dataset) and other people's
    held-out turns in NAME's slot (for specificity; [] in the transcript format)."""
    from datetime import timedelta

    from likeme.data import examples, slots
    from likeme.use import recall

    gap = timedelta(hours=cfg.session_gap_hours)
    if cfg.format == "persona":
        memory = (lambda train_s: recall.for_training(train_s, cfg.name, cfg.recall, cfg.recall_model)) \
            if cfg.recall else None
        if cfg.learn_from == "everyone":
            if cfg.recall:
                raise LikemeError("--recall with --learn-from everyone is not supported: use one of them")
            data = slots.everyone_dataset(store, cfg.name, tok, context_turns=cfg.context_turns,
                                          max_length=cfg.block_size, heldout=cfg.heldout, gap=gap,
                                          min_turns=cfg.min_turns,
                                          contrast=cfg.contrast_slots if cfg.contrast else 0)
            data.train += data.train[: data.speakers[cfg.name]] * (cfg.own_weight - 1)  # NAME's come first
        else:
            if cfg.contrast:
                raise LikemeError("--contrast sets NAME's turns against the others' slots: add --learn-from everyone")
            data = examples.persona_dataset(store, cfg.name, tok, context_turns=cfg.context_turns,
                                            max_length=cfg.block_size, heldout=cfg.heldout, gap=gap, recall=memory)
        others = slots.others_heldout(store, cfg.name, tok, context_turns=cfg.context_turns,
                                      max_length=cfg.block_size, heldout=cfg.heldout, gap=gap, at_most=cfg.score_max)
    else:
        if cfg.learn_from != "me":
            raise LikemeError("--learn-from everyone needs --format persona (transcript: --loss-on all)")
        data = examples.transcript_dataset(store, cfg.name, tok, block_size=cfg.block_size,
                                           loss_on=cfg.loss_on, heldout=cfg.heldout, gap=gap)
        others = []
    return data, others


def blend(run, cfg, train, *, progress: bool = True, callbacks=()) -> Path:
    """--blend W: the --contrast voice and a register voice (everyone's turns in their slots, no contrast),
    trained one after the other as runs in RUN/parts/ (each resumes where it stopped), then one adapter whose
    update is (1 - W) and W of theirs (use.merge), scored on NAME's held-out replies and the others' as any
    voice is, into RUN. `train` trains one part: the voice recipe's train_voice, passed in."""
    from dataclasses import replace

    from likeme import models, runs
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.use import merge

    def minutes(share):
        return cfg.max_minutes * share if cfg.max_minutes else None

    parts = {"contrast": replace(cfg, blend=0.0, max_minutes=minutes(1 - cfg.blend), out=str(run.path / "parts" / "contrast")),
             "register": replace(cfg, blend=0.0, max_minutes=minutes(cfg.blend), out=str(run.path / "parts" / "register"),
                                 contrast=0.0, own_weight=1)}
    tok = causal_lm.load_tokenizer(cfg.base)
    with Store(cfg.db) as store:
        data, others = datasets(replace(parts["register"], learn_from="me"), store, tok)  # NAME's held-out replies, the others
        provenance = store.provenance(cfg.name)
    run.begin(config=cfg, task="causal-lm", base=cfg.base, data=provenance, **{"as": cfg.name, "partner": data.partner})
    with run.recording():
        for name, part in parts.items():
            done = runs.read_meta(part.out).get("status") if (Path(part.out) / runs.RUN_FILE).is_file() else None
            if done != "done":
                train(part, resume=done is not None, progress=progress, callbacks=callbacks)
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
        run.finish(figures)
    return run.path
