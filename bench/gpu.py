"""Every GPU path of likeme in one run of at most --minutes: one markdown table for BENCHMARKS.md.

On a CUDA machine, from the repository root (no network needed past the package index):

    make install                              # with a CUDA build of torch: TORCH=..., see the Makefile
    .venv/bin/pip install bitsandbytes        # only for the 4-bit row (skipped, with this line, without it)
    .venv/bin/python bench/gpu.py --out /tmp/gpu-bench.md     # 8 minutes at most
    .venv/bin/python bench/gpu.py --dry-run   # anywhere, seconds: a tiny model on the CPU (what the tests run)

Parts, each in its own process with its share of the time, so that one that fails or runs over is one row
("failed: ..." / "stopped: ...") and the others go on:

1. `likeme train voice --precision bf16` against a stock transformers `Trainer` on the same random-weight
   model of SmolLM2-135M's shape (bench/train.py's), the same transcript blocks of --block-size tokens (the
   Trainer's without the split's one shorter last block, so with no padding), batch, learning rate and
   steps; full fine-tuning on both sides. tokens/s leaves out the first --warmup
   steps; MFU = 6 x parameters (embeddings included) x tokens/s / the GPU's dense bf16 peak (PEAK_BF16;
   "n/a" for a GPU not there); peak memory is torch.cuda.max_memory_allocated (likeme's from metrics.json).
2. `--quantize 4bit`: QLoRA, LoRA on an NF4 base (bitsandbytes).
3. `--processes 2 --strategy fsdp` when two GPUs are visible (tokens/s of both together).
4. Generation tokens/s per precision through likeme's own `generate.load` + `Voice.generate`
   (bench/generate.py's timing: greedy, best of --repeats after a warm-up): fp32, bf16, fp16, and int8
   (torch's dynamic quantization, CPU only).

--dry-run runs the same code paths on the CPU with a 2-layer model, 2 steps each, in fp32; the GPU-only
rows (bf16, 4-bit, FSDP) say "skipped: no CUDA". It also runs so on a machine without CUDA.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # bench/train.py and bench/generate.py: the model, store and timing they use

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, per GPU. First match in the
# device name wins, so the longer names come first ("a100" before "a10", "l40s" before "l4").
PEAK_BF16 = [("h200", 989e12), ("gh200", 989e12), ("h100 nvl", 835e12), ("h100 pcie", 756e12), ("h100", 989e12),
             ("a100", 312e12), ("a10g", 125e12), ("a10", 125e12), ("l40s", 362e12), ("l40", 181e12), ("l4", 121e12),
             ("rtx 4090", 165e12), ("rtx 3090", 71e12), ("a6000", 155e12)]
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,  # --dry-run's model
            num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
SHARES = {"train": 2, "stock": 2, "4bit": 1.5, "fsdp": 2, "generate": 1.5}  # of the time left when a part starts
MIN_SECONDS = 45  # a part with less than this left is skipped: loading alone takes most of it


def peak_flops(name: str) -> float | None:
    """Example: peak_flops("NVIDIA H100 80GB HBM3") -> 9.89e14; peak_flops("Tesla T4") -> None."""
    name = name.lower()
    return next((flops for key, flops in PEAK_BF16 if key in name), None)


# -- setup (this process) ------------------------------------------------------------------------------

def build(work: Path, args) -> dict:
    """A base model folder and a store of chats under `work`; returns what the parts need to know."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from train import SMOLLM2_135M, make_store, tokenizer_for_bench

    if args.dry_run:
        sys.path.insert(0, str(BENCH.parent / "tests"))
        from tiny import tiny_tokenizer
        tok = tiny_tokenizer()
        config = {**SMOLLM2_135M, **TINY, "vocab_size": len(tok)}
    else:
        tok = tokenizer_for_bench()
        config = SMOLLM2_135M
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.save_pretrained(work / "base")
    tok.save_pretrained(work / "base")
    make_store(work / "bench.db", n_sessions=40 if args.dry_run else 300)
    return {"params": sum(p.numel() for p in model.parameters())}


# -- the parts: each a command in its own process --------------------------------------------------------

def voice_command(work: Path, args, out: str, *extra: str) -> list[str]:
    """`likeme train voice` on the bench's store and base, transcript blocks of --block-size, no evaluation."""
    return [sys.executable, "-m", "likeme", "train", "voice", "--as", "Ana", "--db", str(work / "bench.db"),
            "--base", str(work / "base"), "--format", "transcript", "--loss-on", "all", "--lr", "2e-5",
            "--batch-size", str(args.batch_size), "--block-size", str(args.block_size), "--max-steps", str(args.steps),
            "--eval-every", "1000000", "--heldout", "0.05", "--score-max", "16", "--sample-replies", "0",
            "--out", str(work / out), "-q", *extra]


def voice_figures(run: Path, warmup: int) -> dict:
    """tokens/s (the steps after `warmup`, each logged interval weighted by its time) and peak memory."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("tokens_per_s")]
    rows = [r for r in rows if r["step"] > warmup] or rows
    figures = json.loads((run / "metrics.json").read_text())
    # every step trains batch x block tokens, so tokens / time is the harmonic mean of the per-step rates
    return {"tokens_s": len(rows) / sum(1 / r["tokens_per_s"] for r in rows), "peak": figures.get("peak_memory_bytes")}


def child_command(part: str, work: Path, args) -> list[str]:
    """This script again, running one part (`--part`) and printing its rows as `ROW {json}` lines."""
    return [sys.executable, __file__, "--part", part, "--work", str(work), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--block-size", str(args.block_size),
            "--tokens", str(args.tokens), "--repeats", str(args.repeats), *(["--dry-run"] if args.dry_run else [])]


def stock_trainer(args) -> None:
    """A stock transformers Trainer (its own defaults, its own collator) on likeme's blocks: the reference."""
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments,
                              default_data_collator)

    from likeme.data.examples import transcript_dataset
    from likeme.data.store import Store
    from likeme.runs import peak_memory

    work, cuda = Path(args.work), torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(work / "base")
    with Store(work / "bench.db") as store:
        blocks = transcript_dataset(store, "Ana", tok, block_size=args.block_size, loss_on="all", heldout=0.05).train
    blocks = [b for b in blocks if len(b["input_ids"]) == args.block_size]  # no padding: the collator stacks them

    class Clock(TrainerCallback):
        begin = end = None

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == args.warmup:  # the first step counted
                self.begin = synced()

        def on_step_end(self, a, state, control, **kw):
            self.end = synced()

    def synced() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    model = AutoModelForCausalLM.from_pretrained(work / "base")
    targs = TrainingArguments(output_dir=str(work / "stock"), per_device_train_batch_size=args.batch_size,
                              max_steps=args.steps, learning_rate=2e-5, lr_scheduler_type="cosine",
                              warmup_steps=max(1, args.steps // 20), weight_decay=0.0, bf16=cuda, use_cpu=not cuda,
                              logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
                              dataloader_num_workers=0)
    clock = Clock()
    Trainer(model=model, args=targs, train_dataset=blocks, data_collator=default_data_collator,
            callbacks=[clock]).train()
    tokens = args.batch_size * args.block_size * (args.steps - args.warmup)
    emit(tokens_s=tokens / (clock.end - clock.begin), peak=peak_memory())


def generation(args) -> None:
    """One row per precision: new tokens/s through likeme's load + generate, greedy, on the bench's base."""
    import torch

    from generate import likeme_voice
    from likeme.use import generate

    cuda = torch.cuda.is_available()
    for precision in ("fp32", "bf16", "fp16", "int8"):
        if precision == "int8" and cuda:
            emit(setting=f"likeme generate {precision}", seconds=None,
                 note="skipped: int8 is torch's CPU dynamic quantization")
            continue
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            voice = generate.load(Path(args.work) / "base", precision=precision)
            r = likeme_voice(voice, args.tokens, args.repeats)
            emit(setting=f"likeme generate {precision}", tokens_s=r["tokens_per_s"], seconds=time.perf_counter() - t,
                 peak=torch.cuda.max_memory_allocated() if cuda else None,
                 note=f"{r['tokens']} new tokens, batch 1, {voice.model.device}")
            del voice
        except Exception as e:  # one precision failing is one row
            emit(setting=f"likeme generate {precision}", seconds=None, note=f"failed: {one_line(e)}")


def emit(**row) -> None:
    print("ROW " + json.dumps(row), flush=True)


def one_line(text) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no message")[:160]


def run_part(command: list[str], seconds: float, env: dict) -> tuple[int | None, str, str, float]:
    """(exit code or None when stopped at `seconds`, stdout, stderr, seconds taken). The command runs in its
    own process group, so that a launcher's children (accelerate's, for FSDP) are stopped with it."""
    t = time.perf_counter()
    p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=seconds)
        code = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        code = None
    return code, out, err, time.perf_counter() - t


# -- the bench --------------------------------------------------------------------------------------------

def bench(args) -> list[dict]:
    import importlib.util
    import tempfile

    import torch

    cuda = torch.cuda.is_available() and not args.dry_run
    gpus = torch.cuda.device_count() if cuda else 0
    peak = peak_flops(torch.cuda.get_device_name(0)) if cuda else None
    deadline = time.monotonic() + args.minutes * 60
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "LIKEME_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               **({"CUDA_VISIBLE_DEVICES": ""} if args.dry_run else {})}
        params = build(work, args)["params"]

        def mfu(tokens_s: float | None, n_gpus: int = 1) -> str:
            if not (cuda and peak and tokens_s):
                return "n/a"
            return f"{100 * 6 * params * tokens_s / (peak * n_gpus):.1f}%"

        def child_rows(out: str) -> list[dict]:
            return [json.loads(line[4:]) for line in out.splitlines() if line.startswith("ROW ")]

        def voice_rows(run: str, n_gpus: int = 1, note: str = ""):
            def figures(out: str) -> list[dict]:
                f = voice_figures(work / run, args.warmup)
                return [{**f, "mfu": mfu(f["tokens_s"], n_gpus), "note": note}]
            return figures

        precision = "bf16" if cuda else "fp32"
        shape = f"full, batch {args.batch_size} x {args.block_size}, {args.steps} steps"
        no_bnb = importlib.util.find_spec("bitsandbytes") is None
        # (part, setting, command, its rows from its stdout, why it is skipped or None, on the first GPU only:
        #  a lone Trainer process that sees two GPUs wraps the model in DataParallel)
        parts = [
            ("train", f"likeme voice {precision}, {shape}",
             voice_command(work, args, "run", "--trainable", "all", "--precision", precision),
             voice_rows("run", note="" if cuda else "bf16 needs CUDA: fp32 on the CPU"), None, True),
            ("stock", f"transformers Trainer {precision}, {shape}", child_command("stock", work, args),
             lambda out: [{**r, "mfu": mfu(r["tokens_s"])} for r in child_rows(out)], None, True),
            ("4bit", f"likeme voice --quantize 4bit (QLoRA), batch {args.batch_size} x {args.block_size}",
             voice_command(work, args, "run-4bit", "--quantize", "4bit", "--trainable", "lora", "--precision", "bf16"),
             voice_rows("run-4bit", note="LoRA: MFU's 6N counts weight gradients it skips"),
             "skipped: no CUDA" if not cuda else
             "skipped: no bitsandbytes (pip install bitsandbytes)" if no_bnb else None, True),
            ("fsdp", f"likeme voice --processes 2 --strategy fsdp, {shape} per GPU",
             voice_command(work, args, "run-fsdp", "--trainable", "all", "--precision", "bf16",
                           "--processes", "2", "--strategy", "fsdp"),
             voice_rows("run-fsdp", 2, note="2 GPUs together; peak memory: the main process's"),
             "skipped: no CUDA" if not cuda else "skipped: one GPU" if gpus < 2 else None, False),
            ("generate", "likeme generate", child_command("generate", work, args), child_rows, None, True),
        ]
        for i, (name, setting, command, figures, skip, one_gpu) in enumerate(parts):
            # this part's share of the time left, among the parts still to run
            left = deadline - time.monotonic()
            seconds = left * SHARES[name] / sum(SHARES[p[0]] for p in parts[i:] if p[4] is None)
            if skip is None and seconds < MIN_SECONDS and not args.dry_run:
                skip = f"skipped: its share of the {left:.0f} s left of --minutes {args.minutes:g} is under {MIN_SECONDS} s"
            if skip:
                rows.append({"part": name, "setting": setting, "note": skip})
                continue
            code, out, err, took = run_part(command, seconds,
                                            {**env, "CUDA_VISIBLE_DEVICES": "0"} if one_gpu and cuda else env)
            row = {"part": name, "setting": setting, "seconds": took}
            if code is None:
                try:  # the rows a child printed before it was stopped (generation's first precisions)
                    rows.extend({**row, **r} for r in figures(out))
                except Exception:
                    pass
                rows.append({**row, "note": f"stopped: over its {seconds:.0f} s share of --minutes {args.minutes:g}"})
            elif code:
                rows.append({**row, "note": f"failed: {one_line(err)}"})
            else:
                try:
                    rows.extend({**row, **r} for r in figures(out))  # a generation row brings its own setting, seconds
                except Exception as e:
                    rows.append({**row, "note": f"failed: {one_line(e)}"})
            print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
    for r in rows:
        r.setdefault("note", "")
    return rows


def table(rows: list[dict]) -> str:
    def cell(v, fmt):
        return fmt(v) if isinstance(v, (int, float)) else v if isinstance(v, str) else "—"

    lines = ["| part | setting | tokens/s | MFU | peak memory | seconds | note |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['part']} | {r['setting']} | {cell(r.get('tokens_s'), lambda v: f'{v:,.0f}')} | "
                     f"{cell(r.get('mfu'), str)} | {cell(r.get('peak'), lambda v: f'{v / 2**30:.2f} GiB')} | "
                     f"{cell(r.get('seconds'), lambda v: f'{v:.0f}')} | {r['note']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, a 2-layer model, 2 steps each: seconds.")
    ap.add_argument("--minutes", type=float, default=8.0, help="Time for all parts together.")
    ap.add_argument("--out", type=Path, default=None, help="Also write the table here (.json: the rows as JSON).")
    ap.add_argument("--steps", type=int, default=None, help="Training steps per part (default 100; --dry-run 2).")
    ap.add_argument("--warmup", type=int, default=None, help="First steps left out of tokens/s (default 10; --dry-run 0).")
    ap.add_argument("--batch-size", type=int, default=None, help="Per GPU (default 16; --dry-run 2).")
    ap.add_argument("--block-size", type=int, default=None, help="Tokens per example (default 512; --dry-run 32).")
    ap.add_argument("--tokens", type=int, default=None, help="New tokens per generation (default 128; --dry-run 4).")
    ap.add_argument("--repeats", type=int, default=None, help="Generations timed, best kept (default 3; --dry-run 1).")
    ap.add_argument("--part", choices=["stock", "generate"], default=None, help=argparse.SUPPRESS)  # in a child
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for key, full, dry in (("steps", 100, 2), ("warmup", 10, 0), ("batch_size", 16, 2), ("block_size", 512, 32),
                           ("tokens", 128, 4), ("repeats", 3, 1)):
        if getattr(args, key) is None:
            setattr(args, key, dry if args.dry_run else full)
    if args.part:
        {"stock": stock_trainer, "generate": generation}[args.part](args)
        return 0

    import torch

    t = time.perf_counter()
    rows = bench(args)
    cuda = torch.cuda.is_available() and not args.dry_run
    machine = (f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if cuda else
               f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    model = "2-layer random model (--dry-run: the code paths ran; the figures mean nothing)" if args.dry_run else "SmolLM2-135M's shape, random weights"
    text = (f"{model}; {machine}; torch {torch.__version__}; Python {platform.python_version()}; "
            f"{datetime.now():%Y-%m-%d}; {time.perf_counter() - t:.0f} s in all\n\n{table(rows)}\n")
    print(text)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "model": model, "rows": rows}, indent=2)
                            if args.out.suffix == ".json" else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
