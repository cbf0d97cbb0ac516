"""The llama.cpp backend: a voice run through llama-cpp-python, with likeme's own prompts, stops and text.

    voice = likeme.use.llama.load("runs/ana")            # exports RUN/export/ana-f16.gguf once
    voice = likeme.use.load.load_voice("runs/ana", backend="llama.cpp")   # the same
    voice.reply(["are you coming tonight?"], do_sample=False)

The prompt ids are built by the same code as the torch backend (`Voice.prompt_ids`, the run's tokenizer)
and fed to llama.cpp as ids; the reply stops at the same end-of-turn tokens and is cleaned by the same
`decoding.Cleaner`; llama.cpp computes the logits and likeme picks each token as transformers does (`pick`:
the repetition penalty over the whole context, temperature, top-k, top-p, min-p), so a greedy reply
from an f16 or f32 GGUF is the torch backend's, token for token.
llama-cpp-python compiles llama.cpp when it installs, so it is an optional extra: `make llama`, or
`pip install 'likeme[llama]'`. JSON output (json_schema) runs on the torch backend (the same voice,
loaded there on the first such request).
"""
from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, Callable

from likeme.errors import LikemeError
from likeme.use.decoding import Cleaner, Generation, Streamer, cut_by
from likeme.use.generate import CONTEXT_TURNS, Voice, with_recall

# The cached GGUF's weights: f16 gives the torch backend's greedy replies token for token at 4.5x its
# tokens/s on 2 cores; q8_0 is 6.4x but changes some replies after a few words (bench/generate.py).
QUANT = "f16"


def installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def usable(ref) -> bool:
    """For backend "auto": llama-cpp-python is installed and the model is one export can write."""
    if not installed():
        return False
    import json

    from likeme import models

    try:
        config = json.loads((models.weights_path(ref.base if ref.adapter is not None else ref) / "config.json").read_text())
    except (OSError, ValueError, LikemeError, AttributeError):
        return False
    return config.get("model_type") in ("llama", "mistral", "qwen2") and not config.get("attention_bias")


def gguf_for(run, quant: str = QUANT):
    """The run's GGUF file, exported on first use: RUN/export/NAME-f16.gguf (a model that is not a run:
    $LIKEME_HOME/models/NAME-f16.gguf)."""
    from pathlib import Path

    from likeme import models, runs
    from likeme.paths import home
    from likeme.use import export

    ref = models.resolve(run)
    slug = runs.slug(ref.path.name if ref.kind == "run" else str(run))
    folder = ref.path / "export" if ref.kind == "run" else home() / "models"
    path = Path(folder) / f"{slug}-{quant}.gguf"
    if not path.is_file() or (ref.kind == "run" and path.stat().st_mtime < (ref.path / "run.yaml").stat().st_mtime):
        export.export(run, "gguf", quant=quant, out=folder)
    return path


class LlamaVoice(Voice):
    """A `Voice` whose tokens come from llama.cpp; everything else (prompts, stops, cleaning) is Voice's."""

    def __init__(self, llm, tokenizer, *, n_ctx: int, **kw):
        stand_in = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None),
                                   config=SimpleNamespace(max_position_embeddings=n_ctx), device="cpu (llama.cpp)")
        super().__init__(stand_in, tokenizer, **kw)
        self.llm, self._torch_voice = llm, None

    def __repr__(self) -> str:
        return f"Voice(name={self.name!r}, partner={self.partner!r}, run={self.run!r}, backend='llama.cpp')"

    def _torch(self) -> Voice:
        if self._torch_voice is None:
            from likeme.use.generate import load

            self._torch_voice = load(self.run, name=self.name, partner=self.partner, format=self.format,
                                     context_turns=self.context_turns, recall=0)
        return self._torch_voice

    def _sample(self, ids: list[int], settings, stop_ids: list[int], stream: Callable[[str], Any] | None, *,
                strip: bool, line: bool = False, json_schema=None, stop=(), cancel=None):

        import numpy as np

        if json_schema is not None:  # the grammar runs on transformers: the same voice, loaded there once
            return self._torch()._sample(ids, settings, stop_ids, stream, strip=strip, line=line,
                                         json_schema=json_schema, stop=stop, cancel=cancel)
        stop = [s for s in (stop or ()) if s]
        n = settings.num_return_sequences
        np_rng = np.random.default_rng(settings.seed)
        results = []
        for k in range(n):
            clean = Cleaner(self.tokenizer, stop_ids, self._markers + stop, strip, line)
            streamer = Streamer(clean, stream) if stream is not None and n == 1 else None
            if streamer is not None:
                streamer._prompt_seen = True
            new: list[int] = []
            finish = "length"
            llm = self.llm
            llm.reset()
            llm.eval(ids)
            context = list(ids)
            while len(new) < settings.max_new_tokens:
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))  # (V,) the last token's
                token = pick(logits.astype(np.float32), context, settings, np_rng)
                new.append(token)
                context.append(token)
                if streamer is not None:
                    streamer.put(np.array([token]))
                if clean.end(new) is not None:
                    finish = "stop"
                    break
                if stop and cut_by(stop, self.tokenizer.decode(new, skip_special_tokens=True)):
                    finish = "stop"
                    break
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                llm.eval([token])
            if streamer is not None:
                streamer.end()
            text = streamer.text if streamer is not None else clean(new)
            results.append(Generation(text, new, finish))
        return results[0] if n == 1 else results


def pick(logits, context: list[int], settings, rng) -> int:
    """The next token, as transformers' generate picks it: the repetition penalty over every token of the
    context (Keskar et al. 2019: logit / p if positive, logit * p if not; llama.cpp's own sees only what
    it sampled), then greedy, or temperature -> top-k -> top-p -> min-p and a draw from `rng`.
    logits (V,) float32 -> a token id."""
    import numpy as np

    p = settings.repetition_penalty
    if p != 1:
        seen = np.unique(np.asarray(context))
        s = logits[seen]
        logits[seen] = np.where(s > 0, s / p, s * p)
    if settings.greedy:
        return int(np.argmax(logits))
    logits = logits / settings.temperature
    if settings.top_k:
        kth = np.partition(logits, -settings.top_k)[-settings.top_k]
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if settings.top_p < 1:
        order = np.argsort(-probs)
        keep = np.cumsum(probs[order]) - probs[order] < settings.top_p  # the smallest set reaching top_p
        mask = np.zeros_like(probs, dtype=bool)
        mask[order[keep]] = True
        probs = np.where(mask, probs, 0)
    if settings.min_p:
        probs = np.where(probs < settings.min_p * probs.max(), 0, probs)
    probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def load(run: str | os.PathLike, *, name=None, partner=None, format=None, context_turns=None, recall=None, db=None,
         quant: str = QUANT, threads: int | None = None) -> LlamaVoice:
    """A voice on llama.cpp (see the module docstring); the same options as `generate.load`."""
    if not installed():
        raise LikemeError("the llama.cpp backend needs llama-cpp-python: make llama (or pip install "
                          "'likeme[llama]'; it compiles llama.cpp), or use --backend torch")
    import llama_cpp

    from likeme import models, runs

    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    name, partner = runs.speaking_as(meta, name, partner)
    path = gguf_for(run, quant)
    config = runs.voice_config(meta)
    tokenizer = models.load_tokenizer(ref)
    n_ctx = min(int(getattr(tokenizer, "model_max_length", 2048) or 2048), 2048)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads or os.cpu_count(), verbose=False)
    voice = LlamaVoice(llm, tokenizer, n_ctx=n_ctx, name=name, partner=partner,
                       run=str(run), format=format or config.get("format"),
                       context_turns=int(context_turns or config.get("context_turns") or CONTEXT_TURNS))
    return with_recall(voice, config, recall, db)
