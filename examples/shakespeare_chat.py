"""Write tinyshakespeare as a chat export that likeme reads: each speech a message, its speaker the author.

    python examples/shakespeare_chat.py ../shared/data/text/tinyshakespeare/input.txt DIR

The play text (speaker names on their own lines, a blank line between speeches) becomes likeme's plain
transcript format (`Name: message` per line, a blank line between conversations): every 40 speeches are a
conversation, so a voice is learnt from sessions of multi-speaker dialogue in time order, with the later
part of the text held out. The last 10% of the speeches go to a second file that is never trained on.
Prints the speakers with the most speeches.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

PER_CONVERSATION = 40


def speeches(text: str) -> list[tuple[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.strip().splitlines()
        if len(lines) >= 2 and lines[0].endswith(":"):
            out.append((lines[0][:-1].strip().title(), " ".join(line.strip() for line in lines[1:])))
    return out


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    chunks = ["\n".join(f"{who}: {text}" for who, text in rows[i: i + PER_CONVERSATION])
              for i in range(0, len(rows), PER_CONVERSATION)]
    path.write_text("\n\n".join(chunks) + "\n", "utf-8")


if __name__ == "__main__":
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rows = speeches(source.read_text("utf-8"))
    cut = len(rows) * 9 // 10
    write(out / "shakespeare.txt", rows[:cut])
    write(out / "shakespeare (later).txt", rows[cut:])
    print(f"{len(rows)} speeches, {cut} in {out / 'shakespeare.txt'}, {len(rows) - cut} in the later file")
    for who, n in Counter(w for w, _ in rows).most_common(6):
        print(f"  {who}: {n}")
