"""Write a group chat in WhatsApp's export format from the dialogue that `chatterbot-corpus` ships.

    python examples/chatterbot_chat.py OUT_DIR          # -> OUT_DIR/WhatsApp Chat with Robin.txt
                                                        #    OUT_DIR/WhatsApp Chat with Robin (later).txt

Each corpus conversation becomes one session of a group chat, a day apart. Robin gives the
answers (the corpus' second, fourth, ... lines) and, like many people, types in lower case without
a final full stop; Sam and Kai take turns asking. One conversation in five goes to a second export
("later") that training never sees, for `likeme eval`.
"""
from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from pathlib import Path


def corpus_conversations() -> list[list[str]]:
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("chatterbot-corpus is not installed: pip install --no-deps chatterbot-corpus")
    data = Path(list(spec.submodule_search_locations)[0]) / "data" / "english"
    out = []
    for path in sorted(data.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conv in doc.get("conversations") or []:
            lines = [re.sub(r"\s+", " ", str(x)).strip() for x in conv if str(x).strip()]
            if len(lines) >= 2:
                out.append(lines)
    return out


def robin(text: str) -> str:
    """Robin's habit: 'I am doing well, how about you?' -> 'i am doing well, how about you?'."""
    return text.lower().rstrip(".")


def export(conversations: list[list[str]], start: datetime) -> str:
    lines, t = [], start
    for i, conv in enumerate(conversations):
        asker = ("Sam", "Kai")[i % 2]
        for j, text in enumerate(conv):
            author, said = ("Robin", robin(text)) if j % 2 else (asker, text)
            lines.append(f"{t:%d/%m/%Y, %H:%M} - {author}: {said}")
            t += timedelta(minutes=1)
        t += timedelta(days=1)
    return "\n".join(lines) + "\n"


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    convs = corpus_conversations()
    train = [c for i, c in enumerate(convs) if i % 5]
    later = [c for i, c in enumerate(convs) if i % 5 == 0]
    (out / "WhatsApp Chat with Robin.txt").write_text(export(train, datetime(2023, 1, 1, 10)), "utf-8")
    (out / "WhatsApp Chat with Robin (later).txt").write_text(export(later, datetime(2024, 6, 1, 10)), "utf-8")
    n = sum(map(len, convs))
    print(f"{len(train)} + {len(later)} conversations, {n} lines, in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".demo/chats")
