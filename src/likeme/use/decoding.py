"""Decoding, shared by both backends of a voice (torch and llama.cpp): how tokens are picked
(`Sampling`, the CLI's sampling flags with their help), what comes back (`Generation`), and where a
reply ends and what the user sees of it (`Cleaner`: stop tokens, template markers, a transcript line's
end; `LineEnd`, `TextEnd`, `Cancelled`: transformers stopping criteria; `Streamer`: text pieces as
they are generated, held back while they might still turn into a stop string).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from likeme.errors import LikemeError

# Text that must never reach the user, even when a tokenizer does not mark it special.
TEMPLATE_MARKERS = ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>")


@dataclass
class Sampling:
    """How to pick tokens. The same names as the CLI flags (`--top-k` is `top_k`); help written once here.

    The defaults are llama.cpp's and transformers' well-tried ones, chosen for short chat messages.
    """

    temperature: float = field(default=0.8, metadata={  # llama.cpp's default: lively but on topic
        "help": "Randomness: lower is safer and duller, higher wilder (0 = always the likeliest token)."})
    top_k: int = field(default=50, metadata={  # transformers' default (llama.cpp: 40)
        "help": "Sample only among the K likeliest tokens (0 = no limit)."})
    top_p: float = field(default=0.95, metadata={  # llama.cpp's default: cuts the long tail of junk tokens
        "help": "Sample only among the likeliest tokens that together make up this probability."})
    min_p: float | None = field(default=None, metadata={  # off as in transformers; llama.cpp uses 0.05
        "help": "Drop tokens less likely than this fraction of the likeliest one (arXiv:2407.01082); "
                "try 0.05."})
    repetition_penalty: float = field(default=1.1, metadata={  # llama.cpp's long-time default: small
        # models trained on chats loop ("haha haha haha") without it; the CTRL paper's 1.2 distorts words.
        "help": "Make tokens already in the chat less likely (1 = off)."})
    max_new_tokens: int = field(default=128, metadata={  # a chat message is short; caps a runaway
        "help": "Stop a reply after this many tokens at most."})
    do_sample: bool = field(default=True, metadata={
        "flag": "sample", "help": "Sample (the default), or with --no-sample always take the likeliest token."})
    seed: int | None = field(default=None, metadata={
        "help": "Random seed: the same seed, settings and chat give the same reply."})
    num_return_sequences: int = field(default=1, metadata={
        "help": "Write this many different replies (no streaming then)."})

    def updated(self, **changes: Any) -> Sampling:
        """A copy with `changes`, checked: `Sampling().updated(top_k=0).top_k == 0`; None leaves a value as it is
        (so CLI flags that were not given change nothing). A bad name or value raises LikemeError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = [k for k in changes if k not in names]
        if unknown:
            raise LikemeError(f"unknown sampling setting {unknown[0]!r}: use one of {', '.join(sorted(names))}")
        new = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        new.check()
        return new

    def check(self) -> None:
        """Raise LikemeError for a value generate() would reject or silently misuse."""
        bad = [
            (self.temperature < 0, "temperature must be 0 or more"),
            (self.top_k < 0, "top_k must be 0 (no limit) or more"),
            (not 0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.min_p is not None and not 0 <= self.min_p <= 1, "min_p must be in [0, 1]"),
            (self.repetition_penalty <= 0, "repetition_penalty must be more than 0 (1 = off)"),
            (self.max_new_tokens < 1, "max_new_tokens must be at least 1"),
            (self.num_return_sequences < 1, "num_return_sequences must be at least 1"),
            (self.num_return_sequences > 1 and self.greedy,
             "num_return_sequences > 1 needs sampling: greedy decoding gives the same reply every time"),
        ]
        for is_bad, why in bad:
            if is_bad:
                raise LikemeError(why)

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0  # llama.cpp also reads temperature 0 as greedy

    def generate_kwargs(self) -> dict:
        """The keyword arguments of `model.generate`; sampling knobs only when sampling (transformers warns
        about them otherwise). Example: Sampling(do_sample=False).generate_kwargs() ->
        {'do_sample': False, 'max_new_tokens': 128, 'repetition_penalty': 1.1, 'num_return_sequences': 1}"""
        out: dict = {"do_sample": not self.greedy, "max_new_tokens": self.max_new_tokens,
                     "repetition_penalty": self.repetition_penalty, "num_return_sequences": self.num_return_sequences}
        if not self.greedy:
            # min_p=None too: a kwarg of generate() wins over the model's generation_config, None included,
            # so a checkpoint's own sampling defaults never sneak in.
            out.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p)
        return out


class Generation(str):
    """A generated text that also says how it was made: `.token_ids` (the new ids, the stop token included)
    and `.finish`: "stop" (the turn or text ended) or "length" (cut at max_new_tokens).

    Example: Generation("hey", token_ids=(88, 2), finish="stop") == "hey"
    """

    token_ids: tuple[int, ...]
    finish: str
    candidates: tuple[tuple[str, float], ...]  # best-of-n: every sampled reply with its judge score

    def __new__(cls, text: str, token_ids: Iterable[int] = (), finish: str = "stop"):
        self = super().__new__(cls, text)
        self.token_ids = tuple(token_ids)
        self.finish = finish
        self.candidates = ()
        return self


def ids_of(x) -> list[int]:
    return [] if x is None else [x] if isinstance(x, int) else list(x)


def unique(xs: list) -> list:
    return list(dict.fromkeys(x for x in xs if x is not None))


class Cleaner:
    """Generated ids -> the text a user sees: up to the first stop token (with `line`: up to the end of
    the first line), special tokens skipped, cut at any template marker left as text, stripped for a reply.

    Example (ChatML): ids of "hey<|im_end|>\\n" -> "hey"; ids of "ok<|im_start|>user" -> "ok";
      with line=True: ids of " hey\\nSam: yo" -> "hey"
    """

    def __init__(self, tokenizer, stop_ids: list[int], markers: list[str], strip: bool, line: bool = False):
        self.tokenizer, self.stop_ids, self.markers = tokenizer, set(stop_ids), markers
        self.strip, self.line = strip, line
        self._has_newline: dict[int, bool] = {}

    def end(self, ids: list[int]) -> int | None:
        """The index of the token that ends the text (a stop token, or with `line` one holding a newline)."""
        for i, t in enumerate(ids):
            if t in self.stop_ids or (self.line and self.newline(t)):
                return i
        return None

    def newline(self, t: int) -> bool:
        if t not in self._has_newline:
            self._has_newline[t] = "\n" in self.tokenizer.decode([t], skip_special_tokens=True)
        return self._has_newline[t]

    def __call__(self, ids: list[int], *, partial: bool = False) -> str:
        cut = self.end(ids)
        ended = cut is not None
        keep = ids if cut is None else ids[:cut] if ids[cut] in self.stop_ids else ids[: cut + 1]
        text = self.tokenizer.decode(keep, skip_special_tokens=True)
        for m in self.markers + (["\n"] if self.line else []):
            if m in text:
                text, ended = text[: text.index(m)], True
        if partial and not ended:
            # Hold back what the next token may change: half a UTF-8 character, or the start of a marker.
            text = text.rstrip("\ufffd")
            held = max((k for m in self.markers for k in range(1, len(m)) if text.endswith(m[:k])), default=0)
            text = text[: len(text) - held]
            if self.strip:
                text = text.rstrip()  # trailing spaces are shown only once something follows them
        return text.strip() if self.strip else text


class LineEnd:
    """A stopping criterion (duck-typed like `StoppingCriteria`): True for each row whose new tokens hold
    a newline, which ends a transcript reply. input_ids (B, T) -> (B,) bool."""

    def __init__(self, clean: Cleaner, prompt_len: int):
        self.clean, self.prompt_len = clean, prompt_len

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        last = input_ids[:, -1].tolist()  # (B,)
        done = [input_ids.shape[1] > self.prompt_len and self.clean.newline(t) for t in last]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def cut_by(stop: Sequence[str], text: str) -> bool:
    return any(s in text for s in stop)


class TextEnd:
    """A stopping criterion: True for each row whose new text holds one of the `stop` strings.
    input_ids (B, T) -> (B,) bool."""

    def __init__(self, clean: Cleaner, prompt_len: int, stop: Sequence[str]):
        self.clean, self.prompt_len, self.stop = clean, prompt_len, list(stop)
        self.tail = max(len(s) for s in stop) + 16  # enough tokens to hold the longest stop string

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        rows = input_ids[:, self.prompt_len:][:, -self.tail:].tolist()
        done = [cut_by(self.stop, self.clean.tokenizer.decode(r, skip_special_tokens=True)) for r in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class Cancelled:
    """A stopping criterion that ends every row once `event` (a threading.Event) is set: a client that went
    away frees the model after one more token."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Streamer:
    """A transformers streamer (`put`/`end`, the whole `BaseStreamer` interface; duck-typed so that importing
    this module stays light) that calls `callback` with
    each new piece of clean text, synchronously, so Ctrl-C in the caller stops generation at once.

    Each step decodes all the new ids again (what `TextStreamer` does too): a reply is short, and it is
    the only way to get multi-token characters and marker cuts right. The pieces always join to `.text`.
    """

    def __init__(self, clean: Cleaner, callback: Callable[[str], Any]):
        self.clean, self.callback = clean, callback
        self.ids: list[int] = []
        self.text = ""
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        self.ids.extend(value.reshape(-1).tolist())  # (1, 1) or (1,) -> one id
        self._emit(self.clean(self.ids, partial=True))

    def end(self) -> None:
        self._emit(self.clean(self.ids))

    def _emit(self, text: str) -> None:
        # A later decode that rewrites earlier text (rare: a tokenizer's space clean-up) cannot be unprinted:
        # keep what was shown, so the returned text is what the user saw.
        if text.startswith(self.text) and len(text) > len(self.text):
            piece, self.text = text[len(self.text):], text
            self.callback(piece)
