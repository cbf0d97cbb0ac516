"""Tokens/s of `likeme train voice` against a bare PyTorch loop on the same model, batch and length.

    .venv/bin/python bench/train.py                       # CPU, LoRA, SmolLM2-135M shape, random weights
    .venv/bin/python bench/train.py --method full --steps 20
    python bench/train.py --steps 50 --batch-size 16 --block-size 512    # on a GPU: bf16, both sides

Both sides train the same random-weight model built from SmolLM2-135M's config (the bundled GGUF is
not needed, so this runs where `gguf` is not installed), on the same fixed-length blocks (transcript
format, every block exactly --block-size tokens, so no padding), with AdamW at the same learning
rate. likeme's figure comes from its own metrics.jsonl (tokens counted by the Trainer, time between
logs); the bare loop times forward + backward + optimizer step. The first --warmup steps of each
are left out. Target: likeme's overhead under 10% of the bare loop.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import torch

SMOLLM2_135M = dict(  # SmolLM2-135M's config.json, the fields that set the compute
    vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
    num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
    tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2,
)


def build_base(folder: Path, tokenizer) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_135M))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tokenizer_for_bench():
    """SmolLM2's tokenizer when the bundled cache is there, else the tests' tiny one (ids < 320
    index the same 49152-row embedding, so the compute is identical)."""
    try:
        from likeme.models import load_tokenizer
        return load_tokenizer("smollm2-135m")
    except Exception:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny import tiny_tokenizer
        return tiny_tokenizer()


def make_store(path: Path, n_sessions: int = 300):
    from likeme.data.ingest import Message
    from likeme.data.store import Store

    words = "ok yes no maybe tomorrow lunch coffee train late sorry thanks great see you there haha".split()
    msgs, t = [], datetime(2024, 1, 1, 9)
    for s in range(n_sessions):
        for i in range(12):
            who = ("Ana", "Sam", "Bo")[i % 3]
            text = " ".join(words[(s * 7 + i * 3 + k) % len(words)] for k in range(8 + i % 5))
            msgs.append(Message("bench", "group", who, t, text))
            t += timedelta(minutes=1)
        t += timedelta(days=1)
    store = Store(path)
    store.add_messages(msgs)
    store.close()


def bare_loop(base: Path, blocks: list[dict], args, device) -> float:
    from transformers import AutoModelForCausalLM

    from likeme.batching import collate

    model = AutoModelForCausalLM.from_pretrained(base).to(device)
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.0)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    tokens, elapsed = 0, 0.0
    for step in range(args.steps):
        batch = blocks[(step * args.batch_size) % len(blocks):][: args.batch_size]
        if len(batch) < args.batch_size:
            batch = blocks[: args.batch_size]
        b = {k: v.to(device) for k, v in collate(batch, 2).items()}
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with amp:
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            elapsed += time.perf_counter() - t
            tokens += int(b["attention_mask"].sum())
    return tokens / elapsed


def likeme_run(base: Path, db: Path, out: Path, args) -> float:
    from likeme.recipes.voice import VoiceConfig, train_voice

    cfg = VoiceConfig(name="Ana", db=str(db), base=str(base), format="transcript", loss_on="all",
                      trainable={"lora": "lora", "full": "all"}[args.method], lr=2e-4, batch_size=args.batch_size, block_size=args.block_size,
                      max_steps=args.steps, eval_every=10**9, heldout=0.05, out=str(out))
    train_voice(cfg, progress=False)
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r and r["step"] > args.warmup]
    # tokens_per_s is per logging interval (1 step); weight each by its tokens: total tokens / total time
    tokens = args.batch_size * args.block_size * len(rows)
    seconds = sum(args.batch_size * args.block_size / r["tokens_per_s"] for r in rows)
    return tokens / seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--block-size", type=int, default=256)
    ap.add_argument("--method", choices=["lora", "full"], default="lora")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = tokenizer_for_bench()
        base = build_base(tmp / "base", tok)
        make_store(tmp / "bench.db")
        from likeme.data.examples import transcript_dataset
        from likeme.data.store import Store
        with Store(tmp / "bench.db") as store:
            blocks = transcript_dataset(store, "Ana", tok, block_size=args.block_size, loss_on="all",
                                        heldout=0.05).train
        blocks = [b for b in blocks if len(b["input_ids"]) == args.block_size]
        ours = likeme_run(base, tmp / "bench.db", tmp / "run", args)
        bare = bare_loop(base, blocks, args, device)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else ""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    print(f"SmolLM2-135M shape (random weights), {args.method}, batch {args.batch_size} x {args.block_size} tokens, "
          f"{args.steps} steps ({args.warmup} warm-up left out), {device}{' bf16' if device == 'cuda' else ' fp32'}\n")
    print("| loop | tokens/s |\n| --- | ---: |")
    print(f"| bare PyTorch | {bare:,.0f} |\n| likeme train voice | {ours:,.0f} |")
    print(f"\nlikeme overhead: {100 * (bare / ours - 1):+.1f}% time per token")
    print(f"\nMachine: {gpu or cpu}, {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"Python {platform.python_version()}; {datetime.now():%Y-%m-%d}")


if __name__ == "__main__":
    main()
