"""banking77 intent classification: likeme's default classifier against TF-IDF + logistic regression.

    .venv/bin/python bench/classify.py                          # 10 and 40 texts per intent (CPU: ~9 min)
    .venv/bin/python bench/classify.py --train-per-class 0      # all 10,003 training texts (CPU: ~13 min)
    .venv/bin/python bench/classify.py --trainable head --lr 1e-3

For each training-set size, both sides learn from the same training texts (a per-intent sample of
banking77's train.csv) and are scored on the whole test.csv (3,080 texts, 77 intents). likeme:
`train_classifier` with its defaults (smollm2-135m, last-blocks, the frozen-part cache, class weights,
early stopping on a 10% stratified validation share of the sample), then `load_classifier(run).predict`
on the test texts. Baseline: scikit-learn's TfidfVectorizer (word 1-2-grams, sublinear tf) +
LogisticRegression, fitted on the whole sample (validation share included, which only helps it).
Times are wall-clock: likeme's training time includes loading the model, the cache pass, the epochs
and saving the run. Prints a markdown table, the machine and the date.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "classification" / "banking77" / "banking_data"


def sample_per_class(texts, labels, n: int, seed: int):
    """At most n texts of each label (all of them for n <= 0), in a shuffled order."""
    by = defaultdict(list)
    for t, y in zip(texts, labels):
        by[y].append(t)
    rng = random.Random(seed)
    out = []
    for y in sorted(by):
        items = by[y][:]
        rng.shuffle(items)
        out += [(t, y) for t in (items if n <= 0 else items[:n])]
    rng.shuffle(out)
    return [t for t, _ in out], [y for _, y in out]


def baseline(train_x, train_y, test_x):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=10.0, max_iter=3000))
    t = time.perf_counter()
    pipe.fit(train_x, train_y)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    guess = list(pipe.predict(test_x))
    return guess, fit_s, time.perf_counter() - t


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} torch threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, {device}; load average at start {load:.2f}; "
            f"python {platform.python_version()}, torch {torch.__version__}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with train.csv and test.csv")
    ap.add_argument("--train-per-class", default="10,40",
                    help="training texts per intent, comma-separated for several runs (0: all)")
    ap.add_argument("--test-limit", type=int, default=0, help="score only this many test texts (0: all 3,080)")
    ap.add_argument("--epochs", type=float, default=None, help="likeme's --epochs (default: its own)")
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--trainable", default=None, help="likeme's --trainable (default: its own)")
    ap.add_argument("--lr", type=float, default=None, help="likeme's --lr (default: its own)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write likeme's run here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if not (args.data / "train.csv").is_file():
        print(f"banking77 not found in {args.data}: pass --data FOLDER", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    from likeme.check.evaluate import classification_metrics
    from likeme.data.tables import read_labelled as read_table
    from likeme.recipes.classify import ClassifyConfig, train_classifier
    from likeme.use.classifier import load_classifier

    about = machine()
    started = datetime.now()
    all_x, all_y = read_table(args.data / "train.csv", "text", "category")
    test_x, test_y = read_table(args.data / "test.csv", "text", "category")
    if args.test_limit:
        test_x, test_y = sample_per_class(test_x, test_y, -(-args.test_limit // 77), args.seed)
        test_x, test_y = test_x[: args.test_limit], test_y[: args.test_limit]
    rows, runs = [], []
    for per_class in [int(n) for n in str(args.train_per_class).split(",")]:
        train_x, train_y = sample_per_class(all_x, all_y, per_class, args.seed)
        size = f"{per_class} per intent ({len(train_x)})" if per_class > 0 else f"all ({len(train_x)})"
        print(f"banking77: {len(train_x)} training texts ({per_class or 'all'} per intent), "
              f"{len(test_x)} test texts, {len(set(all_y))} intents", file=sys.stderr)
        guess, fit_s, pred_s = baseline(train_x, train_y, test_x)
        m = classification_metrics(test_y, guess)
        rows.append({"size": size, "method": "TF-IDF + logistic regression", "accuracy": m["accuracy"],
                     "macro_f1": m["macro_f1"], "train_s": round(fit_s, 1), "train_ex_s": round(len(train_x) / fit_s, 1),
                     "predict_ex_s": round(len(test_x) / pred_s, 1)})
        print(f"baseline: accuracy {m['accuracy']:.4f}", file=sys.stderr)

        with tempfile.TemporaryDirectory(prefix="likeme-bench-") as tmp:
            data = Path(tmp) / "train.csv"
            with open(data, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["text", "category"])
                w.writerows(zip(train_x, train_y))
            run = args.keep / f"{per_class}-per-intent" if args.keep else Path(tmp) / "run"
            flags = {k: v for k, v in {"trainable": args.trainable, "lr": args.lr, "batch_size": args.batch_size,
                                       "max_length": args.max_length, "epochs": args.epochs}.items() if v is not None}
            cfg = ClassifyConfig(data=str(data), label_column="category", base=args.base, seed=args.seed,
                                 out=str(run), **flags)
            t = time.perf_counter()
            train_classifier(cfg, progress=sys.stderr.isatty())
            train_s = time.perf_counter() - t
            trained = json.loads((run / "metrics.json").read_text())
            t = time.perf_counter()
            clf = load_classifier(run)
            guess = [label for label, _ in clf.predict(test_x)]
            pred_s = time.perf_counter() - t
        m = classification_metrics(test_y, guess)
        rows.append({"size": size, "method": f"likeme {args.base}, {trained['trainable']}" + (" (cached)" if trained["cached"] else ""),
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "train_s": round(train_s, 1),
                     "train_ex_s": round(len(train_x) / train_s, 1), "predict_ex_s": round(len(test_x) / pred_s, 1)})
        runs.append((size, trained))
        print(f"likeme: accuracy {m['accuracy']:.4f}", file=sys.stderr)

    total_s = (datetime.now() - started).total_seconds()
    print(f"\n## banking77, {len(test_x)} test texts\n")
    print("| training texts | method | test accuracy | test macro-F1 | training time (s) | training texts/s | test texts/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['method']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['train_s']:.1f} | "
              f"{r['train_ex_s']:.1f} | {r['predict_ex_s']:.1f} |")
    print()
    for size, trained in runs:
        print(f"likeme, {size}: {trained['train_examples']} trained on, {trained['val_examples']} validation "
              f"(val accuracy {trained.get('val_accuracy')}), max_length {trained['max_length']}, "
              f"{trained['epochs']} epochs (best {trained['best_epoch']}), cache pass {trained['cache_seconds']} s, "
              f"epochs {trained['seconds']} s ({trained['epochs'] * trained['train_examples'] / trained['seconds']:.1f} texts/s)")
    print(f"total {total_s / 60:.1f} min; {started:%Y-%m-%d %H:%M}; {about}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "likeme": dict(runs), "machine": about,
                                         "date": started.isoformat(), "total_s": total_s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
