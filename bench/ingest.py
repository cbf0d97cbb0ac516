"""How fast likeme reads a WhatsApp export, next to whatstk and chat-miner.

    .venv/bin/pip install whatstk chat-miner        # the `bench` extra; only for this script
    .venv/bin/python bench/ingest.py                # 200,000 messages
    .venv/bin/python bench/ingest.py --messages 50000 --repeat 5

Writes a synthetic Android export (`dd/mm/yyyy, HH:MM - Name: text`: several authors, multi-line
messages, "<Media omitted>", deleted messages, group notices), parses it with each tool and prints
a markdown table. Each tool's time is the best of `--repeat` runs (1 run for the slow ones with
`--slow-once`; the "runs" column says which) and includes reading the file, as each tool's public
API does. "messages parsed" is what each tool returns: likeme keeps system notices (kind "system"),
the others drop them, so each rate is computed from the tool's own count.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # chat-miner draws a progress bar per message otherwise

AUTHORS = ["Ana Souza", "Bo", "Chidi Okafor", "+44 7700 900123", "Dana 🌻", "Eli"]
WORDS = (
    "ok yes no maybe tomorrow tonight lunch dinner coffee train late sorry thanks great see you there "
    "haha lol really what when where why how meeting call later home work done send photo link movie "
    "weekend birthday party bring cake music game win lost cool nice love it sure fine :) 👍 😂"
).split()


def make_export(n: int, seed: int = 0, per_evening: int | None = None) -> str:
    """A synthetic Android export with `n` message headers (the text, not a file).

    About 5% of messages span several lines, 5% are "<Media omitted>", 1% "This message was
    deleted", and a group notice (no author) every ~500 messages. Messages are 5 s to 10 min apart:
    one long session, unless `per_evening` starts a new day after that many messages on average
    (a chat of many sessions, as a year of evenings is)."""
    rng = random.Random(seed)
    t = datetime(2019, 1, 1, 8, 0)
    lines = [f"{t:%d/%m/%Y, %H:%M} - Messages and calls are end-to-end encrypted. No one outside of "
             "this chat, not even WhatsApp, can read or listen to them. Tap to learn more."]
    for i in range(1, n):
        t += timedelta(seconds=rng.randint(5, 600))
        if per_evening and rng.random() < 1 / per_evening:
            t += timedelta(hours=20)  # the next evening: a new session
        stamp = f"{t:%d/%m/%Y, %H:%M} - "
        r = rng.random()
        if r < 0.002:
            lines.append(stamp + f"{rng.choice(AUTHORS)} added {rng.choice(AUTHORS)}")
            continue
        author = rng.choice(AUTHORS)
        if r < 0.05:
            body = "<Media omitted>"
        elif r < 0.06:
            body = "This message was deleted"
        elif r < 0.11:
            body = "\n".join(" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(rng.randint(2, 4)))
        else:
            body = " ".join(rng.choices(WORDS, k=rng.randint(1, 15)))
            if r < 0.2:
                body = body.capitalize() + ": " + rng.choice(WORDS)  # bodies with ": " in them
        lines.append(stamp + author + ": " + body)
    return "\n".join(lines) + "\n"


def run_likeme(path: Path) -> int:
    import likeme.data.ingest
    return len(list(likeme.data.ingest.parse(path)))


def run_whatstk(path: Path) -> int:
    from whatstk import WhatsAppChat
    chat = WhatsAppChat.from_source(filepath=str(path), max_size=None)
    return len(chat.df)


def run_chatminer(path: Path) -> int:
    from chatminer.chatparsers import WhatsAppParser
    logging.getLogger("chatminer.chatparsers").setLevel(logging.WARNING)  # it logs every system line
    parser = WhatsAppParser(str(path))
    parser.parse_file()
    return len(parser.parsed_messages.get_df())


def version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as v
    try:
        return v(dist)
    except PackageNotFoundError:
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="messages in the synthetic export")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is reported")
    ap.add_argument("--slow-once", action="store_true", help="run whatstk and chat-miner once only")
    args = ap.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)  # chat-miner configures INFO logging on import

    with tempfile.TemporaryDirectory(prefix="likeme-bench-") as tmp:
        path = Path(tmp) / "WhatsApp Chat with Bench.txt"
        path.write_text(make_export(args.messages), encoding="utf-8")
        size_mb = path.stat().st_size / 2**20
        print(f"Synthetic Android export: {args.messages:,} messages, {size_mb:.1f} MiB\n")

        tools = [
            ("likeme", "likeme", run_likeme, args.repeat),
            ("whatstk", "whatstk", run_whatstk, 1 if args.slow_once else args.repeat),
            ("chat-miner", "chat-miner", run_chatminer, 1 if args.slow_once else args.repeat),
        ]
        # Rounds go through every tool in turn, so a burst of load on a shared machine hits all of
        # them alike instead of whichever tool happened to be running.
        best: dict[str, tuple[float, int]] = {}
        for round_ in range(max(r for *_, r in tools)):
            for name, dist, fn, repeat in tools:
                if round_ >= repeat or best.get(name) == (None, None):
                    continue
                try:
                    t0 = time.perf_counter()
                    count = fn(path)
                    seconds = time.perf_counter() - t0
                except ImportError as e:
                    print(f"{name}: not installed ({e}); skipped. Install it with .venv/bin/pip install {dist}")
                    best[name] = (None, None)
                    continue
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, count)
        rows = []
        for name, dist, fn, repeat in tools:
            seconds, count = best.get(name, (None, None))
            if seconds is not None:
                rows.append((name, version(dist), seconds, count, f"best of {repeat}" if repeat > 1 else "1 run"))

    print("| tool | version | seconds | messages parsed | messages/s | runs |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for name, ver, seconds, count, runs in rows:
        print(f"| {name} | {ver} | {seconds:.3f} | {count:,} | {count / seconds:,.0f} | {runs} |")
    ours = next((r for r in rows if r[0] == "likeme"), None)
    others = [r for r in rows if r[0] != "likeme"]
    if ours and others:
        fastest = max(others, key=lambda r: r[3] / r[2])
        speedup = (ours[3] / ours[2]) / (fastest[3] / fastest[2])
        print(f"\nlikeme speed-up over the faster of the others ({fastest[0]}): {speedup:.1f}x (messages/s)")
    print(f"\nMachine: {cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}; "
          f"{datetime.now():%Y-%m-%d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
