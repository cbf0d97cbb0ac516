"""banking77: a classifier distilled into MiniLM (`likeme train distill`) against its teacher.

    .venv/bin/python bench/distill.py                              # teacher: default classifier, 40 per intent
    .venv/bin/python bench/distill.py --teacher runs/banking77     # reuse a trained teacher
    .venv/bin/python bench/distill.py --unlabelled-per-class 40    # + more training texts, labels hidden

Teacher: `train_classifier` with its defaults (smollm2-135m, 135M parameters, last block trained on the
frozen-part cache) on a per-intent sample of banking77's train.csv. Student: `train_distill` with its
defaults (minilm: all-MiniLM-L6-v2, 22M parameters, all weights trained, T=2, alpha=0.5) on the same
labelled texts, plus `--unlabelled-per-class` other training texts per intent shown without their
label (the student learns the teacher's soft labels on them). Both are scored on the whole test.csv
(3,080 texts, 77 intents) with `load_classifier(run).predict`, at the same batch size, one after the
other in this process: test texts/s is that predict call's wall time. Training times are wall-clock
(the student's includes running the teacher over its texts). Prints a markdown table, the machine, the date.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classify import DATA, machine, sample_per_class  # noqa: E402  (bench/classify.py: the same data, the same sample)


def write_csv(path: Path, texts, labels) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "category"])
        w.writerows(zip(texts, labels))
    return path


def score(run: Path, test_x, test_y, batch_size: int) -> dict:
    from likeme.check.evaluate import classification_metrics
    from likeme.use.classifier import load_classifier

    clf = load_classifier(run, device="cpu")
    clf.predict(test_x[:batch_size], batch_size=batch_size)  # warm-up: first-call allocations
    t = time.perf_counter()
    guess = [label for label, _ in clf.predict(test_x, batch_size=batch_size)]
    seconds = time.perf_counter() - t
    m = classification_metrics(test_y, guess)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "texts_s": len(test_x) / seconds,
            "params": sum(p.numel() for p in clf.model.parameters())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with train.csv and test.csv")
    ap.add_argument("--train-per-class", type=int, default=40, help="labelled training texts per intent (0: all)")
    ap.add_argument("--unlabelled-per-class", type=int, default=0,
                    help="other training texts per intent given to the student without their label")
    ap.add_argument("--teacher", type=Path, default=None, help="a trained classifier run to reuse (default: train one)")
    ap.add_argument("--student", default="minilm")
    ap.add_argument("--epochs", type=float, default=None, help="the student's --epochs (default: its own)")
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=32, help="texts per forward pass when scoring both")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for everything (default: torch's; 1 on a loaded shared machine, where 2 "
                         "threads waiting on each other ran MiniLM's forward 6x slower than 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)
    if not (args.data / "train.csv").is_file():
        print(f"banking77 not found in {args.data}: pass --data FOLDER", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    import torch
    import yaml

    if args.threads:
        torch.set_num_threads(args.threads)
    from likeme.data.tables import read_labelled
    from likeme.recipes.classify import ClassifyConfig, train_classifier
    from likeme.recipes.distill import DistillConfig, train_distill

    about, started = machine(), datetime.now()
    all_x, all_y = read_labelled(args.data / "train.csv", "text", "category")
    test_x, test_y = read_labelled(args.data / "test.csv", "text", "category")
    train_x, train_y = sample_per_class(all_x, all_y, args.train_per_class, args.seed)
    chosen = set(train_x)
    rest_x, rest_y = zip(*[(t, y) for t, y in zip(all_x, all_y) if t not in chosen]) if args.unlabelled_per_class else ((), ())
    extra = sample_per_class(list(rest_x), list(rest_y), args.unlabelled_per_class, args.seed)[0] if rest_x else []
    print(f"banking77: {len(train_x)} labelled training texts, {len(extra)} unlabelled, {len(test_x)} test texts",
          file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="likeme-bench-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = write_csv(root / "train.csv", train_x, train_y)
        teacher, teacher_s = args.teacher, None
        if teacher is None:
            teacher = root / "teacher"
            t = time.perf_counter()
            train_classifier(ClassifyConfig(data=str(data), label_column="category", seed=args.seed, out=str(teacher)),
                             progress=sys.stderr.isatty())
            teacher_s = time.perf_counter() - t
        unlabelled = None
        if extra:
            unlabelled = root / "unlabelled.txt"
            unlabelled.write_text("".join(" ".join(x.split()) + "\n" for x in extra), "utf-8")
        student = root / "student"
        flags = {k: v for k, v in {"epochs": args.epochs, "temperature": args.temperature, "alpha": args.alpha}.items()
                 if v is not None}
        t = time.perf_counter()
        train_distill(DistillConfig(teacher=str(teacher), student=args.student, data=str(data), label_column="category",
                                    unlabelled=str(unlabelled) if unlabelled else None, seed=args.seed,
                                    out=str(student), **flags), progress=sys.stderr.isatty())
        student_s = time.perf_counter() - t
        distilled = json.loads((student / "metrics.json").read_text())
        config = yaml.safe_load((student / "run.yaml").read_text())["config"]
        teacher_meta = yaml.safe_load((teacher / "run.yaml").read_text())
        print("scoring the teacher, then the student", file=sys.stderr)
        rows = {"teacher": score(teacher, test_x, test_y, args.batch_size),
                "student": score(student, test_x, test_y, args.batch_size)}
    rows["teacher"].update(train_s=teacher_s, name=f"teacher: {teacher_meta['base']}, {teacher_meta['config']['trainable']}")
    rows["student"].update(train_s=student_s, name=f"student: {args.student} via distill (T={config['temperature']:g}, "
                                                   f"alpha={config['alpha']:g}, {config['trainable']})")
    ratio = rows["student"]["accuracy"] / rows["teacher"]["accuracy"]
    speed = rows["student"]["texts_s"] / rows["teacher"]["texts_s"]
    total_s = (datetime.now() - started).total_seconds()

    print(f"\n## banking77, {len(train_x)} labelled training texts ({args.train_per_class or 'all'} per intent), "
          f"{len(extra)} unlabelled, {len(test_x)} test texts\n")
    print("| model | parameters | test accuracy | test macro-F1 | training time (s) | test texts/s (CPU, batch "
          f"{args.batch_size}) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows.values():
        train = f"{r['train_s']:.1f}" if r["train_s"] is not None else "(reused)"
        print(f"| {r['name']} | {r['params'] / 1e6:.1f}M | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {train} | "
              f"{r['texts_s']:.1f} |")
    print(f"\nstudent/teacher accuracy {ratio:.3f} (target >= 0.97), texts/s {speed:.1f}x (target >= 5x); "
          f"student: {distilled['epochs']} epochs (best {distilled['best_epoch']}), val accuracy "
          f"{distilled.get('val_accuracy')} (teacher {distilled.get('teacher_val_accuracy')}), teacher pass "
          f"{distilled['teacher_seconds']} s, epochs {distilled['seconds']} s")
    print(f"total {total_s / 60:.1f} min; {started:%Y-%m-%d %H:%M}; {about}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "student": distilled, "ratio": ratio, "speedup": speed,
                                         "machine": about, "date": started.isoformat(), "total_s": total_s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
