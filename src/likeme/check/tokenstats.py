"""What a tokenizer does to text: the pieces, and how many tokens it takes (`likeme tokenize`).

    >>> pieces(tok, "Hi you")           # a byte-level BPE
    [('Hi', 12), (' you', 40)]
    >>> stats(tok, "Hi you")
    {'characters': 6, 'tokens': 2, 'words': 2, 'chars_per_token': 3.0, 'tokens_per_word': 1.0,
     'unknown_rate': 0.0, 'byte_fallback_rate': 0.0}

unknown_rate: the share of tokens that are the unknown token (text a character or word vocabulary has
never seen). byte_fallback_rate: the share of tokens that are a piece of one character's UTF-8 bytes
(byte-level BPE spells a rare character, an emoji or a CJK sign, in bytes; nothing is unknown, but it
costs tokens).
"""
from __future__ import annotations

import re

_WORDS = re.compile(r"\S+")


def pieces(tokenizer, text: str) -> list[tuple[str, int]]:
    """(piece, id) for each token of `text` as the model sees it (no special tokens added); a piece is
    the text that one token decodes to ('�' for a part of a character spelled in bytes)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [(tokenizer.decode([i]), i) for i in ids]


def _byte_pieces(tokenizer, ids: list[int]) -> int:
    """How many tokens are part of a character spelled in bytes (byte-level BPE)."""
    tokens = tokenizer.convert_ids_to_tokens(ids)
    try:
        from tokenizers.pre_tokenizers import ByteLevel

        alphabet = set(ByteLevel.alphabet())
    except ImportError:  # pragma: no cover - tokenizers is a dependency of transformers
        return 0
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None or "ByteLevel" not in type(decoder).__name__:
        return 0
    n = 0
    for t in tokens:
        if t and all(c in alphabet for c in t) and "\ufffd" in tokenizer.convert_tokens_to_string([t]):
            n += 1
    return n


def stats(tokenizer, text: str) -> dict:
    """Characters per token, tokens per word (words: runs of non-space), unknown and byte-fallback rates."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n, words = len(ids), len(_WORDS.findall(text))
    unk = tokenizer.unk_token_id
    return {"characters": len(text), "tokens": n, "words": words,
            "chars_per_token": round(len(text) / n, 4) if n else float("nan"),
            "tokens_per_word": round(n / words, 4) if words else float("nan"),
            "unknown_rate": round(sum(1 for i in ids if unk is not None and i == unk) / n, 4) if n else 0.0,
            "byte_fallback_rate": round(_byte_pieces(tokenizer, ids) / n, 4) if n else 0.0}
