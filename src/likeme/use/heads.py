"""Classification heads on a pretrained body: what the classifier recipe trains and `classifier.py` loads.

Two backbones:
- a causal LM (smollm2-135m, any Llama-like *ForCausalLM): transformers' own
  `AutoModelForSequenceClassification`, the LM head replaced by a `hidden -> n_classes` linear `score`
  read at the LAST NON-PADDING token (in a causal LM only the last position has seen the whole text).
  Rows are padded on the right with the EOS token and `config.pad_token_id = eos`; texts never hold
  the eos id (`classifier.encode`), so "the rightmost token that is not pad", which transformers looks
  for, is the last token of the text.
- an encoder (`minilm`, any BERT-like model): the mean of the token states over the attention mask (how
  all-MiniLM-L6-v2 was trained to pool) + a linear head: `MeanPoolClassifier`.

Imported only inside functions (it imports torch).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from likeme import models
from likeme.errors import LikemeError
from likeme.paths import first_line


def last_token(hidden, attention_mask):
    """The state of each row's last real token, right padding: hidden (B, T, H), mask (B, T) -> (B, H)."""
    last = attention_mask.sum(-1) - 1  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden, attention_mask):
    """The mean of the real tokens' states: hidden (B, T, H), mask (B, T) -> (B, H)."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class MeanPoolClassifier(nn.Module):
    """An encoder, the mean of its token states over the attention mask, and a linear head.

    forward(input_ids (B, T), attention_mask (B, T)) -> .logits (B, n_classes)
    Saved as the encoder's own `save_pretrained` folder + head.safetensors.
    """

    def __init__(self, encoder, n_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.config.hidden_size, n_classes)
        nn.init.normal_(self.head.weight, std=getattr(encoder.config, "initializer_range", 0.02))
        nn.init.zeros_(self.head.bias)

    def features(self, input_ids, attention_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        return mean_pool(h, attention_mask)  # (B, H)

    def forward(self, input_ids, attention_mask, labels=None):
        return SequenceClassifierOutput(logits=self.head(self.features(input_ids, attention_mask)))

    def save_pretrained(self, folder, **kwargs):
        from safetensors.torch import save_file

        self.encoder.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(Path(folder) / "head.safetensors"))

    @classmethod
    def from_pretrained(cls, folder):
        from safetensors.torch import load_file
        from transformers import AutoModel

        encoder = quiet_load(AutoModel.from_pretrained, folder)
        head = load_file(str(Path(folder) / "head.safetensors"))
        model = cls(encoder, head["weight"].shape[0])
        model.head.load_state_dict(head)
        return model


def features(model, input_ids, attention_mask, kind: str):
    """What the head reads (B, H): the last real token's final state (causal), the mean (encoder)."""
    if kind == "encoder":
        return model.features(input_ids, attention_mask)
    h = getattr(model, model.base_model_prefix)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return last_token(h, attention_mask)  # (B, T, H) -> (B, H)


def head_of(model):
    """The classification head: `score` (transformers' causal classifiers) or `head` (MeanPoolClassifier)."""
    return getattr(model, "score", None) or model.head


def backbone_kind(base: str) -> str:
    """'causal' for a decoder-only LM (a *ForCausalLM or a classifier built on one), 'encoder' otherwise.

    Example: "smollm2-135m" -> "causal"; "minilm" (a BertModel) -> "encoder"
    """
    ref = models.resolve(base)
    if ref.task == "causal-lm":
        return "causal"
    if ref.task == "sentence-embedding":
        return "encoder"
    try:
        config = json.loads((models.weights_path(ref) / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise LikemeError(f"{base}: cannot read its config.json ({e})") from None
    if config.get("is_encoder_decoder"):
        raise LikemeError(f"{base} is an encoder-decoder model: use a causal LM (smollm2-135m) or an encoder (minilm)")
    archs = config.get("architectures") or []
    return "causal" if any(a.endswith("ForCausalLM") for a in archs) or config.get("is_decoder") else "encoder"


def new_classifier(base: str, labels: list[str]):
    """(model, tokenizer, kind) for a new classifier over `labels`: the pretrained body, a fresh head.

    The causal model pads with its EOS token on the right; `config.pad_token_id` is set to it, which is
    what LlamaForSequenceClassification needs to find the last real token of each row.
    """
    kind = backbone_kind(base)
    folder = models.weights_path(base)
    tok = models.load_tokenizer(base)
    id2label = dict(enumerate(labels))
    if kind == "causal":
        from transformers import AutoModelForSequenceClassification

        if tok.eos_token_id is None:
            raise LikemeError(f"{base}: its tokenizer has no EOS token to pad with: use another base model")
        tok.pad_token = tok.eos_token
        tok.padding_side = "right"
        model = quiet_load(AutoModelForSequenceClassification.from_pretrained, folder, num_labels=len(labels),
                           id2label=id2label, label2id={v: k for k, v in id2label.items()},
                           pad_token_id=tok.eos_token_id)
        model.config.use_cache = False  # no KV cache in a classifier (and none in the eval outputs)
    else:
        from transformers import AutoModel

        if tok.pad_token_id is None:
            raise LikemeError(f"{base}: its tokenizer has no padding token: use another base model")
        encoder = quiet_load(AutoModel.from_pretrained, folder)
        encoder.config.id2label, encoder.config.label2id = id2label, {v: k for k, v in id2label.items()}
        model = MeanPoolClassifier(encoder, len(labels))
    return model, tok, kind


def load_classifier_model(folder: Path, kind: str):
    """A saved classifier (run/model): transformers' causal classifier, or a MeanPoolClassifier."""
    if kind == "encoder":
        return MeanPoolClassifier.from_pretrained(folder)
    from transformers import AutoModelForSequenceClassification

    return quiet_load(AutoModelForSequenceClassification.from_pretrained, folder)


def quiet_load(loader, folder, **kwargs):
    """from_pretrained without the load report about the (expectedly) fresh head or unused LM head."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return loader(str(folder), **kwargs)
    except Exception as e:
        raise LikemeError(f"{folder}: could not load the model ({first_line(e)})") from e
    finally:
        hf_logging.set_verbosity(level)
