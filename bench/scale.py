"""Train faster, scale out, plan ahead: `likeme train voice` on the bundled smollm2-135m, measured.

    .venv/bin/pip install --no-deps chatterbot-corpus==1.3.3
    .venv/bin/python bench/scale.py                       # ~30 min on 2 CPU cores, alone on the machine
    .venv/bin/python bench/scale.py --only plan --steps 8

Three parts, each printed as a markdown table (and all figures in WORK/results.json):

- precision: the same voice (chatterbot, Robin; LoRA, batch 8) for --steps steps with --precision fp32
  (the path before --precision existed), auto and bf16, and fp32 with --packing (padding-free batches):
  real (non-padding) tokens/s from metrics.jsonl, the steps' median, and the held-out loss (log of
  metrics.json's perplexity) at the end;
- processes: the same steps and global batch in one process (batch 8) and in two (--processes 2,
  batch 4 each): tokens/s, the final training loss and the held-out loss;
- plan: `likeme plan --json` against a run of --steps steps (no evaluations in between) on three chats of
  different sizes and lengths (chatterbot's latest 300 days and all of it: Robin; tinyshakespeare as a
  chat: Gloucester): seconds per step (median) and peak memory (the process's peak resident size),
  estimated and measured.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIKEME = str(Path(sys.executable).parent / "likeme")
sys.path.insert(0, str(ROOT / "bench"))


def run(env, *args) -> str:
    t = time.time()
    p = subprocess.run([LIKEME, *map(str, args)], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"likeme {' '.join(map(str, args[:3]))} failed:\n{p.stderr[-2000:]}")
    print(f"likeme {' '.join(map(str, args))}: {time.time() - t:.0f} s", file=sys.stderr)
    return p.stdout


def figures(folder: Path) -> dict:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    m = json.loads((folder / "metrics.json").read_text())
    rates = [r["tokens_per_s"] for r in train[1:] if r.get("tokens_per_s")]  # the first step warms up
    return {"tokens_per_s": statistics.median(rates), "last_loss": train[-1]["loss"],
            "heldout_loss": round(math.log(m["ppl"]), 4), "ppl": m["ppl"], "steps": m["steps"],
            "peak_gib": round(m["peak_memory_bytes"] / 1024 ** 3, 3), "precision": None}


def stores(work: Path, env: dict) -> dict:
    from voice_defaults import store

    dbs = {"chatterbot": (store("chatterbot", work, env), "Robin"),
           "shakespeare": (store("shakespeare", work, env), "Gloucester")}
    small = work / "chatterbot-300.db"
    if not small.is_file():  # the chatterbot chat's latest 300 days (bench/audit.py's cut, no personal data added)
        from audit import leaky

        chat = work / "chatterbot-300" / "WhatsApp Chat with Robin.txt"
        chat.parent.mkdir(exist_ok=True)
        leaky(work / "chatterbot" / "WhatsApp Chat with Robin.txt", chat, 300, 10 ** 9)
        run(env, "ingest", chat, "--db", small)
    return {"chatterbot, 300 days": (small, "Robin"), "chatterbot, all": dbs["chatterbot"],
            "shakespeare": dbs["shakespeare"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/likeme-scale"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--only", choices=["precision", "processes", "plan"], action="append")
    ap.add_argument("--precisions", default="fp32,auto,bf16",
                    help="bf16 on a CPU without native bf16 is ~15x slower than fp32: leave it out there")
    args = ap.parse_args(argv)
    parts = args.only or ["precision", "processes", "plan"]
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LIKEME_HOME": str(args.work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    dbs = stores(args.work, env)
    db, name = dbs["chatterbot, all"]
    out = args.work / "runs"
    results_file = args.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "date": time.strftime("%Y-%m-%d")}
    common = ["--as", name, "--db", db, "--max-steps", args.steps, "--eval-every", 1000, "--heldout", 0.03, "-q"]

    def train(label, *extra):
        folder = out / label
        if not (folder / "metrics.json").is_file():
            subprocess.run(["rm", "-rf", str(folder)])
            run(env, "train", "voice", *common, "--out", folder, *extra)
        f = figures(folder)
        import yaml
        f["precision"] = yaml.safe_load((folder / "run.yaml").read_text()).get("precision")
        return f

    if "precision" in parts:
        results["precision"] = {p: train(f"precision-{p}", "--precision", p) for p in args.precisions.split(",")}
        results["precision"]["fp32 --packing"] = train("packing", "--precision", "fp32", "--packing")
    if "processes" in parts:
        results["processes"] = {"1 process, batch 8": train("one", "--batch-size", 8),
                                "2 processes, batch 4 each": train("two", "--batch-size", 4, "--processes", 2)}
    if "plan" in parts:
        results["plan"] = {}
        for label, (store_db, who) in dbs.items():
            planned = json.loads(run(env, "plan", "--as", who, "--db", store_db, "--max-steps", args.steps, "--json"))
            folder = out / ("plan-" + "".join(c if c.isalnum() else "-" for c in label))
            if not (folder / "metrics.json").is_file():
                subprocess.run(["rm", "-rf", str(folder)])
                run(env, "train", "voice", "--as", who, "--db", store_db, "--max-steps", args.steps, "--eval-every", 1000,
                    "--out", folder, "-q")
            from likeme.training.plan import measured

            got = measured(folder)
            e = planned["estimate"]
            results["plan"][label] = {"examples": planned["examples"], "mean_tokens": round(planned["mean_tokens"], 1),
                                      "padded_tokens_per_step": e["padded_tokens_per_step"],
                                      "step_s": [round(e["step_seconds"], 2), round(got["step_seconds"], 2)],
                                      "peak_gib": [round(e["peak_bytes"] / 1024 ** 3, 2), round(got["peak_bytes"] / 1024 ** 3, 2)],
                                      "planned_total_s": round(e["total_seconds"]), "matmul_gflops": round(
                                          planned["machine"]["matmul_flops"] / 1e9, 1)}
    results_file.write_text(json.dumps(results, indent=2))

    if "precision" in results:
        print("| --precision | chosen | tokens/s (real) | vs fp32 | held-out loss | vs fp32 |\n| --- | --- | ---: | ---: | ---: | ---: |")
        base = results["precision"]["fp32"]
        for p, f in results["precision"].items():
            print(f"| {p} | {(f['precision'] or {}).get('name')} | {f['tokens_per_s']:.0f} | "
                  f"{f['tokens_per_s'] / base['tokens_per_s']:.2f}x | {f['heldout_loss']:.4f} | "
                  f"{100 * (f['heldout_loss'] / base['heldout_loss'] - 1):+.2f}% |")
    if "processes" in results:
        print("\n| run | tokens/s (real) | last training loss | held-out loss |\n| --- | ---: | ---: | ---: |")
        for label, f in results["processes"].items():
            print(f"| {label} | {f['tokens_per_s']:.0f} | {f['last_loss']:.4f} | {f['heldout_loss']:.4f} |")
    if "plan" in results:
        print("\n| data | examples | tokens/example | s/step planned | measured | peak GiB planned | measured |\n"
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, r in results["plan"].items():
            print(f"| {label} | {r['examples']} | {r['mean_tokens']} | {r['step_s'][0]} | {r['step_s'][1]} | "
                  f"{r['peak_gib'][0]} | {r['peak_gib'][1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
