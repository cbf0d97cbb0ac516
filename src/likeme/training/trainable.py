"""Which parameters train, for causal LMs and encoders alike.

    select(model, "lora", lora=Lora(r=16))          PEFT LoRA on every linear layer (the head, if any,
                                                     trained in full through `modules_to_save`)
    select(model, "all")                             every weight
    select(model, "last-blocks", last_blocks=2)      the last N transformer blocks, the final norm, the head
    select(model, "head", head="score")              the head alone

`head` names a NEW module (a classifier's `score`, an encoder classifier's `head`) that always trains;
a causal LM's own LM head is left out (in SmolLM2 it is tied to the input embedding, which would then
train too). Blocks are found in the shapes of Llama (`model.layers`), BERT (`encoder.layer`) and GPT-2
(`transformer.h`), PEFT-wrapped or not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from likeme.errors import LikemeError

METHODS = ("lora", "all", "last-blocks", "head")


@dataclass
class Lora:
    r: int = 16  # the QLoRA paper's sweet spot for small data
    alpha: int = 32  # scale numerator: 2 x rank, the common choice
    dropout: float = 0.05  # small data overfits


def select(model, method: str, *, last_blocks: int = 1, head: str | None = None, lora: Lora | None = None,
           task_type: str | None = None):
    """Freeze all but what `method` names; returns the model to train (a PeftModel for "lora").

    Example: select(llama, "last-blocks", last_blocks=1) -> requires_grad only in model.layers[-1] and model.norm
    """
    if method not in METHODS:
        raise LikemeError(f"unknown trainable set {method!r}: use one of {', '.join(METHODS)}")
    if method == "lora":
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
            model = prepare_model_for_kbit_training(model)  # QLoRA: norms in fp32, inputs that carry gradients
        lora = lora or Lora()
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=linear_layers(model, head), task_type=task_type,
                            modules_to_save=[head] if head else None)
        return get_peft_model(model, config)
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise LikemeError("a base loaded with --quantize trains through LoRA adapters only: use --trainable lora")
    for p in model.parameters():
        p.requires_grad_(method == "all")
    parts = [getattr(model, head)] if head else []
    if method == "last-blocks":
        blocks = blocks_of(model)
        if not 0 < last_blocks <= len(blocks):
            raise LikemeError(f"--last-blocks must be between 1 and {len(blocks)} for this model")
        parts += blocks[-last_blocks:]
        norm = final_norm(model)
        if norm is not None:
            parts.append(norm)
    elif method == "head" and not head:
        raise LikemeError("--trainable head needs a model with a new head (a classifier)")
    for part in parts:
        for p in part.parameters():
            p.requires_grad_(True)
    return model


def blocks_of(model) -> list:
    """The transformer blocks, bottom to top: Llama's `model.layers`, BERT's `encoder.layer`, GPT-2's
    `transformer.h`, inside a PEFT wrapper or a classifier too."""
    model = getattr(model, "base_model", model)
    model = getattr(model, "model", model) if hasattr(model, "peft_config") else model
    for holder in (getattr(model, "model", None), getattr(model, "encoder", None), getattr(model, "transformer", None),
                   getattr(getattr(model, "encoder", None), "encoder", None), model):
        for attr in ("layers", "layer", "h", "blocks"):
            if holder is not None and hasattr(holder, attr) and len(getattr(holder, attr)):
                return list(getattr(holder, attr))
    raise LikemeError("cannot find the transformer blocks of this model: train it with lora or all")


def final_norm(model):
    """The norm after the last block, before the head (Llama's `model.norm`, GPT-2's `transformer.ln_f`), or None."""
    for holder in (getattr(model, "model", None), getattr(model, "transformer", None)):
        for attr in ("norm", "ln_f"):
            if holder is not None and isinstance(getattr(holder, attr, None), torch.nn.Module):
                return getattr(holder, attr)
    return None


def linear_layers(model, head: str | None = None) -> list[str]:
    """Names of the nn.Linear layers LoRA adapts: every one but the head, the LM head and BERT's unused pooler.

    Example (Llama): ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']
    """
    skip = tuple(x for x in (head, "lm_head", "encoder.pooler", "pooler") if x)
    names = {n.split(".")[-1] for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and not n.startswith(skip)}
    return sorted(names)


def param_groups(model, lr: float, head_lr: float | None = None) -> list[dict]:
    """The trainable parameters as optimizer groups: the new head (a module named `score` or `head`, PEFT's
    trained copy of it included) at head_lr, the rest at lr (ULMFiT's discriminative rates).

    Example: last-blocks on SmolLM2 -> [{"params": [block 29's, final norm], "lr": 2e-4},
                                        {"params": [score.weight], "lr": 2e-3}]
    """
    head, body = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (head if head_lr is not None and {"score", "head"} & set(name.split(".")) else body).append(p)
    return [g for g in ({"params": body, "lr": lr}, {"params": head, "lr": head_lr}) if g["params"]]
