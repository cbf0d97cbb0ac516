"""Before training: what to train, how, and whether it fits this machine (`likeme plan`).

    >>> p = plan_voice("Robin", base="smollm2-135m", steps=10, packing=True)   # the chatterbot chat, one thread
    >>> p["examples"], round(p["mean_tokens"], 1), round(p["estimate"]["step_seconds"], 2)
    (1588, 64.2, 8.53)                     # measured on that run: 11.1 s a step (BENCHMARKS.md "Planning")
    >>> print(render(p))                   # data, model, machine, the plan, the expected cost, the command

From the dataset (examples and their token lengths), the model's shape (config.json: no weights are
loaded) and this machine (cores, memory, GPU and its memory, native bf16, and a matrix product timed
here), the recommended method, LoRA rank, batch, precision and steps, and the cost of a step:

- time: the FLOPs of a step (Kaplan et al. 2020's 2N per token forward, plus attention's 2 x layers x
  context x width, plus the LM head's 2 x width x vocabulary; backward twice the forward where every
  weight trains, once where only LoRA adapters do, as gradients still flow back through the frozen
  weights), over padded tokens (the longest example of each batch sets its length), at the rate of a
  matrix product measured here times EFFICIENCY (the share of it a whole training step reaches, calibrated
  on measured runs: BENCHMARKS.md "Planning"), plus the optimizer's pass over the trained weights and the
  evaluations;
- memory: this process as it stands (Python, torch, transformers: measured), the weights, the trained
  weights' gradient and AdamW state (3 x 4 bytes each), the activations kept for the backward pass
  (ACTIVATION_FLOATS per token per layer, for the largest batch the run will meet: `largest_batch`) and
  the logits (batch x length x vocabulary x 4 bytes, held
  3 times: logits, their float copy in the loss, their gradient).
"""
from __future__ import annotations

import math
import os
import random
from dataclasses import asdict, dataclass, field

from likeme.errors import LikemeError

GiB = 1024 ** 3
EFFICIENCY = {"cpu": 0.45, "cuda": 0.35}  # measured step FLOP/s over the timed matmul's (BENCHMARKS.md "Planning")
# x hidden size, per token per layer, saved for the backward pass of a LoRA-trained Llama block: the MLP's
# gate, up, act(gate) and their product (4 x intermediate = 10.7 x hidden for SmolLM2), q, k, v, the attention
# output and the o projection's (about 4.5), two norms' outputs (2), and the dropped-out input that each of the
# 7 LoRA layers keeps (6 x hidden + intermediate = 8.7): about 26, rounded up to 28 for what is not itemised
# (the rotated q and k). It was 12, fitted to padded runs before the LM head ran on labelled positions only:
# their logits hid the difference.
ACTIVATION_FLOATS = 28
LOGIT_COPIES = 3        # logits, their float32 copy in the loss, their gradient
# The share of a forward pass's transient memory (activations, attention, logits) that the process still holds
# after it is freed, on a CPU: glibc's heap keeps freed blocks for reuse and they fragment as batch sizes vary.
# On the 20,000-message export the peak was 3.25-3.49 GiB, and 2.74 GiB with MALLOC_MMAP_THRESHOLD_=131072
# (every large tensor returned to the system at once, but each step 1.8x slower); 0.25 puts the plan within
# 25% of the measured peak on that export, the 200,000-message one and Shakespeare (BENCHMARKS.md "Planning").
ALLOCATOR_KEEPS = 0.25
STEP_OVERHEAD_S = 0.1   # a step's fixed cost on a CPU (the Trainer's loop, collation, logging): the tiny model's step


@dataclass
class Machine:
    cores: int
    memory: int            # bytes in all
    available: int         # bytes free now (for a GPU: its free memory)
    device: str            # "cpu" or "cuda"
    gpu: str | None
    bf16_native: bool
    matmul_flops: float    # a training-shaped fp32 (CPU) / bf16 (GPU) matrix product, FLOP/s measured here

    @classmethod
    def here(cls) -> Machine:
        import psutil
        import torch

        from likeme.precision import cpu_native_bf16

        vm = psutil.virtual_memory()
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            return cls(os.cpu_count() or 1, total, free, "cuda", torch.cuda.get_device_name(0),
                       torch.cuda.is_bf16_supported(), _matmul_flops("cuda"))
        return cls(os.cpu_count() or 1, vm.total, vm.available, "cpu", None, cpu_native_bf16(), _matmul_flops("cpu"))


def _matmul_flops(device: str) -> float:
    """FLOP/s of (1024 x 576) @ (576 x 1536), SmolLM2-135M's MLP on a batch of 1,024 tokens: the median of 5
    after a warm-up. It still varies between calls (about 210 to 310 GFLOP/s on one idle 2-core CPU, the best
    of 5 and the median alike), and the planned step with it."""
    import time

    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(1024, 576, device=device, dtype=dtype)
    b = torch.randn(576, 1536, device=device, dtype=dtype)
    times = []
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(8):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return 8 * 2 * 1024 * 576 * 1536 / sorted(times[1:])[2]  # the first warms up


@dataclass
class Shape:
    """What sets a causal LM's compute and memory, from its config.json."""
    layers: int
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @classmethod
    def of(cls, base: str) -> Shape:
        from transformers import AutoConfig

        from likeme.models import resolve

        ref = resolve(base)
        folder = ref.base.weights if ref.adapter is not None else ref.weights
        if folder is None or not (folder / "config.json").is_file():
            raise LikemeError(f"{base}: no config.json to plan from (is the model downloaded / converted? likeme models)")
        c = AutoConfig.from_pretrained(folder)
        heads = c.num_attention_heads
        return cls(c.num_hidden_layers, c.hidden_size, getattr(c, "intermediate_size", 4 * c.hidden_size), heads,
                   getattr(c, "num_key_value_heads", None) or heads, c.vocab_size,
                   bool(getattr(c, "tie_word_embeddings", False)))

    @property
    def kv(self) -> int:
        return self.hidden * self.kv_heads // self.heads

    def block_params(self) -> int:
        d = self.hidden
        return 2 * d * d + 2 * d * self.kv + 3 * d * self.ffn + 2 * d  # q, o; k, v; gate, up, down; 2 norms

    def params(self) -> int:
        return self.layers * self.block_params() + self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def lora_params(self, r: int) -> int:
        d = self.hidden
        per_block = r * ((d + d) * 2 + (d + self.kv) * 2 + (d + self.ffn) * 3)  # q, o; k, v; gate, up, down
        return self.layers * per_block

    def trained(self, method: str, r: int = 32, last_blocks: int = 2) -> int:
        if method == "lora":
            return self.lora_params(r)
        if method == "last-blocks":
            return last_blocks * self.block_params() + self.hidden
        return self.params()

    def forward_flops(self, tokens: int, length: int, head_positions: float | None = None) -> float:
        """FLOPs of a forward pass over `tokens` tokens in sequences of `length`, the LM head run at
        `head_positions` of them (all by default; training runs it where a token is labelled)."""
        matmul = self.layers * (self.block_params() - 2 * self.hidden)
        attention = 2 * self.layers * length * self.hidden  # causal: half of QK^T and AV
        head = self.hidden * self.vocab
        return 2 * tokens * matmul + 2 * (tokens if head_positions is None else head_positions) * head \
            + 2 * tokens * attention


def padded_length(lengths: list[int], batch: int, draws: int = 200, seed: int = 0) -> float:
    """Mean padded length of a random batch (its longest example).

    Example: padded_length([10, 10, 20, 20], 2) -> about 17.5 (3 batches in 4 hold a 20)
    """
    rng = random.Random(seed)
    return sum(max(rng.sample(lengths, min(batch, len(lengths)))) for _ in range(draws)) / draws


def largest_batch(lengths: list[int], batch: int, draws: int, packing: bool, seed: int = 0) -> int:
    """Tokens of the largest of `draws` random batches (at most 5,000 drawn): a packed row's length is its
    examples' sum, a padded batch's `batch` x its longest. The peak of a run is set by its largest batch
    (the activations kept for its backward pass; freed memory stays with the process), not its mean one,
    and a longer run meets a larger one.

    Example: largest_batch([10, 20, 30, 40], 2, draws=100, packing=True) -> 70 (30 + 40, drawn in 100 tries)
    """
    rng = random.Random(seed)
    k = min(batch, len(lengths))
    top = 0
    for _ in range(max(1, min(draws, 5000))):
        drawn = rng.sample(lengths, k)
        top = max(top, sum(drawn) if packing else batch * max(drawn))
    return top


@dataclass
class Estimate:
    method: str
    lora_r: int | None
    batch: int
    precision: str
    precision_why: str
    steps: int
    eval_every: int
    trained_params: int
    params: int
    padded_tokens_per_step: float
    step_seconds: float
    total_seconds: float
    peak_bytes: int
    parts: dict = field(default_factory=dict)  # peak memory by part (bytes)
    fits: bool = True
    advice: str = ""


def estimate(shape: Shape, lengths: list[int], machine: Machine, *, method: str = "lora", lora_r: int = 32,
             batch: int = 8, precision: str = "fp32", precision_why: str = "", steps: int = 100, eval_every: int = 20,
             eval_examples: int = 64, last_blocks: int = 2, baseline_bytes: int | None = None,
             packing: bool = False, labelled: list[int] | None = None, checkpointing: bool = False,
             accum: int = 1) -> Estimate:
    """Time per step, time in all and peak memory of training `shape` on examples of `lengths` tokens, in
    padding-free batches (packing) or padded ones (the longest example sets the length); `batch` examples a
    forward pass, `accum` forward passes a step (gradient accumulation: the time of each, the memory of one).

    labelled: each example's labelled tokens: the LM head runs only where the next token is labelled
    (`batching.head_on_labels`; a padded batch keeps the positions labelled in any of its rows), else everywhere.
    checkpointing: gradient checkpointing: each block's input is kept, one block's activations at a time
    are rebuilt in the backward pass, at the cost of a second forward pass through the blocks."""
    mean = sum(lengths) / len(lengths)
    pad = mean if packing else padded_length(lengths, batch)
    tokens = batch * pad
    # memory: the largest forward pass of the run's steps x accum (the time: the mean one)
    most = largest_batch(lengths, batch, steps * accum, packing)
    if labelled:
        per = sum(labelled) / len(labelled)
        head_positions = batch * per if packing else batch * min(pad, batch * per)  # (B, K) logits
    else:
        head_positions = tokens
    fwd = shape.forward_flops(int(tokens), int(pad), head_positions)
    backward = {"lora": 1.0, "all": 2.0}.get(method)
    if backward is None:  # last-blocks: gradients flow back through the trained blocks and the head only
        part = (last_blocks * shape.block_params() + shape.hidden * shape.vocab) / (shape.params())
        backward = 2.0 * part
    rate = machine.matmul_flops * EFFICIENCY[machine.device]
    # bf16 on a CPU: no gain counted. Its matrix products ran 3.4x fp32's on a CPU with native bf16, but the
    # voice's training step only 1.05x (9.1 s against 9.5 s, 2026-12-06, BENCHMARKS.md "Planning"): the rest of
    # the step (casts, norms, attention, the optimizer) is most of it
    trained = shape.trained(method, lora_r, last_blocks)
    optimizer = trained * 16 / 5e9  # AdamW reads and writes ~16 bytes a weight, at ~5 GB/s on a laptop
    body = fwd - 2 * head_positions * shape.hidden * shape.vocab  # what checkpointing runs twice
    step = accum * (fwd * (1 + backward) + (body if checkpointing else 0)) / rate + optimizer + STEP_OVERHEAD_S
    eval_pad = padded_length(lengths, batch)  # evaluation batches are padded
    evaluation = eval_examples / batch * shape.forward_flops(int(batch * eval_pad), int(eval_pad)) / rate
    total = steps * step + (steps // max(1, eval_every)) * evaluation
    width = 2 if precision in ("bf16", "fp16") and machine.device == "cuda" else 4
    if baseline_bytes is None and machine.device != "cpu":
        baseline_bytes = 0
    elif baseline_bytes is None:  # this process, with the libraries a training process holds (about 0.23 GiB)
        import peft  # noqa: F401
        import psutil
        import transformers.trainer  # noqa: F401

        baseline_bytes = psutil.Process().memory_info().rss
    parts = {
        "runtime": baseline_bytes,
        "weights": shape.params() * 4,
        "gradients and AdamW state": trained * 12,
        # checkpointing keeps each block's input (hidden floats a token) and rebuilds one block at a time
        "activations": int(most * shape.hidden * width * (shape.layers + ACTIVATION_FLOATS) if checkpointing
                           else most * shape.layers * shape.hidden * ACTIVATION_FLOATS * width),
        "logits": int(head_positions * shape.vocab * 4 * LOGIT_COPIES),
        # attention weights kept for the backward pass where the kernel materialises them (a CPU, a packed
        # row's mask): heads x rows x length^2, a packed row being the whole batch long; one block's at a time
        # with checkpointing
        "attention": int(shape.heads * (1 if checkpointing else shape.layers) * 4 *
                         (most ** 2 if packing else most ** 2 / batch)) if machine.device == "cpu" else 0,
    }
    if machine.device == "cpu":
        parts["kept by the allocator"] = int(ALLOCATOR_KEEPS * (parts["activations"] + parts["logits"] + parts["attention"]))
    peak = sum(parts.values())
    return Estimate(method, lora_r if method == "lora" else None, batch, precision, precision_why, steps, eval_every,
                    trained, shape.params(), round(accum * tokens, 1), step, total, peak, parts,
                    fits=peak <= machine.available)


def recommend(shape: Shape, lengths: list[int], examples: int, machine: Machine, *, method: str | None = None,
              batch: int | None = None, lora_r: int = 32, precision: str = "auto", steps: int | None = None,
              eval_every: int | None = None, max_batch: int = 8, packing: bool = False,
              labelled: list[int] | None = None, checkpointing: bool = False, accum: int = 1) -> Estimate:
    """The plan: the method (LoRA unless full fine-tuning fits a GPU with room to spare and the data is large),
    the largest batch up to `max_batch` that fits, precision.choose's precision, and trainer.plan's steps.
    When nothing fits, the smallest plan with `fits=False` and what to change."""
    from likeme import precision as prec
    from likeme.training.trainer import plan as steps_plan

    chosen = prec.choose(precision, machine.device, inference=False)
    if method is None:
        full = estimate(shape, lengths, machine, method="all", batch=batch or max_batch, precision=chosen.name,
                        packing=packing, labelled=labelled, checkpointing=checkpointing)
        method = "all" if machine.device == "cuda" and examples >= 5000 and full.peak_bytes < 0.5 * machine.available \
            else "lora"
    sizes = [batch] if batch else [b for b in (max_batch, 4, 2, 1) if b <= max_batch]
    best = None
    for b in sizes:
        p = steps_plan(examples, b * accum, max_steps=steps, eval_every=eval_every)
        e = estimate(shape, lengths, machine, method=method, lora_r=lora_r, batch=b, precision=chosen.name,
                     precision_why=chosen.why, steps=p.total, eval_every=p.eval_every, packing=packing,
                     labelled=labelled, checkpointing=checkpointing, accum=accum)
        best = e
        if e.fits:
            break
    if not best.fits:
        need = best.peak_bytes / GiB
        fixes = ["a smaller --block-size (fewer tokens per example)"]
        if method != "lora":
            fixes.insert(0, "--trainable lora")
        if machine.device == "cuda":
            fixes.append("--quantize 4bit (QLoRA)")
        best.advice = (f"will not fit: about {need:.1f} GiB at batch {best.batch}, {machine.available / GiB:.1f} GiB "
                       f"available; try {', or '.join(fixes)}")
    return best


def plan_voice(name: str, *, base: str = "smollm2-135m", db: str | None = None, method: str | None = None,
               batch: int | None = None, block_size: int = 512, context_turns: int = 8, lora_r: int = 32,
               precision: str = "auto", steps: int | None = None, machine: Machine | None = None,
               packing: bool = False, checkpointing: bool = False, accum: int = 1) -> dict:
    """The plan for `likeme train voice --as NAME` with these settings: data, model, machine, estimate."""
    from likeme import models
    from likeme.data import examples
    from likeme.data.store import Store
    from likeme.prompts import IGNORE

    tok = models.load_tokenizer(base)
    with Store(db) as store:
        data = examples.persona_dataset(store, name, tok, context_turns=context_turns, max_length=block_size)
    lengths = [len(e["input_ids"]) for e in data.train]
    labelled = [sum(1 for x in e["labels"] if x != IGNORE) for e in data.train]
    if not lengths:
        raise LikemeError(f"no training examples for {name}: see likeme people")
    shape = Shape.of(base)
    machine = machine or Machine.here()
    est = recommend(shape, lengths, len(lengths), machine, method=method, batch=batch, lora_r=lora_r,
                    precision=precision, steps=steps, packing=packing, labelled=labelled, checkpointing=checkpointing,
                    accum=accum)
    return {"name": name, "base": base, "packing": packing, "checkpointing": checkpointing, "accum": accum,
            "examples": len(lengths), "heldout": len(data.heldout), "labelled_tokens": sum(labelled),
            "tokens": sum(lengths), "mean_tokens": sum(lengths) / len(lengths), "max_tokens": max(lengths),
            "shape": asdict(shape), "machine": asdict(machine), "estimate": asdict(est)}


def render(p: dict) -> str:
    """The plan as `likeme plan` prints it."""
    m, e, s = p["machine"], p["estimate"], p["shape"]
    where = f"{m['gpu']} ({m['memory'] / GiB:.0f} GiB, {m['available'] / GiB:.1f} free)" if m["gpu"] else \
        f"{m['cores']} CPU cores, {m['memory'] / GiB:.1f} GiB memory ({m['available'] / GiB:.1f} available)"
    method = f"LoRA r={e['lora_r']}" if e["method"] == "lora" else {"all": "every weight",
                                                                  "last-blocks": "the last blocks"}[e["method"]]
    flags = f"--trainable {e['method']}" + (f" --lora-r {e['lora_r']}" if e["lora_r"] else "")
    lines = [
        f"Data: {p['examples']:,} training examples of {p['name']} ({p['heldout']:,} held out), {p['tokens']:,} tokens "
        f"({p['mean_tokens']:.0f} per example on average, {p['max_tokens']} at most)",
        f"Model: {p['base']}, {e['params'] / 1e6:.1f}M parameters ({s['layers']} layers, {s['hidden']} wide, "
        f"vocabulary {s['vocab']:,})",
        f"Machine: {where}; native bf16: {'yes' if m['bf16_native'] else 'no'}; a matrix product runs at "
        f"{m['matmul_flops'] / 1e9:.0f} GFLOP/s",
        f"Plan: {method} ({e['trained_params'] / 1e6:.2f}M weights trained), batch {e['batch']}, precision "
        f"{e['precision']}{' (' + e['precision_why'] + ')' if e['precision_why'] else ''}, {e['steps']} steps, "
        f"an evaluation every {e['eval_every']}",
        f"Expected: {e['step_seconds']:.2f} s a step ({e['padded_tokens_per_step']:.0f} tokens), "
        f"{_duration(e['total_seconds'])} in all; peak memory {e['peak_bytes'] / GiB:.1f} GiB of "
        f"{m['available'] / GiB:.1f} GiB available: {'fits' if e['fits'] else 'does NOT fit'}",
        "  memory: " + ", ".join(f"{k} {v / GiB:.2f} GiB" for k, v in e["parts"].items()),
    ]
    if e["advice"]:
        lines.append(e["advice"])
    lines.append(f"  likeme train voice --as {_quote(p['name'])} --learn-from me --base {p['base']} {flags} "
                 f"--batch-size {e['batch']} --grad-accum {p.get('accum', 1)} --precision {e['precision']} "
                 f"--max-steps {e['steps']}" + (" --packing" if p.get("packing") else " --no-packing") +
                 (" --checkpointing" if p.get("checkpointing") else " --no-checkpointing"))
    lines.append(f"This plans {p['name']}'s replies alone (--learn-from me). Without it the voice learns from everyone "
                 f"in {p['name']}'s chats with the person contrast (more examples, and a contrast step costs about "
                 "twice as much): give it a time budget, --max-minutes.")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


def _quote(name: str) -> str:
    return f'"{name}"' if any(c.isspace() for c in name) else name


def measured(run) -> dict:
    """What a finished run measured, to set beside its plan: seconds per training step (the median gap
    between training rows, evaluations left out) and peak memory (metrics.json peak_memory_bytes)."""
    import json
    import statistics
    from pathlib import Path

    rows = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    gaps = [b["seconds"] - a["seconds"] for a, b in zip(train, train[1:]) if b["step"] == a["step"] + 1
            and not any("eval_loss" in r and a["step"] <= r["step"] < b["step"] for r in rows)]
    figures = json.loads((Path(run) / "metrics.json").read_text())
    return {"step_seconds": statistics.median(gaps) if gaps else math.nan,
            "peak_bytes": figures.get("peak_memory_bytes"), "steps": figures.get("steps")}
