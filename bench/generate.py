"""Local inference speed: greedy decoding of 128 new tokens with the bundled model, in one process.

    .venv/bin/python bench/generate.py                 # llama.cpp rows only where llama-cpp-python is installed
    .venv/bin/python bench/generate.py --tokens 128 --repeats 3
    .venv/bin/python bench/generate.py --voice runs/robin "later.txt" Robin   # + a tuned voice's perplexity

Rows: bare transformers fp32 (`model.generate`), likeme's torch backend at --precision auto (what it chose
here, and why), fp32, bf16 and int8 (dynamic quantization of the linear layers), likeme's llama.cpp backend
on f16, q8_0 and q4_1 GGUF files it exports, and bare llama-cpp-python on the same files. Each: new tokens
per second (best of --repeats, after a warm-up) and the time to the first new token, on the same prompt;
for the torch rows also the perplexity of the last 1,024 tokens of tinyshakespeare (what the speed costs).
The CPU's flags that matter (avx2, avx512f, avx512_bf16, amx) are printed with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who"


def cpu_flags() -> list[str]:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bare_transformers(tokens: int, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from likeme import models

    path = models.weights_path(models.resolve("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ids = tok(PROMPT, return_tensors="pt")

    def gen(n):
        with torch.inference_mode():
            return model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)

    return {"tokens_per_s": tokens / timed(lambda: gen(tokens), repeats), "first_token_s": timed(lambda: gen(1), repeats)}


def bare_compiled(tokens: int, repeats: int) -> dict:
    """transformers fp32 with a static KV cache and torch.compile'd forward (the compile time reported apart)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from likeme import models

    path = models.weights_path(models.resolve("smollm2-135m"))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    model.forward = torch.compile(model.forward, dynamic=False)
    ids = tok(PROMPT, return_tensors="pt")

    def gen(n):
        with torch.inference_mode():
            return model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                  cache_implementation="static")

    t = time.perf_counter()
    gen(tokens)
    return {"compile_s": time.perf_counter() - t, "tokens_per_s": tokens / timed(lambda: gen(tokens), repeats),
            "first_token_s": timed(lambda: gen(1), repeats)}


def likeme_voice(voice, tokens: int, repeats: int) -> dict:
    # min_new_tokens is not a likeme setting: a story prompt that the model continues past 128 tokens
    def gen(n):
        out = voice.generate(PROMPT, max_new_tokens=n, do_sample=False, repetition_penalty=1.0)
        return len(out.token_ids)

    n = gen(tokens)
    return {"tokens_per_s": n / timed(lambda: gen(tokens), repeats), "first_token_s": timed(lambda: gen(1), repeats),
            "tokens": n}


SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"


def text_perplexity(voice) -> dict:
    """Perplexity of the last 1,024 tokens of tinyshakespeare under the voice's model (skipped without it)."""
    import math

    import torch

    if not SHAKESPEARE.exists():
        return {}
    ids = voice.tokenizer(SHAKESPEARE.read_text()[-8000:], return_tensors="pt").input_ids[:, -1024:]
    with torch.inference_mode():
        return {"ppl": math.exp(voice.model(ids, labels=ids).loss.float().item())}


def voice_perplexity(run: str, data: str, name: str, precision: str, replies: int = 200) -> float:
    """Held-out perplexity of NAME's replies in an export under a voice run loaded at `precision` (its LoRA
    merged in fp32 and then cast, as generate.load does)."""
    from datetime import timedelta

    from likeme import runs
    from likeme.check import evaluate
    from likeme.data.examples import even_sample, persona_dataset
    from likeme.use import generate

    voice = generate.load(run, precision=precision)
    meta = runs.read_meta(run)
    cfg = runs.voice_config(meta)
    with evaluate.temporary_store(data, None, None) as store:
        examples = persona_dataset(store, name, voice.tokenizer, context_turns=cfg.get("context_turns", 8),
                                            max_length=cfg.get("block_size", 512), heldout=0.0,
                                            gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)), min_replies=1).train
    return evaluate.perplexity(voice.model, even_sample(examples, replies), voice.tokenizer.pad_token_id)


def bare_llama(path: Path, tokens: int, repeats: int) -> dict:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_threads=os.cpu_count(), verbose=False)
    ids = llm.tokenize(PROMPT.encode(), add_bos=False)

    def gen(n):
        llm.reset()  # else llama-cpp-python reuses the prompt's cache from the last call
        for i, _ in enumerate(llm.generate(ids, reset=True, temp=0.0, repeat_penalty=1.0), 1):
            if i >= n:
                break

    return {"tokens_per_s": tokens / timed(lambda: gen(tokens), repeats), "first_token_s": timed(lambda: gen(1), repeats)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true",
                    help="Add bare transformers with a static cache and torch.compile (minutes of compiling).")
    ap.add_argument("--voice", nargs=3, metavar=("RUN", "EXPORT", "NAME"), default=None,
                    help="Also the held-out perplexity of a tuned voice's replies at fp32, bf16 and int8.")
    ap.add_argument("--out", type=Path, default=Path("/tmp/generate-bench.json"))
    args = ap.parse_args(argv)
    import torch

    from likeme.use import generate, llama

    rows: dict[str, dict] = {}

    def row(label, fn):
        rows[label] = {k: round(v, 4) if isinstance(v, float) else v for k, v in fn().items()}
        print(f"{label}: {rows[label]}", file=sys.stderr)

    row("transformers fp32 (bare)", lambda: bare_transformers(args.tokens, args.repeats))
    if args.compile:
        row("transformers fp32, static cache + torch.compile (bare)", lambda: bare_compiled(args.tokens, args.repeats))
    for label, precision in (("likeme torch fp32", "fp32"), ("likeme torch auto", "auto"),
                             ("likeme torch bf16", "bf16"), ("likeme torch int8 (dynamic)", "int8")):
        voice = generate.load("smollm2-135m", precision=precision)
        if precision == "auto":
            label += f" = {voice.precision.name} ({voice.precision.why})"
        row(label, lambda: {**likeme_voice(voice, args.tokens, args.repeats), **text_perplexity(voice)})
        del voice
    if llama.installed():
        for quant in ("f16", "q8_0", "q4_1"):
            voice = llama.load("smollm2-135m", quant=quant)
            row(f"likeme llama.cpp {quant}", lambda: likeme_voice(voice, args.tokens, args.repeats))
            row(f"llama-cpp-python {quant} (bare)",
                lambda: bare_llama(llama.gguf_for("smollm2-135m", quant), args.tokens, args.repeats))
            del voice
    if args.voice:
        run, data, name = args.voice
        rows_voice = {p: round(voice_perplexity(run, data, name, p), 4) for p in ("fp32", "bf16", "int8")}
        print(f"tuned voice, held-out perplexity of {name}'s replies: {rows_voice}", file=sys.stderr)
        rows["tuned voice perplexity"] = rows_voice
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "flags": cpu_flags(),
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    base = rows["likeme torch fp32"]["tokens_per_s"]
    print(f"{machine}\n\n| path | new tokens/s | vs likeme fp32 | first token (s) | perplexity |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    for label, r in rows.items():
        if "tokens_per_s" not in r:
            continue
        ppl = f"{r['ppl']:.2f}" if "ppl" in r else ""
        print(f"| {label} | {r['tokens_per_s']:.1f} | {r['tokens_per_s'] / base:.2f}x | {r['first_token_s']:.3f} | {ppl} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
