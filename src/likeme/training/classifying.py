"""The steps a classifier recipe takes, once for every recipe that trains one (`classify.py` from labels,
`distill.py` from a teacher's soft labels), so the two write the same run folder:

    texts, labels, provenance = labelled_texts("intents.csv", "text", "intent")
    template = template_for(kind, None)                    # 'Message: {text}\\nThe sender wants to' or '{text}'
    rows, max_length = encode_rows(tok, texts, train_idx, template, None)
    args = epoch_arguments(run, steps_per_epoch=8, total=80, ..., has_val=True, select_by="macro_f1")
    figures, confusion = validate(trainer, val_set, names)  # val accuracy, macro-F1, loss
    save(run, model, tok, names, confusion)                 # model/, plots/loss.png, plots/confusion.png
    run.begin(..., **run_fields(kind, names, template, max_length, "text", "intent"))
"""
from __future__ import annotations

from likeme.errors import LikemeError

# A causal LM's head reads the last token. After a bare text that is just the text's last word; after a
# prompt that asks what comes next about the whole message, the last token's state sums the message up
# (PromptEOL, Jiang et al. 2023, "Scaling Sentence Embeddings with Large Language Models"). Measured on
# banking77 with SmolLM2-135M (10 texts per intent, a linear probe on the frozen last-token states, 231
# test texts): bare text 0.54, PromptEOL's 'This sentence : "{text}" means in one word:"' 0.69,
# this template 0.73 (TF-IDF + logistic regression on the same texts: about 0.68). The words after {text} are
# never cut (`classifier.encode`).
DEFAULT_TEMPLATE = "Message: {text}\nThe sender wants to"
MAX_LENGTH_CAP = 512  # tokens: longer texts are cut when --max-length is not given (chat messages rarely are)


def labelled_texts(data: str | None, text_column: str, label_column: str, *, db: str | None = None,
                   min_messages: int = 10) -> tuple[list[str], list[str], dict]:
    """(texts, labels, where they came from): a labelled file, or (data None) the store with each text's author."""
    from likeme.data import authors, tables
    from likeme.data.store import Store, file_data

    if data:
        texts, labels = tables.read_labelled(data, text_column, label_column)
        return texts, labels, file_data(data)
    with Store(db) as store:
        texts, labels = authors.author_examples(store, min_messages)
        return texts, labels, store.provenance()


def template_for(kind: str, template: str | None) -> str:
    """The template a text is shown in: the one given, else DEFAULT_TEMPLATE (causal) or the bare text."""
    template = template or (DEFAULT_TEMPLATE if kind == "causal" else "{text}")
    if "{text}" not in template:
        raise LikemeError(f"--template {template!r} has no {{text}}: say where the text goes, e.g. 'Message: {{text}}'")
    return template


def encode_rows(tok, texts: list[str], train_idx: list[int], template: str,
                max_length: int | None) -> tuple[list[list[int]], int]:
    """(token ids per text, the max_length used): max_length, else the longest training text, at most
    MAX_LENGTH_CAP and the tokenizer's own limit."""
    from likeme.use.classifier import encode

    max_length = max_length or min(
        MAX_LENGTH_CAP, getattr(tok, "model_max_length", MAX_LENGTH_CAP) or MAX_LENGTH_CAP,
        max(len(r) for r in encode(tok, [texts[i] for i in train_idx], None, template)))
    return encode(tok, texts, max_length, template), max_length


def run_fields(kind: str, names: list[str], template: str, max_length: int, text_column: str,
               label_column: str) -> dict:
    """What a classifier's run.yaml adds to the common keys (`classifier.load_classifier` reads them)."""
    return {"backbone": kind, "pooling": "last-token" if kind == "causal" else "mean", "labels": names,
            "text_column": text_column, "label_column": label_column, "template": template, "max_length": max_length}


def learning_rate(trainable: str, backbone: str, head_lr: float) -> float:
    """The default peak rate of the pretrained part that trains, by what trains (a fresh head needs more
    than pretrained blocks): lora and last-blocks 2e-4, all 5e-5 (encoder) or 2e-5 (causal), head: head_lr."""
    if trainable == "head":
        return head_lr
    return {"lora": 2e-4, "last-blocks": 2e-4}.get(trainable, 5e-5 if backbone == "encoder" else 2e-5)


def epoch_arguments(run, *, seed: int, steps_per_epoch: int, total: int, epochs: float, max_steps: int | None,
                    batch_size: int, lr: float, has_val: bool, select_by: str, precision: str | None = "auto"):
    """TrainingArguments for an epoch-based classifier: an evaluation and a checkpoint per epoch, the best
    epoch by validation macro-F1 (or loss) kept, a linear schedule with 5% warm-up, length-grouped batches."""
    from likeme.training import trainer as tr

    metric = "eval_macro_f1" if select_by == "macro_f1" else "eval_loss"
    return tr.arguments(
        run, seed=seed, precision=precision, eval_steps=steps_per_epoch if has_val else None, save_steps=steps_per_epoch,
        num_train_epochs=epochs, max_steps=max_steps or -1, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 32), learning_rate=lr, lr_scheduler_type="linear",
        warmup_steps=max(1, total // 20),  # 5%: the head starts random, its first gradients are large
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding
        label_names=["labels"], load_best_model_at_end=has_val, metric_for_best_model=metric,
        greater_is_better=metric != "eval_loss")


def accuracy_f1(p) -> dict:
    """Trainer's compute_metrics: EvalPrediction(logits (N, K), labels (N,)) -> accuracy, macro-F1."""
    from sklearn.metrics import f1_score

    guess = p.predictions.argmax(-1)
    return {"accuracy": float((guess == p.label_ids).mean()),
            "macro_f1": float(f1_score(p.label_ids, guess, average="macro", zero_division=0))}


def validate(trainer, val_set: list, names: list[str]) -> tuple[dict, list | None]:
    """({val_accuracy, val_macro_f1, val_loss}, confusion matrix) of the trained model on the validation
    set; ({}, None) when there is none."""
    from likeme.check.evaluate import classification_metrics

    if not val_set:
        return {}, None
    pred = trainer.predict(val_set)
    report = classification_metrics([names[i] for i in pred.label_ids.tolist()],
                                    [names[i] for i in pred.predictions.argmax(-1).tolist()], names)
    return ({"val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
             "val_loss": round(float(pred.metrics["test_loss"]), 4)}, report["confusion"])


def save(run, model, tok, names: list[str], confusion: list | None, ylabel: str) -> None:
    """model/ (the whole classifier in fp32 with its tokenizer, as `classifier.load_classifier` reads it),
    plots/loss.png (with validation macro-F1) and plots/confusion.png (validation)."""
    from likeme.check import plots

    with run.saving_model() as folder:
        model.float().cpu().eval().save_pretrained(folder)
        tok.save_pretrained(folder)
    plots.learning_curves(run.path, ylabel=ylabel, right="eval_macro_f1" if confusion is not None else None)
    if confusion is not None:
        plots.confusion(confusion, names, run.path / "plots" / "confusion.png", title=f"{run.path.name}: validation")
