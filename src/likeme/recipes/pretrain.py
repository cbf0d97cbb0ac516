"""A GPT from scratch: pretrain a small Llama-style decoder on raw text (or continue a model's pretraining).

    likeme train tokenizer --data input.txt --kind char --out runs/chars
    likeme train pretrain --data input.txt --tokenizer runs/chars --max-steps 2000 --out runs/gpt
    likeme generate runs/gpt "ROMEO:"
    likeme train pretrain --data notes.txt --base smollm2-135m --max-steps 200     # new knowledge, same model

setup (text -> documents -> one token stream with <|endoftext|> after each document -> the first 90%
cut into contiguous (block_size) blocks to train on, the rest to validate; a model built from a
config, no pretrained weights) -> train (transformers' Trainer: AdamW with warm-up and cosine decay to
a tenth of the peak, gradient clipping, the validation loss and a short sample at each evaluation, a
checkpoint there and on Ctrl-C) -> evaluate (loss on every validation block, and per character, so
that tokenizers compare fairly) -> save (model/ with the weights, tokenizer and chat template).

The model is transformers' Llama (RoPE, RMSNorm, SwiGLU; tied embeddings), so the run folder is an
ordinary causal LM: `likeme generate`, `likeme chat` after `likeme train voice --base RUN`, export.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from likeme.config import RunFields, TrainingFields
from likeme.errors import LikemeError


@dataclass
class PretrainConfig(RunFields, TrainingFields):
    """A GPT from scratch: pretrain a small Llama-style model on raw text (--data FILE or --db), with a
    tokenizer from likeme train tokenizer; or continue a model's pretraining (--base MODEL).

    \b
    likeme train tokenizer --data input.txt --kind char --out runs/chars
    likeme train pretrain --data input.txt --tokenizer runs/chars --block-size 64 --max-steps 2000
    likeme train pretrain --data notes.txt --base smollm2-135m --max-steps 200"""
    run_name = "pretrain"
    seeded = "initial weights, data order"
    data: list[str] = field(default_factory=list, metadata={
        "metavar": "FILE", "help": "Plain-text files to learn from (each one document); repeat the flag for more."})
    db: str | None = field(default=None, metadata={
        "help": "Learn from the store's messages instead (one document per session)."})
    name: str | None = field(default=None, metadata={"flag": "as", "metavar": "NAME",
                                                     "help": "With the store: NAME's messages only."})
    tokenizer: str | None = field(default=None, metadata={
        "help": "Tokenizer: a `likeme train tokenizer` run, or any model's (needed from scratch)."})
    base: str | None = field(default=None, metadata={
        "help": "Continue the pretraining of this model (its weights and tokenizer) instead of starting from scratch."})
    layers: int = field(default=4, metadata={"help": "Transformer blocks (nanoGPT's CPU baby GPT: 4)."})
    heads: int = field(default=4, metadata={"help": "Attention heads per block (dim must divide by it)."})
    dim: int = field(default=128, metadata={"help": "Width of the residual stream (the MLP is 4x wider)."})
    block_size: int = field(default=256, metadata={"help": "Tokens per training block (the context length)."})
    batch_size: int = field(default=12, metadata={"help": "Blocks per optimizer step (nanoGPT's CPU setting: 12)."})
    max_steps: int | None = field(default=None, metadata={"help": "Optimizer steps (default: one pass over the blocks)."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training blocks, when --max-steps is not given."})
    lr: float | None = field(default=None, metadata={
        "help": "Peak learning rate (default 1e-3 from scratch, nanoGPT's for small models; 5e-5 with --base)."})
    warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps (nanoGPT: 100), at most a tenth of all."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (not on norms and biases)."})
    grad_clip: float = field(default=1.0, metadata={"help": "Clip the gradient norm to this."})
    heldout: float = field(default=0.1, metadata={"help": "The last fraction of the token stream, to validate on."})
    eval_every: int = field(default=250, metadata={"help": "Validate (and write a checkpoint) every N steps."})
    eval_max: int = field(default=240, metadata={
        "help": "Validation blocks scored at each evaluation, evenly spread (metrics.json scores them all)."})
    sample_tokens: int = field(default=64, metadata={"help": "Tokens of the sample logged at each evaluation (0: none)."})


def build_model(vocab_size: int, cfg: PretrainConfig, tokenizer):
    """A Llama-style decoder from a config, randomly initialised (transformers' init: normal(0, 0.02))."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.dim, intermediate_size=4 * cfg.dim, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, max_position_embeddings=cfg.block_size,
        tie_word_embeddings=True,  # GPT-2 and SmolLM2 share the embedding and the LM head: fewer weights
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def summary(cfg: PretrainConfig, run: Path, m: dict) -> str:
    """What `likeme train pretrain` prints when done: the validation loss per token and per character."""
    return (f"{run}: validation loss {m['val_loss']:.4f} per token ({m['val_loss_per_char']:.4f} per character) "
            f"after {m['steps']} steps, {m['parameters']:,} parameters\n"
            f"Write with it: likeme generate {run} \"Once upon a time\"")


def train_pretrain(cfg: PretrainConfig, *, resume: bool = False, progress: bool = True, callbacks=()) -> Path:
    """Pretrain (or continue pretraining), evaluate and save; returns the run folder. Ctrl-C stops after
    the current step with a checkpoint and raises `runs.Interrupted`; `resume=True` continues it."""
    import math

    from likeme import batching, models, runs
    from likeme.check import plots
    from likeme.check.evaluate import perplexity
    from likeme.data.text import blocks, text_documents, token_stream

    # -- setup -----------------------------------------------------------------------------------
    run, cfg = runs.start("pretrain", cfg, default_name="pretrain", resume=resume)
    if not cfg.base and not cfg.tokenizer:
        raise LikemeError("from scratch, a model needs a tokenizer: --tokenizer RUN (likeme train tokenizer "
                          "--data FILE --kind char|bpe) or a model's, e.g. --tokenizer smollm2-135m; or --base MODEL")
    if not cfg.base and cfg.dim % cfg.heads:
        raise LikemeError(f"--dim {cfg.dim} does not divide into --heads {cfg.heads}")
    from transformers import set_seed

    from likeme.training import causal_lm
    from likeme.training import trainer as tr
    from likeme.training.callbacks import SampleCallback

    set_seed(cfg.seed)
    tok = causal_lm.load_tokenizer(cfg.base or cfg.tokenizer)
    eos = tok.eos_token_id
    if eos is None:
        raise LikemeError(f"the tokenizer of {cfg.base or cfg.tokenizer} has no end-of-text token to separate documents")
    docs, provenance = text_documents(cfg.data, cfg.db, cfg.name)
    text_chars = sum(len(d) for d in docs)
    stream = token_stream([tok(d, add_special_tokens=False, verbose=False)["input_ids"] for d in docs], eos)
    cut = int(len(stream) * (1 - cfg.heldout))
    train, heldout = blocks(stream[:cut], cfg.block_size), blocks(stream[cut:], cfg.block_size)
    if not train or not heldout:
        raise LikemeError(f"{len(stream):,} tokens is too little text for blocks of {cfg.block_size} with "
                          f"{cfg.heldout:.0%} held out: give more text, or a smaller --block-size")
    model = models.load_causal_lm(cfg.base)[0] if cfg.base else build_model(len(tok), cfg, tok)
    run.begin(config=cfg, task="causal-lm", base=cfg.base, data=provenance,
              tokenizer=None if cfg.base else cfg.tokenizer,
              parameters=sum(p.numel() for p in model.parameters()))
    with run.recording():
        model.to(tr.device()).train()

        # -- train -------------------------------------------------------------------------------
        _, total = tr.steps(len(train), cfg.batch_size, cfg.epochs, cfg.max_steps)
        args = tr.arguments(
            run, seed=cfg.seed, precision=cfg.precision, eval_steps=cfg.eval_every, max_steps=total,
            per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
            # every weight trains: from scratch nanoGPT's 1e-3 for small models, continuing a model 5e-5
            learning_rate=causal_lm.learning_rate(cfg.lr, "all", full=5e-5 if cfg.base else 1e-3),
            weight_decay=cfg.weight_decay, max_grad_norm=cfg.grad_clip,
            adam_beta2=0.99,  # nanoGPT's for small models and few tokens per step
            lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
            warmup_steps=min(cfg.warmup_steps, max(1, total // 10)), logging_steps=max(1, min(10, cfg.eval_every)),
            include_num_input_tokens_seen="non_padding")
        trainer = tr.make_trainer(
            run, model, args, train, lambda batch: batching.collate(batch, tok.pad_token_id),
            progress=progress, total_steps=total,
            eval_dataset=causal_lm.spread(heldout, cfg.eval_max),
            callbacks=[SampleCallback(run.metrics, tok, [[eos]], cfg.sample_tokens), *callbacks])
        tr.fit(trainer, run, resume=resume)

        # -- evaluate ----------------------------------------------------------------------------
        model = trainer.model
        val_loss = math.log(perplexity(model, heldout, tok.pad_token_id, cfg.batch_size))
        chars_per_token = text_chars / (len(stream) - len(docs))  # <|endoftext|> marks are not text
        figures = {"val_loss": round(val_loss, 4), "val_loss_per_char": round(val_loss / chars_per_token, 4),
                   "chars_per_token": round(chars_per_token, 4), "train_blocks": len(train),
                   "val_blocks": len(heldout), "train_tokens": int(trainer.state.num_input_tokens_seen),
                   "steps": trainer.state.global_step, "parameters": run.meta["parameters"],
                   "seconds": run.metrics.rows()[-1]["seconds"]}

        # -- save --------------------------------------------------------------------------------
        causal_lm.save(run, model, tok)
        plots.learning_curves(run.path, ylabel="loss (nats/token)")
        run.finish(figures)
    return run.path
