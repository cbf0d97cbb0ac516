"""Instruction tuning: teach a model to answer, with the loss on the answers only.

    likeme train instruct --data alpaca.json                 # instruction / input / output records
    likeme train instruct --data chats.jsonl --base runs/gpt  # {"messages": [{"role": ..., "content": ...}]}
    likeme train instruct --data faq.txt                     # "Question: ... Answer: ..." text
    likeme chat runs/instruct -m "Name three colours."

setup (the file -> conversations -> examples in the base model's chat template, or the Alpaca prompt
for a model without one; labels on the assistant's turns only; a seeded tenth held out) -> train
(transformers' Trainer, LoRA by default, early stopping on the held-out loss, checkpoints, Ctrl-C) ->
evaluate (perplexity of the held-out answers, base and final) -> save (model/ with the adapter or
weights and the tokenizer; run.yaml format: instruct, so `likeme chat` and `likeme serve` prompt it
as it was trained).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import LoraFields, RunFields, TrainingFields, quantize_field
from likeme.errors import LikemeError

QA = re.compile(r"Question:\s*(.*?)\s*Answer:\s*(.*?)\s*(?=Question:|\Z)", re.S)


@dataclass
class InstructConfig(RunFields, LoraFields, TrainingFields):
    """Instruction tuning: answers to instructions (Alpaca JSON/JSONL, chat messages JSONL or
    'Question: ... Answer: ...' text), the loss on the answers only.

    \b
    likeme train instruct --data alpaca.json
    likeme train instruct --data faq.txt --base runs/gpt --trainable all"""
    run_name = "instruct"
    seeded = "split, order, LoRA init"
    data: str = field(default="", metadata={
        "metavar": "FILE", "help": "Alpaca JSON/JSONL (instruction, input, output), chat JSONL ({\"messages\": [...]}) "
                                   "or plain text of 'Question: ... Answer: ...'."})
    base: str = field(default="smollm2-135m", metadata={"help": "The model to tune: a name, folder, run or hub id."})
    trainable: str = field(default="lora", metadata={"choices": ["lora", "all"], "help": "LoRA adapters, or every weight."})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank (the voice recipe's measured default)."})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scale numerator (2 x rank)."})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the examples (few examples: more passes)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many steps (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={"help": "Peak learning rate (default 5e-4 for LoRA, 2e-5 for all)."})
    block_size: int = field(default=512, metadata={"help": "Tokens per example at most (longer ones are cut)."})
    heldout: float = field(default=0.1, metadata={"help": "Fraction of examples held out (seeded, at least one)."})
    eval_every: int = field(default=20, metadata={"help": "Evaluate, and write a checkpoint, every N steps."})
    patience: int = field(default=3, metadata={"help": "Stop after this many evaluations without improvement."})
    quantize: str | None = quantize_field()


def read_conversations(path: str | Path) -> list[list[dict]]:
    """The file -> conversations of {"role", "content"} messages.

    Example: {"instruction": "Add", "input": "2 and 3", "output": "5"} ->
      [{"role": "user", "content": "Add\\n\\n2 and 3"}, {"role": "assistant", "content": "5"}]
    """
    from likeme.data import tables
    from likeme.errors import IngestError

    path = Path(path)
    if not path.is_file():
        raise LikemeError(f"{path}: no such file")
    if path.suffix not in (".json", ".jsonl", ".ndjson"):
        text = path.read_text("utf-8", errors="replace")
        pairs = QA.findall(text)
        if not pairs:
            raise LikemeError(f"{path}: no 'Question: ... Answer: ...' pairs (or give .json / .jsonl records)")
        return [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in pairs if q and a]
    out = []
    try:
        for place, rec in tables.records(path):
            if isinstance(rec.get("messages"), list):
                msgs = rec["messages"]
                if not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                           and isinstance(m.get("content"), str) for m in msgs):
                    raise LikemeError(f"{path}, {place}: each message needs a role (system, user, assistant) and a content string")
                out.append([{"role": m["role"], "content": m["content"]} for m in msgs])
            elif isinstance(rec.get("instruction"), str) and isinstance(rec.get("output"), str):
                ask = rec["instruction"].strip() + (f"\n\n{rec['input'].strip()}" if str(rec.get("input") or "").strip() else "")
                out.append([{"role": "user", "content": ask}, {"role": "assistant", "content": rec["output"].strip()}])
            else:
                raise LikemeError(f"{path}, {place}: a record needs instruction and output (Alpaca), or messages")
    except IngestError as e:
        raise LikemeError(str(e)) from None
    return out


def summary(cfg: InstructConfig, run: Path, m: dict) -> str:
    """What `likeme train instruct` prints when done: the held-out perplexity of the answers."""
    return (f"{run}: held-out perplexity of the answers {m['base_ppl']:.2f} (base) -> {m['ppl']:.2f} "
            f"after {m['steps']} steps\nAsk it: likeme chat {run}")


def train_instruct(cfg: InstructConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Tune, evaluate and save; returns the run folder. Ctrl-C: a checkpoint and `runs.Interrupted`."""
    from likeme import batching, models, runs
    from likeme.check import plots
    from likeme.data.examples import instruct_example

    # -- setup -----------------------------------------------------------------------------------
    if not resume and not cfg.data:
        raise LikemeError("give the examples to learn from: --data FILE")
    run, cfg = runs.start("instruct", cfg, default_name="instruct", resume=resume)
    from transformers import EarlyStoppingCallback, set_seed

    from likeme.data.store import file_data
    from likeme.training import causal_lm, trainable
    from likeme.training import trainer as tr

    set_seed(cfg.seed)
    tok = causal_lm.load_tokenizer(cfg.base)
    conversations = read_conversations(cfg.data)
    examples = [e for e in (instruct_example(tok, c, cfg.block_size) for c in conversations) if e]
    if len(examples) < 2:
        raise LikemeError(f"{cfg.data}: {len(examples)} usable example(s): instruction tuning needs at least 2 "
                          "(one to train on, one held out)")
    random.Random(cfg.seed).shuffle(examples)
    n_held = max(1, round(len(examples) * cfg.heldout))
    heldout, train = examples[:n_held], examples[n_held:]
    model, _ = models.load_causal_lm(cfg.base, device=tr.device(), quantize=cfg.quantize)
    run.begin(config=cfg, task="causal-lm", base=cfg.base, data=file_data(cfg.data),
              prompt="chat template" if getattr(tok, "chat_template", None) else "alpaca",
              voice_config={"format": "instruct"})  # how chat, serve and export prompt it (generate.Voice)
    with run.recording():
        causal_lm.baseline_perplexity(run, model, heldout, tok.pad_token_id, cfg.batch_size)
        model = trainable.select(model, cfg.trainable, task_type="CAUSAL_LM",
                                 lora=trainable.Lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout))
        model.train()

        # -- train -------------------------------------------------------------------------------
        _, total = tr.steps(len(train), cfg.batch_size, cfg.epochs, cfg.max_steps)
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every, max_steps=total,
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
            learning_rate=causal_lm.learning_rate(cfg.lr, cfg.trainable), lr_scheduler_type="cosine",
            warmup_steps=max(1, total // 20), **causal_lm.KEEP_BEST, include_num_input_tokens_seen="non_padding")
        trainer = tr.make_trainer(
            run, model, args, train,
            causal_lm.head_on_labels(lambda batch: batching.collate(batch, tok.pad_token_id), model), progress=progress,
            total_steps=total, eval_dataset=heldout,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.patience), *callbacks])
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        model = trainer.model
        figures = {"base_ppl": run.meta["baseline"]["ppl"],
                   "ppl": causal_lm.perplexity(model, heldout, tok.pad_token_id, cfg.batch_size),
                   "train_examples": len(train), "heldout_examples": len(heldout),
                   "steps": trainer.state.global_step, "train_tokens": int(trainer.state.num_input_tokens_seen),
                   "seconds": run.metrics.rows()[-1]["seconds"]}

        # -- save --------------------------------------------------------------------------------
        causal_lm.save(run, model, tok)
        plots.learning_curves(run.path, ylabel="loss (nats/token)")
        run.finish(figures)
    return run.path
