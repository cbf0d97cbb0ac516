"""A GPT from scratch on tinyshakespeare: likeme's pretrain recipe against a bare PyTorch loop, then BPE.

    .venv/bin/python bench/pretrain.py                       # nanoGPT's CPU baby GPT, 2,000 steps
    .venv/bin/python bench/pretrain.py --steps 200 --skip-bpe   # a quick look

nanoGPT's CPU configuration (README, "baby GPT" on a MacBook): character level, 4 layers, 4 heads, 128
wide, block 64, batch 12, 2,000 steps, lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4,
AdamW (0.9, 0.99) with weight decay 0.1, clipping at 1.0, no dropout; the first 90% of the text to
train on, the rest to validate. Published validation loss: 1.88.

Rows, in one process: `likeme train pretrain` (the recipe through its library call, run folder and
checkpoints included) and a bare loop over the same model, blocks, optimizer, schedule and evaluations
(every 250 steps: 240 validation blocks and a 64-token sample). tokens/s counts the training steps'
tokens over the training wall time, evaluations included in both. Then the recipe again with
byte-level BPE at 2k and 8k vocabularies (same model, block 64 tokens): validation loss per character
(nats per token / characters per token) compares the tokenizers fairly.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"


def recipe_run(tok_dir: Path, out: Path, steps: int, block: int) -> dict:
    from likeme.recipes.pretrain import PretrainConfig, train_pretrain

    cfg = PretrainConfig(data=[str(TEXT)], tokenizer=str(tok_dir), block_size=block, max_steps=steps, out=str(out))
    run = train_pretrain(cfg, progress=False)
    m = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    m["samples"] = [r["samples"][0] for r in rows if r.get("samples")]
    m["tokens_per_s"] = m["train_tokens"] / m["seconds"]
    return m


def bare_loop(tok_dir: Path, steps: int, block: int) -> dict:
    """The same model and work as the recipe, in a plain loop (nanoGPT's train.py without its extras)."""
    import torch

    from likeme import models
    from likeme.check.evaluate import perplexity
    from likeme.data.text import blocks, token_stream
    from likeme.recipes.pretrain import PretrainConfig, build_model

    cfg = PretrainConfig(block_size=block, max_steps=steps)
    torch.manual_seed(0)
    tok = models.load_tokenizer(str(tok_dir))
    stream = token_stream([tok(TEXT.read_text(), add_special_tokens=False, verbose=False)["input_ids"]],
                                   tok.eos_token_id)
    cut = int(len(stream) * 0.9)
    train = torch.tensor(stream[:cut][: cut // block * block]).view(-1, block)  # (N, T)
    heldout = blocks(stream[cut:], block)
    evals = heldout[:: max(1, -(-len(heldout) // cfg.eval_max))]
    model = build_model(len(tok), cfg, tok).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr or 1e-3, betas=(0.9, 0.99), fused=True)
    warm = min(cfg.warmup_steps, steps // 10)

    def lr_at(step: int) -> float:  # linear warm-up, cosine to a tenth (the recipe's cosine_with_min_lr)
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    order = torch.randperm(len(train))
    t0 = time.perf_counter()
    for step in range(steps):
        i = step * cfg.batch_size % len(train)
        if i + cfg.batch_size > len(train):
            order, i = torch.randperm(len(train)), 0
        x = train[order[i: i + cfg.batch_size]]  # (B, T)
        for g in opt.param_groups:
            g["lr"] = (cfg.lr or 1e-3) * lr_at(step)
        loss = model(input_ids=x, labels=x, use_cache=False).loss  # no KV cache in training, as the Trainer
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
            model.eval()
            perplexity(model, evals, tok.pad_token_id, cfg.batch_size)
            with torch.no_grad():
                start = torch.tensor([[tok.eos_token_id]])
                model.generate(start, attention_mask=torch.ones_like(start), max_new_tokens=cfg.sample_tokens,
                               do_sample=True, temperature=0.8, top_k=200, pad_token_id=tok.eos_token_id)
            model.train()
    seconds = time.perf_counter() - t0
    val = math.log(perplexity(model.eval(), heldout, tok.pad_token_id, cfg.batch_size))
    return {"val_loss": round(val, 4), "seconds": round(seconds, 1), "tokens_per_s": steps * cfg.batch_size * block / seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--skip-bpe", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("/tmp/pretrain-bench.json"))
    args = ap.parse_args(argv)
    if not TEXT.exists():
        sys.exit(f"{TEXT} is absent: this benchmark reads ../shared/data")
    import torch

    from likeme.recipes.tokenizer import build_tokenizer

    text = TEXT.read_text()
    train_text = text[: int(len(text) * 0.9)]  # tokenizers learn from the training part only
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kinds = [("char", "char", 0)] + ([] if args.skip_bpe else [("bpe-2k", "bpe", 2048), ("bpe-8k", "bpe", 8192)])
        for label, kind, size in kinds:
            build_tokenizer([train_text], kind, size or 256).save_pretrained(tmp / label)
        rows["likeme train pretrain, char"] = recipe_run(tmp / "char", tmp / "run-char", args.steps, args.block)
        print("likeme char:", rows["likeme train pretrain, char"], file=sys.stderr)
        rows["bare PyTorch loop, char"] = bare_loop(tmp / "char", args.steps, args.block)
        print("bare char:", rows["bare PyTorch loop, char"], file=sys.stderr)
        for label, _, _ in kinds[1:]:
            rows[f"likeme train pretrain, {label}"] = recipe_run(tmp / label, tmp / f"run-{label}", args.steps, args.block)
            print(label, rows[f"likeme train pretrain, {label}"], file=sys.stderr)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
               "threads": torch.get_num_threads()}
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    bare = rows["bare PyTorch loop, char"]["tokens_per_s"]
    print(f"{machine}\n\n| run | val loss / token | val loss / char | chars / token | wall (s) | tokens/s | vs bare |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, r in rows.items():
        print(f"| {label} | {r['val_loss']:.4f} | {r.get('val_loss_per_char', r['val_loss']):.4f} | "
              f"{r.get('chars_per_token', 1.0):.2f} | {r['seconds']:.0f} | {r['tokens_per_s']:,.0f} | "
              f"{r['tokens_per_s'] / bare:.2f}x |")
    for label, r in rows.items():
        if r.get("samples"):
            print(f"\n{label}, last sample:\n{r['samples'][-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
