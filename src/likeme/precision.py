"""Which number format a model runs in: `--precision auto|fp32|bf16|fp16|int8`.

    >>> precision.choose("auto", "cpu")          # measured once per process on this CPU
    Choice(name='fp32', dtype=torch.float32, why='this CPU has no native bf16 (avx512_bf16 / amx_bf16)')
    >>> precision.choose("bf16", "cpu").dtype
    torch.bfloat16

auto: bf16 on a CUDA GPU that supports it (fp16 on one that does not); on a CPU, bf16 only where the CPU
has native bf16 (AVX512-BF16 or AMX) *and* a bf16 matrix product measured here is faster than fp32's
(torch 2.13's CPU kernels made bf16 slower than fp32 on an AMX EPYC where torch 2.14 made it 2x faster:
the version matters as much as the chip), fp32 elsewhere. int8 (inference only) quantizes the linear
layers' weights and activations as they load (torch's dynamic quantization): fast, but it loses
SmolLM2's outlier features (perplexity on Shakespeare 28.9 -> 82.7), so it is never chosen by auto.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likeme.errors import LikemeError

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
TORCH_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "float32": "float32",
               "bfloat16": "bfloat16", "float16": "float16"}


@dataclass(frozen=True)
class Choice:
    name: str   # fp32, bf16, fp16 or int8
    dtype: Any  # the torch dtype the weights load in (float32 for int8: quantized after loading)
    why: str    # one line for the user: why auto chose it ("" when asked for by name)


def cpu_flags() -> set[str]:
    """The CPU flags from /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16: bf16 dot products in hardware."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=None)
def bf16_speedup_on_cpu(rows: int = 1) -> float:
    """fp32 time / bf16 time of a matrix product the size of a small LM's MLP (576 x 1536, weights out of
    cache: 24 of them) on `rows` tokens: 1 as in decoding, 256 as in a training batch; measured once per
    process (about 50 ms for 1 row, 0.3 s for 256)."""
    import torch

    xs = {dt: torch.randn(rows, 576, dtype=dt) for dt in (torch.float32, torch.bfloat16)}
    ws = {dt: [torch.randn(1536, 576, dtype=dt) for _ in range(24)] for dt in xs}

    def run(dt) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for w in ws[dt]:
                torch.nn.functional.linear(xs[dt], w)
            best = min(best, time.perf_counter() - t)
        return best

    with torch.inference_mode():
        run(torch.bfloat16)  # warm-up
        return run(torch.float32) / run(torch.bfloat16)


def choose(precision: str | None, device: Any = "cpu", *, inference: bool = True) -> Choice:
    """`--precision` (or a torch dtype name) on `device` -> a Choice. A clear error for an unknown name,
    for int8 in training, and for fp16/bf16 that the device cannot run."""
    import torch

    name = "auto" if precision is None else str(precision).removeprefix("torch.")
    if isinstance(precision, torch.dtype):
        name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(precision, str(precision))
    name = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(name, name)
    allowed = PRECISIONS if inference else tuple(p for p in PRECISIONS if p != "int8")
    if name not in allowed:
        raise LikemeError(f"unknown precision {precision!r}: use one of {', '.join(allowed)}")
    cuda = str(device).startswith("cuda")
    if name == "int8":
        if cuda:
            raise LikemeError("--precision int8 is torch's CPU dynamic quantization: use bf16 on a GPU")
        return Choice("int8", torch.float32, "")
    if name == "fp16" and not inference and not cuda:
        raise LikemeError("fp16 training (with loss scaling) runs on a CUDA GPU: use --precision bf16 or fp32 here")
    if name != "auto":
        return Choice(name, getattr(torch, TORCH_NAMES[name]), "")
    if cuda:
        if torch.cuda.is_bf16_supported():
            return Choice("bf16", torch.bfloat16, "a CUDA GPU with bf16")
        return Choice("fp16", torch.float16, "a CUDA GPU without bf16")
    if not str(device).startswith("cpu"):
        return Choice("fp32", torch.float32, f"{device}: fp32 is the format every kernel there supports")
    if not cpu_native_bf16():
        return Choice("fp32", torch.float32, "this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
    speedup = bf16_speedup_on_cpu(1 if inference else 256)
    if speedup < 1.1:
        return Choice("fp32", torch.float32, f"bf16 measured {speedup:.2f}x fp32 on this CPU with torch {torch.__version__}")
    return Choice("bf16", torch.bfloat16, f"native bf16, measured {speedup:.2f}x fp32 on this CPU")
