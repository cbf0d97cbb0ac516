"""Person, not genre: is a voice more like its person than like everyone else in the chat?

    python bench/person.py --richard3 ../shared/data/text/tinyshakespeare/input.txt --steps 30
    python bench/person.py --chat train.txt --test later.txt --as Robin --people Robin,Sam,Alex --steps 30

--richard3 writes Richard III from tinyshakespeare as a chat (every 40 speeches a conversation; "King Richard
III" is Gloucester after his crowning): its last ten conversations (the last scenes) go to a test file that
is never ingested, the rest to the training file; NAME is Gloucester, the three people Gloucester, Queen
Elizabeth and Buckingham, who speak in the same scenes in one author's register. For each voice, trained
for the same steps with likeme's defaults otherwise (each in its own process, one at a time), `likeme
eval RUN --data TEST --as NAME --people ...` gives on the test turns:
- NAME's own perplexity drop from the base, the others' drop, specificity (points; own minus others);
- attribution accuracy of the three people's turns (the slot that makes a turn most likely), run and base;
- the likelihood-ratio judge's AUC at telling NAME's single turns from others'.
Voices: `me` (--learn-from me: NAME's replies alone, the default before the person settings), `everyone`
(--learn-from everyone without the contrast), `default` (likeme train voice as it is: everyone, the person
contrast and a register blend), any given with
--variant LABEL="FLAGS" (a LABEL "A+B" where A is a voice above is trained from A's run, `--base`, its
time counted as A's plus its own), and with --contrast-steps K `everyone+orpo`: the everyone voice tuned K more steps
with ORPO on pairs of NAME's real reply (chosen) against another person's in the same context (rejected;
`likeme pairs --others --per-context 0`), its time counted as the everyone voice's plus its own; --guided
LABEL:A adds LABEL's voice scored with person guidance A (`likeme eval --guidance`). With
--judges, an embedder of NAME and an author classifier are trained on the same store and their AUC on the
same test turns printed beside. Prints one markdown table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PER_CONVERSATION = 40


def richard3(text: str, out: Path) -> tuple[Path, Path]:
    """Richard III from tinyshakespeare as (training transcript, test transcript): the last 10 conversations tested."""
    blocks = [b.strip().splitlines() for b in text.strip().split("\n\n")]
    rows = [(b[0][:-1].strip().title(), " ".join(x.strip() for x in b[1:])) for b in blocks
            if len(b) >= 2 and b[0].endswith(":")]
    names = [r[0] for r in rows]
    first = names.index("Gloucester", names.index("Aufidius"))  # Coriolanus ends, Richard III begins
    last = max(i for i, n in enumerate(names) if n == "Richmond")
    play = [("Gloucester" if who == "King Richard Iii" else who, said) for who, said in rows[first: last + 1]]
    chunks = [play[i: i + PER_CONVERSATION] for i in range(0, len(play), PER_CONVERSATION)]

    def write(path: Path, part: list) -> Path:
        path.write_text("\n\n".join("\n".join(f"{w}: {s}" for w, s in c) for c in part) + "\n", "utf-8")
        return path
    return write(out / "richard3.txt", chunks[:-10]), write(out / "richard3 (last scenes).txt", chunks[-10:])


def likeme(*args, env) -> str:
    p = subprocess.run([sys.executable, "-m", "likeme", *map(str, args)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"likeme {' '.join(map(str, args[:3]))} failed: {p.stderr[-1500:]}")
    return p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--richard3", metavar="TINYSHAKESPEARE", help="build the Richard III chat from input.txt")
    ap.add_argument("--chat", help="a training export (with --test)")
    ap.add_argument("--test", help="an export of later chats, never trained on")
    ap.add_argument("--as", dest="name", default="Gloucester")
    ap.add_argument("--people", default="Gloucester,Queen Elizabeth,Buckingham")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=None, help="train each voice this many minutes (not --steps)")
    ap.add_argument("--max-turns", type=int, default=200, help="test turns scored per person at most")
    ap.add_argument("--variant", action="append", default=[], metavar='LABEL="FLAGS"', help="another voice to train")
    ap.add_argument("--only", default=None, help="comma-separated labels to run")
    ap.add_argument("--guided", action="append", default=[], metavar="LABEL:A",
                    help="also a row for LABEL's voice scored and writing with person guidance A (likeme eval --guidance)")
    ap.add_argument("--contrast-steps", type=int, default=0, help="ORPO steps on others' replies after `everyone`")
    ap.add_argument("--contrast-flags", default="--loss orpo", help="flags of `likeme train prefer` for it")
    ap.add_argument("--judges", action="store_true", help="also an embedder and an author classifier's AUC")
    ap.add_argument("--samples", type=int, default=20, help="with --judges: replies each voice writes to be judged")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = ap.parse_args()

    variants = {"me": "--learn-from me", "everyone": "--learn-from everyone --contrast 0 --own-weight 1", "default": ""}
    variants.update(dict(v.split("=", 1) for v in args.variant))
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        args.root = root
        env = {**os.environ, "PYTHONPATH": str(SRC), "LIKEME_HOME": str(root / "home")}
        if args.richard3:
            train, test = richard3(Path(args.richard3).read_text("utf-8"), root)
        else:
            train, test = Path(args.chat), Path(args.test)
        db = root / "store.db"
        if not db.exists():
            likeme("ingest", train, "--db", db, env=env)
        judges = judge_aucs(db, test, args, env, root) if args.judges else {}
        rows = {}
        for label, flags in variants.items():
            out = root / f"run-{label}"
            first = label.split("+")[0] if "+" in label and label.split("+")[0] in rows else None
            t = time.perf_counter()
            if not (out / "metrics.json").exists():
                budget = ["--max-minutes", args.minutes] if args.minutes else ["--max-steps", args.steps]
                likeme("train", "voice", "--as", args.name, "--db", db, *budget, "--out", out,
                       *(["--base", root / f"run-{first}"] if first else []), *flags.split(), env=env)
            train_s = time.perf_counter() - t
            rows[label] = evaluate(out, test, args, env, train_s)
            if first:  # tuned from another row's run: its time counts too
                rows[label]["seconds"] += rows[first]["seconds"]
        for item in args.guided:
            label, alpha = item.rsplit(":", 1)
            if label in rows:
                rows[f"{label}, guidance {alpha}"] = evaluate(root / f"run-{label}", test, args, env,
                                                              rows[label]["train_s"], ["--guidance", alpha])
                rows[f"{label}, guidance {alpha}"]["seconds"] = rows[label]["seconds"]
        if args.contrast_steps and "everyone" in rows:
            src, out = root / "run-everyone", root / "run-everyone+orpo"
            t = time.perf_counter()
            if not (out / "metrics.json").exists():
                pairs = root / "pairs-others.jsonl"
                pairs.unlink(missing_ok=True)
                likeme("pairs", "--from", src, "--as", args.name, "--db", db, "--others", "--per-context", 0,
                       "--max-contexts", 0, "--out", pairs, env=env)
                likeme("train", "prefer", "--from", src, "--pairs", pairs, "--max-steps", args.contrast_steps,
                       "--out", out, *args.contrast_flags.split(), env=env)
            row = evaluate(out, test, args, env, time.perf_counter() - t)
            row["seconds"] += rows["everyone"]["seconds"]
            rows["everyone+orpo"] = row

    people = args.people.split(",")
    each = f"{args.minutes:g} minutes" if args.minutes else f"{args.steps} steps"
    print(f"\n{args.name}'s voice, {each} each; test: {Path(test).name}\n")
    head = ["figure"] + list(rows)
    print("| " + " | ".join(head) + " |\n|" + " --- |" * len(head))
    base = next(iter(rows.values()))
    lines = [("training seconds (steps' wall time)", lambda r: f"{r['seconds']:.0f}"),
             (f"{args.name}'s own perplexity drop", lambda r: f"{100 * r['own_drop']:.1f}%"),
             ("the others' drop (their turns in NAME's slot)", lambda r: f"{100 * r['others_drop']:.1f}%"),
             ("**specificity** (points)", lambda r: f"**{r['specificity']:+.1f}**")]
    lines += [(f"  drop on {p}'s turns", lambda r, p=p: f"{100 * r['by_person'][p]['drop']:.1f}%") for p in people
              if p in base["by_person"]]
    lines += [("attribution accuracy (chance 33%)", lambda r: f"{100 * r['attribution']['accuracy']:.1f}%"),
              ("  the base model's (control)", lambda r: f"{100 * r['attribution']['base_accuracy']:.1f}%"),
              ("likelihood-ratio judge AUC (gain in NAME's slot)", lambda r: f"{r['likelihood_auc']:.3f}"),
              ("likelihood-ratio judge AUC (gain beside the others' slots)",
               lambda r: f"{r['attribution']['judge_auc']:.3f}")]
    if all("judge_score" in r for r in rows.values()):
        lines += [("embedder of NAME's score of the replies it writes (base model's)",
                   lambda r: f"{r['judge_score']:.4f} ({r['judge_score_base']:.4f})")]
    for what, fmt in lines:
        print(f"| {what} | " + " | ".join(fmt(r) for r in rows.values()) + " |")
    for k, v in judges.items():
        print(f"\n{k}: AUC {v:.3f} on the same test turns")
    if rows and "judge_score_real" in base:
        print(f"\nthe embedder's score of {args.name}'s real replies: {base['judge_score_real']:.4f}")


def evaluate(run: Path, test: Path, args, env: dict, train_s: float, more: list = ()) -> dict:
    """`likeme eval --people` on the test turns (with `more` flags); with --judges also replies written by the
    voice and judged by the embedder of NAME (an independent judge: it never saw the voice)."""
    judged = ["--judge", args.root / "judge-embedder", "--samples", args.samples] if args.judges and args.samples else []
    flags = ["eval", run, "--data", test, "--as", args.name, "--people", args.people, "--max-replies", args.max_turns,
             *judged, *more, "--json"]
    kept = run / f"person-eval-{hashlib.sha256(repr(flags).encode()).hexdigest()[:12]}.json"  # a rerun reads it back
    if not kept.exists():
        kept.write_text(likeme(*flags, env=env))
    r = json.loads(kept.read_text())
    m = json.loads((run / "metrics.json").read_text())
    row = {**r, "train_s": train_s, "seconds": m.get("seconds", train_s), "steps": m.get("steps")}
    print(run.name, json.dumps(row), file=sys.stderr, flush=True)
    return row


def judge_aucs(db: Path, test: Path, args, env: dict, root: Path) -> dict:
    """The embedder of NAME's and the author classifier's AUC at telling NAME's test turns from others'."""
    out = {}
    emb, clf = root / "judge-embedder", root / "judge-classifier"
    if not (emb / "metrics.json").exists():
        likeme("train", "embedder", "--as", args.name, "--db", db, "--out", emb, env=env)
    if not (clf / "metrics.json").exists():
        likeme("train", "classifier", "--label-by", "author", "--db", db, "--out", clf, env=env)
    code = ("import json, sys\nfrom likeme.data.store import Store\nfrom likeme.data.examples import turns_in_context, "
            "reply_sessions\nfrom likeme.use.judge import load_judge\nname, people = sys.argv[3], sys.argv[4].split(',')\n"
            "s = Store(':memory:'); s.ingest_path(sys.argv[2])\nsessions, _, _ = reply_sessions(s, name, heldout=0.0)\n"
            "texts, labels, _ = turns_in_context(sessions, name)\n"
            "print(json.dumps(load_judge(sys.argv[1], name).strength(texts, labels)))\n")
    for label, run in (("embedder of NAME", emb), ("author classifier", clf)):
        p = subprocess.run([sys.executable, "-c", code, str(run), str(test), args.name, args.people],
                           capture_output=True, text=True, env=env)
        if p.returncode == 0:
            out[label] = json.loads(p.stdout.strip().splitlines()[-1])
        else:
            print(f"{label}: {p.stderr[-500:]}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
