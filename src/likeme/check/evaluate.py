"""Measuring a run on data it never saw: `evaluate(run, data)` routes by the run's recipe.

    voice       perplexity of NAME's replies in an export, run and base model   (eval_voice)
    classifier  accuracy, macro-F1, per label, confusion on a labelled file     (eval_classifier)
    embedder    triplet accuracy and likeness-score AUC for NAME, run and base  (eval_embedder)

    >>> perplexity(model, examples, pad_id=tok.pad_token_id)   # examples: [{"input_ids", "labels"}]
    23.4

Uses runs through the inference modules only (generate, classifier, embedder): no training code.
"""
from __future__ import annotations

from contextlib import contextmanager

from likeme.errors import LikemeError
from likeme.use.likelihood import example_losses, perplexity  # noqa: F401  (re-exported: the recipes' import)

MAX_REPLIES = 400  # replies scored by `likeme eval` at most: a perplexity over 400 replies moves by a few % with the sample


def eval_voice(run, data, name: str, *, max_replies: int | None = MAX_REPLIES, format: str | None = None,
               me: str | None = None) -> dict:
    """Perplexity of NAME's replies in an export under a voice run and under its base model.

    The export is ingested into a temporary store (yours is left alone); examples are built with
    the run's own rules (persona format, context turns, block size, session gap); at most
    `max_replies` of them, spread evenly over the export (None or 0: all).

    Example: eval_voice("runs/robin", "later.txt", "Robin")
      -> {"ppl": 38.2, "base_ppl": 410.7, "replies": 400, "replies_in_export": 406}
    """
    from datetime import timedelta

    from likeme import models, runs
    from likeme.data.examples import even_sample, persona_dataset

    ref, meta = run_made_by(run, runs.VOICES)
    cfg = runs.voice_config(meta)
    model, tok = models.load_causal_lm(ref)
    with temporary_store(data, format, me) as store:
        examples = persona_dataset(
            store, name, tok, context_turns=cfg.get("context_turns", 8), max_length=cfg.get("block_size", 512),
            heldout=0.0, gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)), min_replies=1).train
    scored = even_sample(examples, max_replies)
    batch = cfg.get("batch_size", 8)
    ppl = perplexity(model, scored, tok.pad_token_id, batch)
    del model
    base = runs.base_of(ref.path, meta)
    base_ppl = perplexity(models.load_causal_lm(base)[0], scored, tok.pad_token_id, batch) if base else float("nan")
    return {"ppl": round(ppl, 4), "base_ppl": round(base_ppl, 4), "replies": len(scored),
            "replies_in_export": len(examples)}


def eval_likeness(run, data, name: str, *, people=None, max_replies: int | None = MAX_REPLIES,
                  format: str | None = None, me: str | None = None, guidance: float | None = None) -> dict:
    """Like NAME, or like everyone in the chat? On an export: every person's turns in the sessions NAME
    writes in, scored in NAME's slot by the run and its base (`likeness.specificity`; with person guidance,
    default the run's, as the voice writes: `use.guidance`), and, with `people` (default: the run's speakers
    when it learnt from everyone), each of their turns attributed to the slot that makes it most likely
    (`likeness.attribution`, unguided). Figures prefixed as likeness.py names them."""
    from datetime import timedelta

    from likeme import runs
    from likeme.check import likeness
    from likeme.data.examples import reply_sessions
    from likeme.data.slots import by_person
    from likeme.use.guidance import check_alpha, guide_people
    from likeme.use.likelihood import RunAndBase

    _, meta = run_made_by(run, runs.VOICES)
    cfg = runs.voice_config(meta)
    alpha = check_alpha((cfg.get("guidance") or 0.0) if guidance is None else guidance)
    people = list(people or meta.get("speakers") or [])
    scorer = RunAndBase(run, batch_size=cfg.get("batch_size", 8))
    with temporary_store(data, format, me) as store:
        sessions, _, _ = reply_sessions(store, name, heldout=0.0,
                                        gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)))
    found = by_person(sessions, context_turns=cfg.get("context_turns", 8))
    missing = [p for p in people if not found.get(p)]
    if missing:
        raise LikemeError(f"no turns of {', '.join(missing)} in {data} (people there: {', '.join(found)})")
    limits = {"max_turns": max_replies or None, "max_length": cfg.get("block_size", 512)}
    out = likeness.specificity(scorer, found, name, guidance=alpha, against=guide_people(meta, name), **limits)
    if len(people) > 1:
        out["attribution"] = likeness.attribution(scorer, found, people, name=name if name in people else None, **limits)
    return out


def eval_judged(run, data, name: str, judge, *, samples: int = 50, seed: int = 0, max_new_tokens: int = 64,
                format: str | None = None, me: str | None = None, guidance: float | None = None) -> dict:
    """Does what the voice writes sound like NAME? For `samples` of NAME's replies in an export (an even
    sample), the run and its base model each write a reply to the same context; a judge (`judge.py`:
    an embedder, author-classifier or reward run of NAME) scores them beside NAME's real reply.

    Reported, for the run's replies (no suffix), the real ones (_real) and the base model's (_base):
      judge_score   mean judge score;
      judge_auc     ROC-AUC of the judge at telling the real replies from the generated ones (0.5: it
                    cannot tell them apart, the goal; 1.0: it always can);
      distinct_1/2  distinct words and word pairs over all words and pairs (Li et al. 2016): low is
                    collapse into a few stock replies;
      mean_words, clean_end (the share of replies that ended by themselves, not at max_new_tokens);
      judge_strength_auc: the judge's ROC-AUC at telling NAME's turns in the export from others' (each
                    in its context: `turns_in_context`): how far its other figures can be trusted.

    Example: eval_judged("runs/robin", "later.txt", "Robin", "runs/robin-embedder", samples=50)
      -> {"judge_score": 0.61, "judge_score_real": 0.83, "judge_score_base": 0.22, "judge_auc": 0.71, ...}
    """
    from datetime import timedelta

    from likeme import runs
    from likeme.data.examples import (
        even_sample,
        replies,
        reply_sessions,
        turns_in_context,
    )
    from likeme.use.judge import Judge, load_judge

    ref, meta = run_made_by(run, runs.VOICES)
    cfg = runs.voice_config(meta)
    judge = judge if isinstance(judge, Judge) else load_judge(judge, name)
    gap = timedelta(hours=cfg.get("session_gap_hours", 6.0))
    with temporary_store(data, format, me) as store:
        sessions = reply_sessions(store, name, heldout=0.0, gap=gap)[0]
        picked = even_sample(replies(sessions, name, cfg.get("context_turns", 8)), samples)
        texts, is_name, around = turns_in_context(sessions, name, cfg.get("context_turns", 8))
    if not picked:
        raise LikemeError(f"{data}: no reply by {name} with a message before it to judge")
    contexts = [r.context for r in picked]
    real = [r.reply.text for r in picked]
    out: dict = {"samples": len(picked), "judge": judge.kind, "judge_strength_auc": _round(judge.strength(texts, is_name, around))}
    real_scores = judge.score(real, contexts)
    out.update(reply_figures(real, real_scores, None, None, "_real"))
    base = runs.base_of(ref.path, meta)
    for suffix, model in (("", ref.path), ("_base", base)):
        if model is None:
            continue
        written = write_replies(model, meta, name, contexts, seed=seed, max_new_tokens=max_new_tokens,
                                guidance=guidance if suffix == "" else None)
        out.update(reply_figures(written, judge.score(written, contexts), real_scores,
                                  [w.finish == "stop" for w in written], suffix))
        if suffix == "":
            out["examples"] = [{"context": f"{c[-1].author}: {c[-1].text}", "real": r, "written": str(w)}
                               for c, r, w in list(zip(contexts, real, written))[:5]]
    return out


def write_replies(model, meta: dict, name: str, contexts: list, *, seed: int = 0, max_new_tokens: int = 64,
                  guidance: float | None = None) -> list:
    """The replies `model` (the run, or its base prompted as the run was trained: run.yaml `meta`) writes as
    NAME to each context, the i-th with seed + i: `decoding.Generation`s. `guidance`: person guidance
    (default: the run's own)."""
    from likeme import runs
    from likeme.use import generate

    cfg = runs.voice_config(meta)
    voice = generate.load(model, name=name, partner=meta.get("partner"), format=cfg.get("format"),
                          context_turns=cfg.get("context_turns"), guidance=guidance)
    return [voice.reply(c, seed=seed + i, max_new_tokens=max_new_tokens) for i, c in enumerate(contexts)]


def reply_figures(texts: list[str], scores: list[float], real_scores, ended, suffix: str) -> dict:
    """eval_judged's figures of one set of replies: judge_score, distinct_1/2, mean_words, and with the
    real replies' scores judge_auc (real 1 vs these 0), with `ended` clean_end; keys end with `suffix`."""
    from likeme.check.style import distinct
    from likeme.use.embedder import auc

    words = [t.split() for t in texts]
    out = {f"judge_score{suffix}": _round(sum(scores) / len(scores)),
           f"distinct_1{suffix}": _round(distinct(words, 1)), f"distinct_2{suffix}": _round(distinct(words, 2)),
           f"mean_words{suffix}": _round(sum(map(len, words)) / len(words))}
    if real_scores is not None:  # real replies (1) against these (0)
        out[f"judge_auc{suffix}"] = _round(auc([1] * len(real_scores) + [0] * len(scores), [*real_scores, *scores]))
    if ended is not None:
        out[f"clean_end{suffix}"] = _round(sum(ended) / len(ended))
    return out


def _round(x) -> float | None:
    return None if x is None or x != x else round(float(x), 4)


def run_made_by(run, recipes: str | tuple):
    """(ModelRef, run.yaml) of a run made by one of `recipes`, or a one-line error."""
    from likeme import models, runs

    recipes = (recipes,) if isinstance(recipes, str) else recipes
    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    if runs.used_as(meta) not in recipes:
        raise LikemeError(f"{run} is not a {recipes[0]} run: pass the folder `likeme train {recipes[0]}` wrote")
    return ref, meta


@contextmanager
def temporary_store(data, format: str | None, me: str | None):
    """The export ingested into a store of its own, deleted afterwards (the user's store is left alone)."""
    import tempfile
    from pathlib import Path

    from likeme.data.store import Store

    with tempfile.TemporaryDirectory(prefix="likeme-eval-") as tmp:
        with Store(Path(tmp) / "eval.db") as store:
            store.ingest_path(data, format, **({"me": me} if me else {}))
            yield store


def eval_embedder(run, data, name: str, *, format: str | None = None, me: str | None = None) -> dict:
    """How well an embedder run tells NAME's messages from others' in an export never trained on,
    beside its base model.

    The export is ingested into a temporary store (yours is left alone); triplets are built from all
    of it with the run's rules (`authors.authorship_triplets`: anchor and positive by NAME,
    negative by someone else in the anchor's session). Reported:
      triplet_accuracy  share of triplets with cos(anchor, positive) > cos(anchor, negative);
      auc               ROC-AUC of the calibrated likeness score at telling NAME's messages from others'.
      feature_auc       the same for the uncalibrated feature (NAME's centroid minus the others'), read
                        the way the centroids point: a calibration fitted on unrepresentative held-out
                        sessions can flip a weak feature's sign, and this shows it.
    Each beside the base model's (base_*). The score's centroids and calibration are the run's own
    (from its training / held-out messages, stored for the model and for its base in score.json), so
    nothing of the file leaks into them. A run without a score for NAME (a --data run, or another
    person) has them made from the first half of the file's sessions, in time order, for both models,
    and AUC is measured on the second half.

    Example: eval_embedder("runs/robin-embedder", "later.txt", "Robin")
      -> {"triplet_accuracy": 0.9343, "base_triplet_accuracy": 0.0822, "auc": 0.9686, "base_auc": 0.1252,
          "feature_auc": 0.9686, "base_feature_auc": 0.8748, "messages": 860, "triplets": 426, ...}
      (the demo chat: the base's calibration, fitted on its trivia-only last sessions, reads its
      feature backwards on the later file; the feature itself ranks at 0.87)
    """
    import random
    from datetime import timedelta

    from likeme.data import authors
    from likeme.use import embedder

    ref, meta = run_made_by(run, "embedder")
    cfg = meta.get("config") or {}
    with temporary_store(data, format, me) as store:
        sessions = authors.store_sessions(store, name, gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)),
                                           min_chars=cfg.get("min_chars", 3))
    triplets = authors.authorship_triplets(sessions, name, random.Random(cfg.get("seed", 0)))
    models_ = {"model": embedder.load_embedder(ref.path), "base": embedder.load_embedder(ref.path, base=True)}
    own_score = models_["model"].name == name and models_["model"].calib is not None
    if own_score:
        scored = sessions
    else:  # no stored score for NAME: centroids and calibration from the first half, AUC on the second
        half = len(sessions) // 2
        if half < 1:
            raise LikemeError(f"{data}: {name} speaks in one session only; the run has no score for {name} "
                              "to use instead: pass a longer export")
        fit_s, scored = sessions[:half], sessions[half:]
    texts, labels = authors.labelled_messages(scored, name)
    out: dict = {}
    for prefix, key in (("", "model"), ("base_", "base")):
        e = models_[key]
        out[prefix + "triplet_accuracy"] = round(embedder.triplet_accuracy(e.model, triplets), 4) if triplets else None
        if not own_score:
            fit_texts, fit_labels = authors.labelled_messages(fit_s, name)
            vecs = e.embed(fit_texts)
            mine = [v for v, y in zip(vecs, fit_labels) if y]
            others = [v for v, y in zip(vecs, fit_labels) if not y]
            if not mine or not others:
                raise LikemeError(f"{data}: the first half of the chat needs messages by {name} and by others")
            e.calib = embedder.fit_calibration(mine, others, vecs, fit_labels)
        features = e.features(texts)
        for what, values in (("auc", embedder.calibrated(features, e.calib)), ("feature_auc", features)):
            value = embedder.auc(labels, values)
            out[prefix + what] = None if value != value else round(value, 4)  # NaN: one class only
    return {"triplet_accuracy": out["triplet_accuracy"], "base_triplet_accuracy": out["base_triplet_accuracy"],
            "auc": out["auc"], "base_auc": out["base_auc"],
            "feature_auc": out["feature_auc"], "base_feature_auc": out["base_feature_auc"],
            "messages": len(texts), "triplets": len(triplets),
            "name_messages": sum(labels), "calibration": "run" if own_score else "first half of the file"}


def classification_metrics(y_true: list[str], y_pred: list[str], labels: list[str] | None = None) -> dict:
    """Accuracy, macro-F1, per-label precision / recall / F1 / support and the confusion matrix.

    `labels` orders the matrix (rows: true, columns: predicted); labels met in y_true or y_pred but not
    listed are added at the end. Macro-F1 averages over the labels that occur in y_true or y_pred
    (scikit-learn's default), so a label absent from a small test set does not count as a zero.

    Example: classification_metrics(["a", "a", "b"], ["a", "b", "b"], ["a", "b"]) ->
      {"accuracy": 0.6667, "macro_f1": 0.6667, "examples": 3,
       "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2},
                     "b": {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}},
       "confusion": [[1, 1], [0, 1]], "labels": ["a", "b"]}
    """
    from sklearn.metrics import (
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = list(labels or [])
    labels += sorted({*y_true, *y_pred} - set(labels))
    if not y_true:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "examples": 0, "per_class": {},
                "confusion": [], "labels": labels}
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": round(sum(a == b for a, b in zip(y_true, y_pred)) / len(y_true), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 4),
        "examples": len(y_true),
        "per_class": {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                            "f1": round(float(f[i]), 4), "support": int(s[i])} for i, lab in enumerate(labels)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "labels": labels,
    }


def eval_classifier(run, data_file, text_column: str | None = None, label_column: str | None = None) -> dict:
    """Score a classifier run on a labelled CSV / TSV / JSONL file (`classification_metrics`).

    The columns default to those the run was trained with (run.yaml), else "text" and "label".
    Example: eval_classifier("runs/banking77", "test.csv") ->
      {"accuracy": 0.91, "macro_f1": 0.90, "examples": 3080, "per_class": {...}, "confusion": [[...]], "labels": [...]}
    """
    from likeme.data.tables import read_labelled
    from likeme.use.classifier import load_classifier

    clf = load_classifier(run)
    texts, labels = read_labelled(data_file, text_column or clf.meta.get("text_column") or "text",
                                  label_column or clf.meta.get("label_column") or "label")
    return score_classifier(clf, texts, labels)


def score_classifier(clf, texts: list[str], labels: list[str]) -> dict:
    """`classification_metrics` of a loaded Classifier's predictions for `texts` against `labels`."""
    return classification_metrics(labels, [label for label, _ in clf.predict(texts)], clf.labels)


def evaluate(run, data, *, name: str | None = None, format: str | None = None, me: str | None = None,
             text_column: str | None = None, label_column: str | None = None, max_replies: int | None = None,
             judge=None, samples: int = 50, seed: int = 0, people=None, guidance: float | None = None) -> tuple[str, dict]:
    """(recipe, figures) of a run on data it never saw, whichever recipe made it (`likeme eval`); a voice
    with a `judge` also gets `eval_judged`'s figures.

    Example: evaluate("runs/robin", "later.txt", name="Robin") -> ("voice", {"ppl": 38.2, "base_ppl": 410.7, ...})
    """
    from likeme.use.load import recipe_of

    recipe = recipe_of(run)
    if recipe == "classifier":
        return recipe, eval_classifier(run, data, text_column=text_column, label_column=label_column)
    if not name:
        raise LikemeError(f"say whose messages to score: --as NAME (a {recipe} run is measured on one person)")
    if recipe == "embedder":
        return recipe, eval_embedder(run, data, name, format=format, me=me)
    at_most = MAX_REPLIES if max_replies is None else max_replies
    figures = eval_voice(run, data, name, max_replies=at_most, format=format, me=me)
    figures.update(eval_likeness(run, data, name, people=people, max_replies=at_most, format=format, me=me,
                                 guidance=guidance))
    if judge is not None:
        figures.update(eval_judged(run, data, name, judge, samples=samples, seed=seed, format=format, me=me,
                                   guidance=guidance))
    return recipe, figures


def summary(recipe: str, r: dict, name: str | None = None) -> str:
    """`evaluate`'s figures as one line: "430 replies by Robin: perplexity 6.95 (base 44.42, 84% lower)"."""
    if recipe == "classifier":
        return f"accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}"
    if recipe == "embedder":
        return (f"{name}: triplet accuracy {r['triplet_accuracy']:.3f} (base {r['base_triplet_accuracy']:.3f}), "
                f"score AUC {r['auc']:.3f} (base {r['base_auc']:.3f})")
    drop = 100 * (1 - r["ppl"] / r["base_ppl"]) if r["base_ppl"] else float("nan")
    line = f"{r['replies']} replies by {name}: perplexity {r['ppl']:.2f} (base {r['base_ppl']:.2f}, {drop:.0f}% lower)"
    if "specificity" in r:
        guided = f" with guidance {r['guidance']:g} against {', '.join(r['against'])}" if r.get("guidance") else ""
        line += (f"\nspecificity {r['specificity']:+.1f} points: every turn scored as {name}'s{guided}, perplexity "
                 + ", ".join(f"{p} {100 * f['drop']:.0f}% lower ({f['turns']})" for p, f in r["by_person"].items())
                 + f"; the likelihood-ratio judge tells {name}'s turns from others' with AUC {_fmt(r['likelihood_auc'])}")
    if "attribution" in r:
        a = r["attribution"]
        line += (f"\nattribution of {a['turns']} turns to {', '.join(a['people'])}: {_fmt(a['accuracy'])} right "
                 f"(base model {_fmt(a['base_accuracy'])}, chance {_fmt(a['chance'])}); judge AUC {_fmt(a['judge_auc'])}")
    if "judge_score" in r:
        line += (f"\n{r['samples']} replies written and judged ({r['judge']}, which tells {name}'s messages from others' "
                 f"with AUC {_fmt(r['judge_strength_auc'])}):\n"
                 f"  judge score   run {_fmt(r['judge_score'])}, base {_fmt(r.get('judge_score_base'))}, "
                 f"{name}'s real replies {_fmt(r['judge_score_real'])}\n"
                 f"  real vs written, judge AUC (0.5: cannot tell)   run {_fmt(r['judge_auc'])}, "
                 f"base {_fmt(r.get('judge_auc_base'))}\n"
                 f"  distinct-2    run {_fmt(r['distinct_2'])}, base {_fmt(r.get('distinct_2_base'))}, "
                 f"real {_fmt(r['distinct_2_real'])}\n"
                 f"  words/reply   run {_fmt(r['mean_words'])}, base {_fmt(r.get('mean_words_base'))}, "
                 f"real {_fmt(r['mean_words_real'])}; ended cleanly: run {_fmt(r['clean_end'])}, "
                 f"base {_fmt(r.get('clean_end_base'))}")
    return line


def classification_report(r: dict) -> str:
    """classification_metrics' dict as text: totals, a per-label table, the confusion matrix when small."""
    lines = [f"{r['examples']} texts: accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}", ""]
    width = min(max(len(str(k)) for k in r["labels"]), 32)
    lines.append(f"{'label':<{width}}  precision  recall      f1  support")
    for k, v in r["per_class"].items():
        lines.append(f"{str(k)[:width]:<{width}}  {v['precision']:>9.3f}  {v['recall']:>6.3f}  {v['f1']:>6.3f}  "
                     f"{v['support']:>7}")
    if len(r["labels"]) <= 12:
        lines += ["", "confusion (rows: true, columns: predicted, in the order above):"]
        lines += ["  " + " ".join(f"{n:>5}" for n in row) for row in r["confusion"]]
    else:
        lines += ["", "(--json prints the confusion matrix)"]
    return "\n".join(lines)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)
