"""What one request may ask of the server, and how many requests it holds at once (`likeme serve` flags)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Limits:
    """What one request may ask for, and how many may be in the server at once."""

    max_tokens: int = field(default=512, metadata={"help": "Most new tokens one reply may ask for (max_tokens)."})
    default_tokens: int = field(default=128, metadata={
        "help": "New tokens of a chat reply that does not say (a chat message is short)."})
    max_n: int = field(default=4, metadata={"help": "Most replies one request may ask for (n)."})
    max_prompt_tokens: int = field(default=2048, metadata={"help": "Longest prompt, in tokens."})
    max_inputs: int = field(default=256, metadata={"help": "Most texts in one embeddings/classify/likeness request."})
    max_body_bytes: int = field(default=1_000_000, metadata={"help": "Largest request body, in bytes."})
    max_concurrent: int = field(default=1, metadata={
        "help": "Generations at the same time (1: a seed gives the same reply every time; each generation "
                "already uses every CPU core)."})
    max_queue: int = field(default=32, metadata={
        "help": "Requests that may wait for a free slot; beyond them a 429 at once."})
