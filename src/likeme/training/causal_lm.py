"""The steps every causal-LM recipe (voice, instruct, prefer, pretrain, distill) takes the same way.

    tok = load_tokenizer(cfg.base)                       # padding with end-of-text when it has no pad token
    baseline_perplexity(run, model, heldout, tok.pad_token_id, cfg.batch_size)   # once; a resume keeps it
    lr = learning_rate(cfg.lr, cfg.trainable)            # 5e-4 for LoRA, 2e-5 for full fine-tuning
    ...train...
    save(run, model, tok)                                # model/: the adapter or weights, and the tokenizer

Each recipe still reads setup -> train -> evaluate -> save; these are the lines that were the same in each.
"""
from __future__ import annotations

# The Trainer keeps the checkpoint with the lowest held-out loss and loads it at the end.
KEEP_BEST = {"load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False}


def pad_with_eos(tok):
    """The tokenizer, padding with its end-of-text token when it has no pad token (SmolLM2 and GPT-2 have
    none; the padded positions carry no loss, so which token pads does not matter). Returns `tok`."""
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_tokenizer(name):
    """models.load_tokenizer(name), padding with end-of-text when it has no pad token.

    Example: a GPT-2 tokenizer (no pad token) -> tok.pad_token == tok.eos_token == "<|endoftext|>"
    """
    from likeme import models

    return pad_with_eos(models.load_tokenizer(name))


def perplexity(model, examples: list[dict], pad_id: int, batch_size: int) -> float:
    """check.evaluate.perplexity rounded to 4 decimals, as metrics.json keeps it: 88.12345 -> 88.1235."""
    from likeme.check.evaluate import perplexity as ppl

    return round(ppl(model, examples, pad_id, batch_size), 4)


def baseline_perplexity(run, model, examples: list[dict], pad_id: int, batch_size: int, others=()) -> float:
    """The untrained model's held-out perplexity, kept in run.yaml as baseline: {ppl: ...}: measured once,
    before training; a resumed run reads it back instead of measuring the half-trained model.
    others: other people's held-out turns in the person's slot (`slots.others_heldout`): their perplexity
    too (baseline: {others_ppl: ...}), for `specificity` after training."""
    if "baseline" not in run.meta:
        run.update(baseline={"ppl": perplexity(model, examples, pad_id, batch_size),
                             **({"others_ppl": perplexity(model, others, pad_id, batch_size)} if others else {})})
    return run.meta["baseline"]["ppl"]


def specificity(run, model, others: list[dict], pad_id: int, batch_size: int, ppl: float) -> dict:
    """After training, beside ppl and base_ppl: the others' perplexity in the person's slot (others_ppl,
    base_others_ppl) and specificity, in points: the person's drop from the base minus the others' drop
    (check/likeness.py). {} without other people's held-out turns."""
    base = run.meta["baseline"]
    if not others or "others_ppl" not in base:
        return {}
    others_ppl = perplexity(model, others, pad_id, batch_size)
    drop, others_drop = 1 - ppl / base["ppl"], 1 - others_ppl / base["others_ppl"]
    return {"others_ppl": others_ppl, "base_others_ppl": base["others_ppl"], "scored_others": len(others),
            "specificity": round(100 * (drop - others_drop), 2)}


def learning_rate(lr: float | None, trainable: str, *, lora: float = 5e-4, full: float = 2e-5) -> float:
    """`lr` when given, else the recipe's default: `lora` when LoRA adapters train, `full` when weights do
    (every weight, or the last blocks). A new adapter starts at zero and takes larger steps than weights
    that are already trained.

    Example: learning_rate(None, "lora") -> 5e-4; learning_rate(None, "all") -> 2e-5;
             learning_rate(None, "all", full=5e-5) -> 5e-5; learning_rate(1e-3, "lora") -> 1e-3
    """
    if lr is not None:
        return lr
    return lora if trainable == "lora" else full


def spread(examples: list, at_most: int) -> list:
    """At most about `at_most` of `examples`, evenly spread, the same ones at every evaluation (cheap
    evaluations on a CPU that still cover the whole held-out set).

    Example: spread(list(range(10)), 4) -> [0, 3, 6, 9]; spread([1, 2], 64) -> [1, 2]
    """
    return examples[:: max(1, -(-len(examples) // at_most))]


def best_step(trainer) -> int | None:
    """The step of the checkpoint the Trainer kept as best (".../checkpoint-40" -> 40), None without one."""
    best = trainer.state.best_model_checkpoint
    return int(best.rsplit("-", 1)[-1]) if best else None


def head_on_labels(collate, model):
    """`collate`, followed by `batching.head_on_labels` when the model can run its LM head on chosen
    positions (transformers' `logits_to_keep` as a tensor: Llama, Qwen, Mistral, SmolLM, ...), else `collate`
    as it is. In training the logits are the largest tensor after the weights: a batch of 8 x 512 tokens
    makes 8 x 512 x 49,152 fp32 logits (0.8 GB, and as much again for their gradient) where a voice's
    replies label about a tenth of the positions.

    Example: collate = head_on_labels(lambda b: batching.collate(b, pad_id), model)
    """
    import inspect

    from likeme import batching

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT: the wrapped model
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return collate
    return lambda batch: batching.head_on_labels(collate(batch))


def save(run, model, tok) -> None:
    """The model (a LoRA adapter or full weights, as `save_pretrained` writes them) and its tokenizer,
    with its chat template, into the run's model/ folder, written whole or not at all (run.saving_model)."""
    with run.saving_model() as folder:
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
