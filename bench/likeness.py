"""Does it sound like the person? Judged likeness of base, SFT, SFT + DPO and SFT best-of-4, with judges
trained on data the voice never saw, and the CPU time of every step.

    .venv/bin/pip install --no-deps chatterbot-corpus==1.3.3
    .venv/bin/python bench/likeness.py                      # ~1.5 h on 2 CPU cores; steps done are kept
    .venv/bin/python bench/likeness.py --work DIR --samples 40 --voice-minutes 10

Data (examples/chatterbot_chat.py; NAME Robin): the voice trains on `WhatsApp Chat with Robin.txt`; the
export never trained on, `... (later).txt`, is cut in two at a message boundary: its first half (A)
trains the judges, its second half (B) is where every figure is measured, so neither the voice nor a
judge has seen B.

Steps (each a `likeme` command; timed):
  1. voice    likeme train voice --as Robin --max-minutes M                 (SFT, the defaults)
  2. judges   likeme train embedder --as Robin (A); likeme train classifier --label-by author (A);
              likeme pairs --from SFT --db A (chosen: Robin's real replies in A) + likeme train reward
  3. dpo      likeme pairs --from SFT --judge EMBEDDER --per-context 4 (the voice's own training
              sessions; chosen the judge's favourite of 4 written replies, rejected its least favourite)
              + likeme train prefer
  4. write    for K of Robin's replies in B: base, SFT and SFT + DPO each write a reply; SFT also
              writes 4 and the embedder judge picks one (best-of-4)
  5. judge    every judge scores every reply: mean score, ROC-AUC real vs written, distinct-2, length,
              and each judge's own AUC at telling Robin's turns in B from the others' (in their contexts)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIKEME = str(Path(sys.executable).parent / "likeme")
NAME = "Robin"


def split_export(path: Path, a: Path, b: Path) -> None:
    """Cut a WhatsApp export in two at the message header nearest its middle line."""
    lines = path.read_text("utf-8").splitlines(keepends=True)
    mid = len(lines) // 2
    while mid < len(lines) and " - " not in lines[mid][:25]:
        mid += 1
    a.write_text("".join(lines[:mid]), "utf-8")
    b.write_text("".join(lines[mid:]), "utf-8")


class Steps:
    """Runs `likeme` commands once (a step whose output exists is skipped) and keeps their wall times."""

    def __init__(self, work: Path):
        self.work, self.times_file = work, work / "times.json"
        self.times = json.loads(self.times_file.read_text()) if self.times_file.is_file() else {}
        self.env = {**os.environ, "LIKEME_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

    def run(self, label: str, output: Path, *args) -> Path:
        if not output.exists():
            t = time.time()
            print(f"== {label}: likeme {' '.join(map(str, args))}", file=sys.stderr)
            subprocess.run([LIKEME, *map(str, args)], check=True, env=self.env)
            self.times[label] = round(time.time() - t, 1)
            self.times_file.write_text(json.dumps(self.times, indent=2))
        return output

    def timed(self, label: str, fn):
        t = time.time()
        out = fn()
        self.times[label] = round(time.time() - t, 1)
        self.times_file.write_text(json.dumps(self.times, indent=2))
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/likeme-likeness"))
    ap.add_argument("--voice-minutes", type=float, default=10.0)
    ap.add_argument("--samples", type=int, default=40, help="Robin's replies in B written again by each model")
    ap.add_argument("--dpo-pairs", type=int, default=128, help="contexts of the voice's training sessions for DPO pairs")
    ap.add_argument("--reward-pairs", type=int, default=96, help="contexts of A for the reward model's pairs")
    ap.add_argument("--dpo-lr", type=float, default=2.5e-4,
                    help="DPO's learning rate (1e-4 left the voice's replies as they were; 5e-4 with --dpo-others "
                         "cut them to half of Robin's length)")
    ap.add_argument("--dpo-others", action="store_true", help="DPO pairs also reject another person's reply")
    ap.add_argument("--dpo-judge", choices=["none", "embedder", "classifier"], default="embedder",
                    help="DPO pairs ranked by this judge: chosen its favourite of --dpo-per-context replies the SFT "
                         "voice writes, rejected its least favourite (none: chosen Robin's real reply)")
    ap.add_argument("--dpo-per-context", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    steps = Steps(work)
    chats = work / "chats"
    if not chats.is_dir():
        subprocess.run([sys.executable, str(ROOT / "examples" / "chatterbot_chat.py"), str(chats)], check=True)
        split_export(chats / "WhatsApp Chat with Robin (later).txt", chats / "WhatsApp Chat with Robin (A).txt",
                     chats / "WhatsApp Chat with Robin (B).txt")
    main_db, a_db = work / "main.db", work / "a.db"
    steps.run("ingest", main_db, "ingest", chats / "WhatsApp Chat with Robin.txt", "--db", main_db)
    steps.run("ingest A", a_db, "ingest", chats / "WhatsApp Chat with Robin (A).txt", "--db", a_db)
    runs = work / "runs"

    # 1-3: the voice, the judges, the preference-tuned voice
    sft = steps.run("1 voice (SFT)", runs / "sft" / "metrics.json", "train", "voice", "--as", NAME, "--db", main_db,
                    "--max-minutes", args.voice_minutes, "--out", runs / "sft", "-q").parent
    emb = steps.run("2 judge: embedder", runs / "judge-embedder" / "metrics.json", "train", "embedder", "--as", NAME,
                    "--db", a_db, "--out", runs / "judge-embedder", "-q").parent
    clf = steps.run("2 judge: author classifier", runs / "judge-classifier" / "metrics.json", "train", "classifier",
                    "--label-by", "author", "--db", a_db, "--out", runs / "judge-classifier", "-q").parent
    reward_pairs = steps.run("2 judge: reward pairs (A)", work / "pairs-A.jsonl", "pairs", "--from", sft, "--db", a_db,
                             "--out", work / "pairs-A.jsonl", "--max-contexts", args.reward_pairs, "--others",
                             "--max-new-tokens", args.max_new_tokens)
    rm = steps.run("2 judge: reward model", runs / "judge-reward" / "metrics.json", "train", "reward", "--pairs",
                   reward_pairs, "--max-length", 384, "--epochs", 2, "--out", runs / "judge-reward", "-q").parent
    ranked = ["--judge", {"embedder": emb, "classifier": clf}[args.dpo_judge], "--per-context",
              args.dpo_per_context] if args.dpo_judge != "none" else []
    dpo_pairs = steps.run("3 DPO pairs", work / "pairs-sft.jsonl", "pairs", "--from", sft, "--out",
                          work / "pairs-sft.jsonl", "--max-contexts", args.dpo_pairs, *ranked,
                          *(["--others"] if args.dpo_others else []), "--max-new-tokens", args.max_new_tokens)
    dpo = steps.run("3 DPO", runs / "dpo" / "metrics.json", "train", "prefer", "--from", sft, "--pairs", dpo_pairs,
                    "--max-length", 384, "--batch-size", 4, "--grad-accum", 1, "--lr", args.dpo_lr, "--eval-every", 10,
                    "--out", runs / "dpo", "-q").parent

    # 4-5: write replies to B's contexts, judge them
    os.environ.update(steps.env)
    from likeme.check.evaluate import reply_figures
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.use import generate
    from likeme.use.judge import load_judge

    with Store(work / "b.db") as store:
        if not store.sources():
            store.ingest_path(chats / "WhatsApp Chat with Robin (B).txt")
        sessions = examples.reply_sessions(store, NAME, heldout=0.0)[0]
        picked = examples.even_sample(examples.replies(sessions, NAME, 8), args.samples)
        texts, is_name, around = examples.turns_in_context(sessions, NAME, 8)
    contexts, real = [r.context for r in picked], [r.reply.text for r in picked]
    written_file = work / "written.json"
    written = json.loads(written_file.read_text()) if written_file.is_file() else {}
    judges = {"embedder": load_judge(emb, NAME), "classifier": load_judge(clf, NAME), "reward": load_judge(rm, NAME)}
    for label, model in (("base", "smollm2-135m"), ("SFT", sft), ("SFT + DPO", dpo), ("SFT best-of-4", sft)):
        if label in written:
            continue
        voice = generate.load(model, name=NAME, partner="Sam")
        kw = {"best_of": 4, "judge": judges["embedder"]} if "best-of" in label else {}
        written[label] = steps.timed(f"4 write: {label}", lambda: [
            {"text": str(w), "ended": w.finish == "stop"} for w in
            (voice.reply(c, seed=i, max_new_tokens=args.max_new_tokens, **kw) for i, c in enumerate(contexts))])
        written_file.write_text(json.dumps(written, indent=1, ensure_ascii=False))
    results = {"samples": len(picked), "times_s": steps.times, "judges": {}}
    for jname, judge in judges.items():
        strength = judge.strength(texts, is_name, around)
        real_scores = judge.score(real, contexts)
        rows = {"real": reply_figures(real, real_scores, None, None, "")}
        for label, got in written.items():
            replies = [g["text"] for g in got]
            rows[label] = reply_figures(replies, judge.score(replies, contexts), real_scores,
                                         [g["ended"] for g in got], "")
        results["judges"][jname] = {"strength_auc": round(strength, 4), "figures": rows}
    for name, run in (("judge-reward", rm), ("dpo", dpo), ("sft", sft), ("judge-embedder", emb), ("judge-classifier", clf)):
        results[name] = json.loads((Path(run) / "metrics.json").read_text())
    (work / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
