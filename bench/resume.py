"""kill -9 at a random step, then --resume: each recipe finishes, and metrics.jsonl holds each step once.

    .venv/bin/pip install --no-deps chatterbot-corpus==1.3.3   # the demo chat (make demo installs it)
    .venv/bin/python bench/resume.py                           # all three recipes, seed 0
    .venv/bin/python bench/resume.py --recipes embedder --seed 3

On the bundled models and real data, on the CPU: voice (smollm2-135m, LoRA) and embedder (minilm) on
the demo chat (`examples/chatterbot_chat.py`), classifier (smollm2-135m, last-blocks) on 10 banking77
texts per intent. For each recipe: `likeme train ...` starts in a subprocess; when a step drawn at random
(seeded) has been logged, the process gets SIGKILL (no handler runs: as a power cut); the same command
with `--out RUN --resume` finishes the run. Printed per recipe: the step killed at, the checkpoint it went
on from, the steps done again, the steps in the finished metrics.jsonl (each once?) and the times.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIKEME = str(Path(sys.executable).parent / "likeme")
BANKING = ROOT.parent / "shared" / "data" / "classification" / "banking77" / "banking_data" / "train.csv"


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text("utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line being written
        if "loss" in row:
            steps.append(row["step"])
    return steps


def kill_at(cmd: list[str], run: Path, step: int, env: dict, limit_s: float = 3600) -> tuple[int, float]:
    """Start cmd, SIGKILL it once `step` is logged; (last step logged, seconds it ran)."""
    started = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        while time.time() - started < limit_s and p.poll() is None:
            steps = logged_steps(run)
            if steps and steps[-1] >= step:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.1)
        if p.poll() is not None and p.returncode != -signal.SIGKILL:
            raise SystemExit(f"{' '.join(cmd)} ended ({p.returncode}) before step {step}")
    finally:
        p.kill()
        p.wait()
    return max(logged_steps(run)), time.time() - started


def recipes(work: Path, db: Path) -> dict[str, tuple[list[str], tuple[int, int]]]:
    """recipe -> (the training command, the range the kill step is drawn from)."""
    data = work / "banking-10.csv"
    if not data.is_file():
        import csv

        rows, per = [], {}
        with open(BANKING, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if per.get(row["category"], 0) < 10:
                    per[row["category"]] = per.get(row["category"], 0) + 1
                    rows.append(row)
        with open(data, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["text", "category"])
            w.writeheader()
            w.writerows(rows)
    return {
        "voice": ([LIKEME, "train", "voice", "--as", "Robin", "--db", str(db), "--max-steps", "24", "--batch-size", "4",
                   "--eval-every", "6", "--eval-max", "16", "--heldout", "0.05", "--patience", "100",
                   "--out", str(work / "voice")], (3, 22)),
        "classifier": ([LIKEME, "train", "classifier", "--data", str(data), "--label-column", "category",
                        "--epochs", "3", "--out", str(work / "classifier")], (5, 125)),
        "embedder": ([LIKEME, "train", "embedder", "--as", "Robin", "--db", str(db), "--eval-every", "10",
                      "--out", str(work / "embedder")], (3, 46)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", nargs="+", default=["voice", "classifier", "embedder"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="likeme-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LIKEME_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    db = work / "chats.db"
    if not db.is_file():
        subprocess.run([sys.executable, str(ROOT / "examples" / "chatterbot_chat.py"), str(work / "chats")], check=True)
        subprocess.run([LIKEME, "ingest", str(work / "chats" / "WhatsApp Chat with Robin.txt"), "--db", str(db)],
                       check=True, env=env)
    rng = random.Random(args.seed)
    table = recipes(work, db)
    for name in args.recipes:
        cmd, (lo, hi) = table[name]
        run = Path(cmd[cmd.index("--out") + 1])
        step = rng.randint(lo, hi)
        killed, first_s = kill_at(cmd, run, step, env)
        checkpoints = sorted(int(p.name.rsplit("-", 1)[1]) for p in (run / "checkpoints").glob("checkpoint-*")
                             if (p / "trainer_state.json").is_file())
        status = next(line for line in (run / "run.yaml").read_text().splitlines() if line.startswith("status:"))
        t = time.time()
        resume = [LIKEME, "train", name, "--out", str(run), "--resume", "-q"]
        done = subprocess.run(resume, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        steps = logged_steps(run)
        metrics = json.loads((run / "metrics.json").read_text())
        print(f"{name}: `{' '.join(Path(c).name if c == LIKEME else c for c in cmd)}`")
        print(f"  killed (SIGKILL) after step {killed} ({first_s:.0f} s in; run.yaml {status}); checkpoints "
              f"{checkpoints or 'none'}: resumed from step {max(checkpoints, default=0)}, "
              f"{killed - max(checkpoints, default=0)} steps done again")
        print(f"  `likeme train {name} --out RUN --resume`: finished in {time.time() - t:.0f} s; "
              f"metrics.jsonl: {len(steps)} training rows, steps 1..{max(steps)}, each once: "
              f"{steps == list(range(1, max(steps) + 1))}; metrics.json steps {metrics.get('steps')}")
        print(f"  {json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})}")
    print(f"runs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
