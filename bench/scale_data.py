"""How fast a voice's dataset is built: the reference path (`persona_example` per reply) against the
assembled one (`persona_dataset`, cold, then read from its cache), with the bundled SmolLM2 tokenizer.

    python bench/scale_data.py --messages 20000

Writes a synthetic WhatsApp export (`bench/ingest.py`'s `make_export`), ingests it into a temporary store,
and builds the most active author's dataset. The reference path is timed on a sample of replies only
(it makes ~16 examples/s); prints a markdown table. The export has
messages minutes apart, so it is one long session: `heldout=0` (nothing to hold out).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import make_export  # noqa: E402

from likeme import models  # noqa: E402
from likeme.data.examples import persona_dataset, persona_example, replies, reply_sessions  # noqa: E402
from likeme.data.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000, help="messages in the synthetic export")
    ap.add_argument("--sample", type=int, default=300, help="replies the reference path is timed on")
    ap.add_argument("--model", default="smollm2-135m", help="whose tokenizer")
    args = ap.parse_args()

    tok = models.load_tokenizer(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "WhatsApp Chat with Friends.txt"
        export.write_text(make_export(args.messages), "utf-8")
        store = Store(Path(tmp) / "bench.db")
        store.ingest_path(export)
        name = store.people()[0].author

        train_s, _, _ = reply_sessions(store, name, heldout=0)
        sample = replies(train_s, name)[: args.sample]
        t = time.perf_counter()
        for r in sample:
            persona_example(tok, r.context, r.reply, name, prefix_names=r.prefix_names)
        ref_rate = len(sample) / (time.perf_counter() - t)

        t = time.perf_counter()
        data = persona_dataset(store, name, tok, heldout=0, progress=False)
        cold = time.perf_counter() - t
        n = len(data.train) + len(data.heldout)
        t = time.perf_counter()
        again = persona_dataset(store, name, tok, heldout=0, progress=False)
        warm = time.perf_counter() - t
        assert again.train == data.train and again.heldout == data.heldout

        want = [e for r in sample[:20] if (e := persona_example(tok, r.context, r.reply, name, prefix_names=r.prefix_names))]
        assert data.train[: len(want)] == want  # the dataset's first examples are the reference's

    print(f"{args.messages:,} messages, {name}'s replies, tokenizer {args.model}\n")
    print("| examples | reference (examples/s) | fast, cold (examples/s) | fast, cold (s) | cached second call (s) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(f"| {n:,} | {ref_rate:,.1f} (first {len(sample)}) | {n / cold:,.0f} | {cold:.1f} | {warm:.2f} |")


if __name__ == "__main__":
    main()
