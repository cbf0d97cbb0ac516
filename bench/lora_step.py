"""Where a LoRA training step's time goes on this machine: one voice micro-batch (rows of context with a
labelled reply at the end, the LM head on the labelled positions only, as `likeme train voice` runs it),
forward and backward through the bundled smollm2-135m with LoRA adapters on every linear layer, for each
precision and LoRA dropout asked for; with --profile, torch.profiler's busiest operators for each.

    .venv/bin/python bench/lora_step.py --precision fp32,bf16 --dropout 0.05,0 --profile

Seconds a micro-batch are the median of --repeat timed passes after one warm-up pass.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from likeme import models  # noqa: E402
from likeme.training import trainable  # noqa: E402


def one_pass(model, ids, keep, target):
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=keep)
    logp = torch.log_softmax(out.logits.float(), -1)
    loss = -logp.gather(-1, target.unsqueeze(-1)).mean()
    loss.backward()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32 and/or bf16 (autocast)")
    ap.add_argument("--dropout", default="0.05,0", help="comma-separated LoRA dropouts")
    ap.add_argument("--rows", type=int, default=4, help="rows in the micro-batch (2 turns x 2 slots: 4)")
    ap.add_argument("--tokens", type=int, default=450, help="tokens a row (eight turns of context: about 450)")
    ap.add_argument("--labelled", type=int, default=50, help="labelled tokens at the end of each row")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="print the 12 busiest operators of one more pass")
    args = ap.parse_args()
    torch.manual_seed(0)
    ids = torch.randint(0, 49_000, (args.rows, args.tokens))
    keep = torch.arange(args.tokens - args.labelled - 1, args.tokens - 1)  # position t predicts token t+1
    target = ids[:, keep + 1]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.rows} rows x {args.tokens} tokens, "
          f"{args.labelled} labelled; LoRA r {args.rank} on every linear layer")
    print("| precision | LoRA dropout | s / micro-batch |\n| --- | --- | ---: |")
    profiles = []
    for name in args.precision.split(","):
        for p in (float(x) for x in args.dropout.split(",")):
            model, _ = models.load_causal_lm("smollm2-135m")
            model = trainable.select(model, "lora", lora=trainable.Lora(r=args.rank, alpha=2 * args.rank, dropout=p))
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                one_pass(model, ids, keep, target)
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    one_pass(model, ids, keep, target)
                    times.append(time.perf_counter() - t)
                print(f"| {name} | {p:g} | {statistics.median(times):.2f} |", flush=True)
                if args.profile:
                    from torch.profiler import ProfilerActivity, profile

                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        one_pass(model, ids, keep, target)
                    profiles.append((name, p, prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)))
    for name, p, table in profiles:
        print(f"\n{name}, LoRA dropout {p:g}:\n{table}")


if __name__ == "__main__":
    main()
