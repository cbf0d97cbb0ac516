"""A year of chats on a laptop: how a voice's cost grows with the data, before and after.

    python bench/scale_data.py --messages 200000 --steps 10            # a synthetic WhatsApp export
    python bench/scale_data.py --chat "shakespeare.txt" --as Gloucester --steps 10 --old-src ../old/src

For one person's voice on one store, each figure from the code here ("after") and, with --old-src, from
another checkout's src/ run in its own process ("before"):
- examples/s of building the dataset: the reference path (`persona_example` per reply, timed on the
  first --sample replies) and `persona_dataset` (assembled from token ids, cold), and the second call's
  seconds (read from the cache beside the store);
- `likeme train voice --as NAME --max-steps S`: seconds from the command to its first training step,
  peak memory (metrics.json), the median real tokens/s, held-out perplexity base -> trained;
- `likeme plan`'s predicted seconds a step and peak memory, beside the measured ones.
The synthetic export (`bench/ingest.py`'s `make_export`, a new evening every ~40 messages) or --chat FILE
is ingested into a temporary store; NAME is its most active author unless --as says. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_export  # noqa: E402

GiB = 1024 ** 3
SRC = Path(__file__).resolve().parents[1] / "src"

# The old code's dataset building, on a sample of replies (it may be far too slow for all of them).
OLD_DATASET = """
import sys, time
from likeme import models
try:
    from likeme.datasets import persona_example, replies, reply_sessions
    from likeme.store import Store
except ImportError:
    from likeme.data.examples import persona_example, replies, reply_sessions
    from likeme.data.store import Store
tok = models.load_tokenizer("smollm2-135m")
db, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Store(db) as store:
    train_s, _, _ = reply_sessions(store, name)
found = replies(train_s, name)[:n]
t = time.perf_counter()
for r in found:
    persona_example(tok, r.context, r.reply, name, prefix_names=r.prefix_names)
print(len(found) / (time.perf_counter() - t))
"""


def likeme(src: Path, *args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "likeme", *args], env={**env, "PYTHONPATH": str(src)}, **kw)


def train(src: Path, db: Path, name: str, out: Path, steps: int, env: dict, extra: list[str]) -> dict:
    """Run `likeme train voice` for `steps` steps; seconds to its first step, peak memory, tokens/s, perplexity."""
    start = time.perf_counter()
    proc = likeme(src, "train", "voice", "--as", name, "--db", str(db), "--max-steps", str(steps), "--out", str(out),
                  "--eval-every", str(steps), *extra, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                  text=True)
    first, log = None, out / "metrics.jsonl"
    while proc.poll() is None:  # bounded by the run itself: it ends after `steps` steps
        if first is None and log.exists() and '"loss"' in log.read_text():
            first = time.perf_counter() - start
        time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"likeme train voice failed: {proc.stderr.read()[-2000:]}")
    rows = [json.loads(line) for line in log.read_text().splitlines() if '"loss"' in line]
    m = json.loads((out / "metrics.json").read_text())
    return {"first_step_s": first, "peak_gib": m["peak_memory_bytes"] / GiB,
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows[1:] or rows),
            "base_ppl": m["base_ppl"], "ppl": m["ppl"], "wall_s": time.perf_counter() - start,
            "step_s": statistics.median(b["seconds"] - a["seconds"] for a, b in zip(rows, rows[1:])) if len(rows) > 1
            else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000, help="messages in the synthetic export")
    ap.add_argument("--chat", default=None, help="a chat export to use instead of the synthetic one")
    ap.add_argument("--as", dest="name", default=None, help="whose voice (default: the most active author)")
    ap.add_argument("--sample", type=int, default=300, help="replies the reference path is timed on")
    ap.add_argument("--steps", type=int, default=0, help="also train the voice for this many steps (0: no)")
    ap.add_argument("--train-flags", default="", help="more flags for likeme train voice (both sides)")
    ap.add_argument("--old-src", type=Path, default=None, help="another checkout's src/: the 'before' column")
    ap.add_argument("--old-train", action="store_true", help="with --old-src, also train with the old code")
    args = ap.parse_args()

    from likeme import models
    from likeme.data.examples import persona_dataset, persona_example, replies, reply_sessions
    from likeme.data.store import Store

    tok = models.load_tokenizer("smollm2-135m")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "LIKEME_HOME": os.environ.get("LIKEME_HOME", str(tmp / "home"))}
        if args.chat:
            export, what = Path(args.chat), Path(args.chat).name
        else:
            export, what = tmp / "WhatsApp Chat with Friends.txt", f"synthetic export of {args.messages:,} messages"
            export.write_text(make_export(args.messages, per_evening=40), "utf-8")
        db = tmp / "bench.db"
        store = Store(db)
        t = time.perf_counter()
        store.ingest_path(export)
        ingest_s = time.perf_counter() - t
        name = args.name or store.people()[0].author
        train_s, _, _ = reply_sessions(store, name)
        sample = replies(train_s, name)[: args.sample]
        t = time.perf_counter()
        for r in sample:
            persona_example(tok, r.context, r.reply, name, prefix_names=r.prefix_names)
        ref_rate = len(sample) / (time.perf_counter() - t)
        t = time.perf_counter()
        data = persona_dataset(store, name, tok, progress=False)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        persona_dataset(store, name, tok, progress=False)
        warm = time.perf_counter() - t
        n = len(data.train) + len(data.heldout)
        store.close()

        rows = {"examples (train + held out)": (f"{n:,}", f"{n:,}"),
                "dataset: reference path, examples/s": (None, f"{ref_rate:,.0f} (first {len(sample)})"),
                "dataset: examples/s": (None, f"{n / cold:,.0f} ({cold:.1f} s)"),
                "dataset again (cache), s": (None, f"{warm:.2f}")}
        if args.old_src:
            out = subprocess.run([sys.executable, "-c", OLD_DATASET, str(db), name, str(args.sample)], text=True,
                                 capture_output=True, env={**env, "PYTHONPATH": str(args.old_src)}, check=True)
            old_rate = float(out.stdout.strip().splitlines()[-1])
            rows["dataset: examples/s"] = (f"{old_rate:,.1f} (first {args.sample}; {n / old_rate:,.0f} s for all)",
                                           rows["dataset: examples/s"][1])
            rows["dataset again (cache), s"] = (f"{n / old_rate:,.0f} (no cache)", rows["dataset again (cache), s"][1])
        if args.steps:
            extra = args.train_flags.split()
            plan = subprocess.run([sys.executable, "-m", "likeme", "plan", "--as", name, "--db", str(db), "--json",
                                   "--max-steps", str(args.steps)], text=True, capture_output=True, check=True,
                                  env={**env, "PYTHONPATH": str(SRC)})
            est = json.loads(plan.stdout)["estimate"]
            after = train(SRC, db, name, tmp / "run-after", args.steps, env, extra)
            before = train(args.old_src, db, name, tmp / "run-before", args.steps, env, extra) \
                if args.old_src and args.old_train else None

            def both(key, fmt):
                return (fmt(before[key]) if before else None, fmt(after[key]))
            rows["train: seconds to the first step"] = both("first_step_s", lambda v: f"{v:.0f}")
            rows["train: peak memory, GiB"] = both("peak_gib", lambda v: f"{v:.2f}")
            rows["train: real tokens/s (median)"] = both("tokens_per_s", lambda v: f"{v:.1f}")
            rows["train: seconds a step (median)"] = both("step_s", lambda v: f"{v:.1f}")
            rows[f"held-out perplexity after {args.steps} steps (base)"] = tuple(
                None if r is None else f"{r['ppl']:.3f} ({r['base_ppl']:.3f})" for r in (before, after))
            rows["plan: seconds a step / peak GiB (predicted)"] = (
                None, f"{est['step_seconds']:.1f} / {est['peak_bytes'] / GiB:.2f}")

    print(f"{what}: {name}'s voice; ingest {ingest_s:.0f} s; {os.cpu_count()} CPU cores\n")
    print("| figure | before | after |\n| --- | ---: | ---: |")
    for k, (b, a) in rows.items():
        print(f"| {k} | {b if b is not None else ''} | {a} |")


if __name__ == "__main__":
    main()
