"""Text into tokens: train a tokenizer on your own text, at the character, word or subword (BPE) level.

    likeme train tokenizer --data input.txt --kind bpe --vocab-size 8000 --out runs/bpe8k
    likeme train tokenizer --db --as Ana --kind char
    likeme tokenize runs/bpe8k "Hello there"            # the pieces and their ids
    likeme tokenize runs/bpe8k --stats held-out.txt     # characters per token, ... beside SmolLM2's

setup (files or the store -> documents; the first 90% of the text to learn from, the rest to measure
on) -> train (the `tokenizers` library: byte-level BPE as GPT-2's, so every string round-trips; or a
character / word vocabulary with an unknown token) -> evaluate (characters per token, tokens per word,
unknown and byte-fallback rates on the held-out text) -> save (model/: a transformers tokenizer with
`<|endoftext|>` (bos, eos), `<|pad|>` and the ChatML tokens and template, which `likeme train pretrain
--tokenizer RUN` builds a model around).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from likeme.errors import LikemeError

SPECIALS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]  # ids 0-3 in every kind
UNK = "<|unk|>"  # char and word level only: byte-level BPE has no unknown text
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
KINDS = ("bpe", "char", "word")


@dataclass
class TokenizerConfig:
    """Text into tokens: a byte-level BPE, character or word tokenizer trained on your text (--data FILE
    or --db), with <|endoftext|> and the ChatML tokens, for likeme train pretrain --tokenizer RUN.

    \b
    likeme train tokenizer --data input.txt --kind char --out runs/chars
    likeme train tokenizer --db --as Ana --kind bpe --vocab-size 4000"""
    data: list[str] = field(default_factory=list, metadata={
        "metavar": "FILE", "help": "Plain-text files to learn from; repeat the flag for more."})
    db: str | None = field(default=None, metadata={"help": "Learn from the store's messages instead."})
    name: str | None = field(default=None, metadata={"flag": "as", "metavar": "NAME",
                                                     "help": "With the store: NAME's messages only."})
    kind: str = field(default="bpe", metadata={
        "choices": list(KINDS), "help": "bpe: byte-level BPE (GPT-2's); char: one token per character; word: one per word."})
    vocab_size: int = field(default=8000, metadata={
        "help": "Tokens at most, specials included (char: every character seen, up to this)."})
    heldout: float = field(default=0.1, metadata={"help": "The last fraction of the text, to measure on."})
    out: str | None = field(default=None, metadata={"help": "Run folder (default: $LIKEME_HOME/runs/tokenizer-KIND)."})


def build_tokenizer(texts: Iterable[str], kind: str, vocab_size: int):
    """A transformers tokenizer (`PreTrainedTokenizerFast`) trained on `texts`.

    Example: build_tokenizer(["hello world"], "char", 100).tokenize("hello") -> ['h', 'e', 'l', 'l', 'o']
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    if kind == "bpe":
        if vocab_size < 256 + len(SPECIALS):
            raise LikemeError(f"--vocab-size {vocab_size} is below the 256 bytes and {len(SPECIALS)} special tokens "
                              f"byte-level BPE starts from: use at least {256 + len(SPECIALS)}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's split, on bytes
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(texts, trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False))
        unk = None
    elif kind == "char":
        counts: dict[str, int] = {}
        for t in texts:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        chars = sorted(sorted(counts), key=lambda c: -counts[c])[: max(0, vocab_size - len(SPECIALS) - 1)]
        vocab = {t: i for i, t in enumerate(SPECIALS + [UNK] + sorted(chars))}
        tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
        tok.decoder = decoders.Fuse()  # and joined back as they were
        unk = UNK
    elif kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()  # words and runs of punctuation; spaces are not kept
        tok.train_from_iterator(texts, trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=SPECIALS + [UNK],
                                                                 show_progress=False))
        unk = UNK
    else:
        raise LikemeError(f"unknown tokenizer kind {kind!r}: use one of {', '.join(KINDS)}")
    if not any(t.strip() for t in texts):
        raise LikemeError("no text to learn a tokenizer from")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|pad|>", unk_token=unk, model_max_length=1_000_000,
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    fast.chat_template = CHATML
    return fast


def summary(cfg: TokenizerConfig, run: Path, m: dict) -> str:
    """What `likeme train tokenizer` prints when done: the vocabulary and how it cuts the held-out text."""
    return (f"{run}: {m['kind']} tokenizer, {m['vocab_size']:,} tokens; on the held-out text "
            f"{m['heldout_chars_per_token']:.2f} characters per token, {m['heldout_tokens_per_word']:.2f} tokens per "
            f"word, {m['heldout_unknown_rate']:.2%} unknown\n"
            f"See it: likeme tokenize {run} \"Hello there\"")


def train_tokenizer(cfg: TokenizerConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Train, measure and save a tokenizer; returns the run folder (`progress`, `resume`: as every recipe's;
    training takes seconds, so there is nothing to resume)."""
    from likeme import runs
    from likeme.check.tokenstats import stats
    from likeme.data.text import text_documents
    from likeme.paths import atomic_dir

    # -- setup -----------------------------------------------------------------------------------
    if resume:
        raise LikemeError("a tokenizer trains in seconds: start it again without --resume")
    run, cfg = runs.start("tokenizer", cfg, default_name=f"tokenizer-{cfg.kind}")
    docs, provenance = text_documents(cfg.data, cfg.db, cfg.name)
    text = "\n".join(docs)
    cut = int(len(text) * (1 - cfg.heldout))
    train_text, held_text = text[:cut], text[cut:]
    if not train_text.strip():
        raise LikemeError("no text to learn a tokenizer from: the files (or the store) are empty")

    # -- train -------------------------------------------------------------------------------------
    tok = build_tokenizer(train_text.splitlines(keepends=True), cfg.kind, cfg.vocab_size)
    run.begin(config=cfg, task="tokenizer", base=None, data=provenance, kind=cfg.kind)

    # -- evaluate ----------------------------------------------------------------------------------
    with run.recording():
        figures = {"kind": cfg.kind, "vocab_size": len(tok), "train_characters": len(train_text),
                   **{f"heldout_{k}": v for k, v in stats(tok, held_text or train_text).items()}}

        # -- save --------------------------------------------------------------------------------
        with atomic_dir(run.model_dir) as folder:
            tok.save_pretrained(folder)
        run.finish(figures)
    return run.path
