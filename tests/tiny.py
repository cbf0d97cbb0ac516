"""Tiny real models for tests: a ChatML byte-level BPE tokenizer and a 2-layer Llama, a 2-layer BERT
(plain, and as a sentence-transformers folder), built in memory; conftest.py builds each once per session.

A plain module (not a conftest) so any test can import it: `from tiny import save_tiny_causal_lm`.
Everything here is deterministic and takes well under a second on a laptop CPU.

    >>> tok = tiny_tokenizer()
    >>> tok.convert_ids_to_tokens([0, 1, 2])
    ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
    >>> tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    >>> folder = save_tiny_causal_lm(tmp_path / "tiny")   # config.json, model.safetensors, tokenizer
    >>> likeme.models.load_causal_lm(folder)              # loads like any local model
"""
from __future__ import annotations

from pathlib import Path

# Same special tokens, ids and roles as SmolLM2-Instruct, so code tested on the tiny model meets the
# same conventions on the real one: <|im_end|> ends a turn and is the eos (and, as there, the pad).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# SmolLM2's ChatML template without its default system prompt (which would dominate tiny examples).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SENTENCES = [
    "hey, are you coming tonight?",
    "yes! I'll be there around eight.",
    "can you bring the cake?",
    "sure, chocolate or lemon?",
    "chocolate, obviously. see you soon",
    "ok see you :)",
    "did you see the game yesterday?",
    "no, I was working late. who won?",
]

VOCAB_SIZE = 320  # 3 special tokens + 256 byte symbols + ~60 merges: every string encodes, ids stay small


def tiny_tokenizer(vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE trained in memory on `SENTENCES`, wrapped for transformers, with a ChatML template.

    Byte-level, so any text (emoji, accents) encodes and decodes back unchanged:
    `tok.decode(tok("héllo 👋")["input_ids"]) == "héllo 👋"`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,  # ids 0, 1, 2 in this order, as in SmolLM2
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(SENTENCES * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=256,
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def tiny_causal_lm(tokenizer=None, *, seed: int = 0, tie_word_embeddings: bool = True):
    """A random-weight Llama: 2 layers, hidden 64, 4 heads (2 key/value heads, grouped like SmolLM2).

    About 90k parameters; a forward pass on 32 tokens takes a millisecond.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return model


def save_tiny_causal_lm(folder: str | Path, *, seed: int = 0) -> Path:
    """Write the tiny model and its tokenizer to `folder`, as `save_pretrained` does for any model."""
    folder = Path(folder)
    tokenizer = tiny_tokenizer()
    tiny_causal_lm(tokenizer, seed=seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_gguf(path: str | Path, *, seed: int = 0, quantize: str = "F32") -> Path:
    """Write the tiny model and tokenizer as a llama.cpp GGUF file (`likeme.use.export.write_gguf`), as
    SmolLM2's is packaged.

    `quantize="Q8_0"` stores the 2-D weights 8-bit (what llama.cpp calls Q8_0) to exercise dequantizing;
    "F32" stores them exactly, so loading the file gives back the tiny model's logits bit for bit.
    """
    from likeme.use.export import write_gguf

    tokenizer = tiny_tokenizer()
    return write_gguf(tiny_causal_lm(tokenizer, seed=seed), tokenizer, path, quant=quantize.lower(),
                      chat_template=CHATML_TEMPLATE, eos_ids=[tokenizer.eos_token_id], name="likeme tiny llama")


def whatsapp_export(path: str | Path, sessions: int, start, turns, minutes: int = 2) -> Path:
    """A WhatsApp (Android) export of a group chat: one session a day from `start`, `turns(s)` giving
    session s's [(author, text), ...], a message every `minutes`.

    Example: turns = lambda s: [("Sam", "plans?"), ("Ana", "pizza")], sessions=1, start 1 Jan 2024 18:00
      -> "01/01/2024, 18:00 - Sam: plans?\n01/01/2024, 18:02 - Ana: pizza\n"
    """
    from datetime import timedelta

    lines, t = [], start
    for s in range(sessions):
        for who, text in turns(s):
            lines.append(f"{t:%d/%m/%Y, %H:%M} - {who}: {text}")
            t += timedelta(minutes=minutes)
        t += timedelta(days=1)
    Path(path).write_text("\n".join(lines) + "\n", "utf-8")
    return Path(path)


# Labelled texts (three intents) and the BERT whose vocabulary is trained on them.
ROWS = [("where is my card", "card"), ("my card never came", "card"), ("card not here yet", "card"),
        ("send money to my friend", "transfer"), ("the transfer failed", "transfer"), ("transfer cash now", "transfer"),
        ("what is the euro rate", "rate"), ("rate for dollars?", "rate"), ("exchange rate today", "rate")]


def save_tiny_bert(folder: Path) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece tokenizer trained in memory, saved like any model folder."""
    import torch
    from tokenizers import (
        Tokenizer,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator([t for t, _ in ROWS] * 3, trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                                                              show_progress=False))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", wp.token_to_id("[CLS]")), ("[SEP]", wp.token_to_id("[SEP]"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


LINES = {  # three people with three habits: Ana lower case, no full stop; Sam asks; Bo SHOUTS
    "Ana": ["pizza tonight obviously", "i guess so", "see you there then", "always lol", "sure thing",
            "no idea tbh", "running late sorry", "love that"],
    "Sam": ["Plans for tonight?", "Who is coming?", "Are you sure about that?", "What time works?",
            "Should we book a table?", "Did you see the game?"],
    "Bo": ["YES. COUNT ME IN.", "NO WAY.", "BRING SNACKS.", "I AM ON MY WAY.", "GREAT IDEA."],
}


def whatsapp_chat(path: Path, sessions: int, start, seed: int = 0) -> Path:
    """One session a day, 6 messages each, every person writing in their habit (LINES)."""
    import random

    rng = random.Random(seed)
    return whatsapp_export(path, sessions, start,
                           lambda s: [(who, rng.choice(LINES[who])) for who in ("Sam", "Ana", "Bo", "Ana", "Sam", "Ana")])


def save_tiny_sentence_model(folder: Path) -> Path:
    """A 2-layer, 32-dim BERT with mean pooling and a cased WordPiece vocabulary, saved as a
    sentence-transformers folder (modules.json, config.json, model.safetensors, tokenizer)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=False)  # cased: SHOUTING stays visible
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator([t for texts in LINES.values() for t in texts] * 3,
                           trainers.WordPieceTrainer(vocab_size=300, special_tokens=special, show_progress=False))
    cls, sep = wp.token_to_id("[CLS]"), wp.token_to_id("[SEP]")
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                      special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64))
    hf = folder / "hf"
    bert.save_pretrained(hf)
    tok.save_pretrained(hf)
    transformer = Transformer(str(hf), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu").save(str(folder / "st"))
    return folder / "st"


def interrupt_at(step: int):
    """A Trainer callback that sends this process a real SIGINT as step `step` begins, as Ctrl-C would."""
    import os
    import signal

    from transformers import TrainerCallback

    class InterruptAt(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == step - 1:
                os.kill(os.getpid(), signal.SIGINT)

    return InterruptAt()


def likeme_cli(*args, input: str | None = None):
    """`likeme ARGS` through the real entry point (likeme.cli.main), in this process, with click's test
    streams: the exit code, stdout and stderr a subprocess would give, without its ~10 s of imports.
    Returns a subprocess.CompletedProcess (returncode, stdout, stderr)."""
    import subprocess

    from click.testing import CliRunner

    from likeme.cli.main import main

    argv = [str(a) for a in args]
    with CliRunner().isolation(input=input) as streams:
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return subprocess.CompletedProcess(["likeme", *argv], code, out, err)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium() -> str | None:
    """Debian's chromium, for pages opened in a real headless browser (None: tests skip)."""
    import shutil
    from pathlib import Path

    return next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()),
                shutil.which("chromium"))


# A small group chat in a store, and instruction records: shared by the tests of several layers

def three_person_store(path, sessions=12):
    """A store with `sessions` sessions of one group chat: Sam, Ana (three turns) and Bo (one photo)."""
    from datetime import datetime, timedelta

    from likeme.data.ingest import Message
    from likeme.data.store import Store

    msgs, t = [], datetime(2024, 1, 1, 9)
    for s in range(sessions):
        for who, text in [("Sam", f"hi {s}"), ("Ana", "hey"), ("Ana", "what's up"), ("Bo", "yo"),
                          ("Ana", "ok"), ("Sam", "pic"), ("Bo", "")]:
            kind = "media" if who == "Bo" and not text else "text"
            msgs.append(Message("t", "group", who, t, text, kind))
            t += timedelta(minutes=1)
        t += timedelta(hours=12)  # a new session every time
    store = Store(path)
    store.add_messages(msgs)
    return store


RECORDS = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
           {"instruction": "Say hi.", "input": "", "output": "hi there"},
           {"instruction": "Name a colour.", "output": "blue"},
           {"instruction": "Say bye.", "input": "", "output": "see you"}] * 3
