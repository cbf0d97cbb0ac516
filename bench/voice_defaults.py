"""Which voice settings learn the most per CPU minute: held-out perplexity of NAME's replies after a fixed
time budget of training (`likeme train voice --max-minutes`), for settings given on the command line.

    .venv/bin/pip install --no-deps chatterbot-corpus==1.3.3
    .venv/bin/python bench/voice_defaults.py --corpus chatterbot --minutes 3 \\
        --try "old: --lr 2e-4 --batch-size 8 --context-turns 8" --try "lr1e-3: --lr 1e-3"
    .venv/bin/python bench/voice_defaults.py --corpus shakespeare --minutes 10 --try "defaults:"

Corpora (multi-speaker dialogue): `chatterbot` (examples/chatterbot_chat.py; NAME Robin) and
`shakespeare` (examples/shakespeare_chat.py on ../shared/data/text/tinyshakespeare; NAME Gloucester).
Each setting trains on the bundled smollm2-135m from the same store; the figure is the held-out
perplexity of NAME's replies (the latest 10% of sessions, never trained on) in metrics.json, against
the base model's. Settings are compared at the same wall time of training, on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIKEME = str(Path(sys.executable).parent / "likeme")
NAMES = {"chatterbot": "Robin", "shakespeare": "Gloucester"}


def store(corpus: str, work: Path, env: dict) -> Path:
    db = work / f"{corpus}.db"
    if db.is_file():
        return db
    if corpus == "chatterbot":
        subprocess.run([sys.executable, str(ROOT / "examples" / "chatterbot_chat.py"), str(work / corpus)], check=True)
        export = work / corpus / "WhatsApp Chat with Robin.txt"
    else:
        text = ROOT.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
        subprocess.run([sys.executable, str(ROOT / "examples" / "shakespeare_chat.py"), str(text), str(work / corpus)],
                       check=True)
        export = work / corpus / "shakespeare.txt"
    subprocess.run([LIKEME, "ingest", str(export), "--db", str(db)], check=True, env=env)
    return db


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=list(NAMES), default="chatterbot")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--try", dest="tries", action="append", required=True,
                    help='"label: --flag value ..." (repeat); "label:" alone is the current defaults')
    ap.add_argument("--work", type=Path, default=Path("/tmp/likeme-voice-defaults"))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LIKEME_HOME": str(args.work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    db = store(args.corpus, args.work, env)
    rows = []
    for spec in args.tries:
        label, _, flags = spec.partition(":")
        out = args.work / "runs" / f"{args.corpus}-{label.strip()}-{args.minutes:g}min"
        if not (out / "metrics.json").is_file():
            t = time.time()
            subprocess.run([LIKEME, "train", "voice", "--as", NAMES[args.corpus], "--db", str(db), "--max-minutes",
                            str(args.minutes), "--out", str(out), "-q", *shlex.split(flags)], check=True, env=env)
            print(f"{label}: {time.time() - t:.0f} s wall", file=sys.stderr)
        m = json.loads((out / "metrics.json").read_text())
        rows.append((label.strip(), flags.strip() or "(defaults)", m))
    print(f"\n{args.corpus}, NAME {NAMES[args.corpus]}, {args.minutes:g} minutes of training each\n")
    print("| setting | flags | steps | tokens trained on | held-out ppl | base ppl | below base |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, flags, m in rows:
        print(f"| {label} | `{flags}` | {m['steps']} | {m['train_tokens']:,} tokens | {m['ppl']:.2f} | "
              f"{m['base_ppl']:.2f} | {100 * (1 - m['ppl'] / m['base_ppl']):.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
