"""What the recipes share to train a model, each piece once:

    trainable.py   which parameters train: LoRA, all, the last N blocks, the head (causal LMs and encoders)
    trainer.py     the device and precision, the TrainingArguments defaults, a Trainer with likeme's
                   callbacks, and `fit`: train, resume from the latest checkpoint, stop cleanly on Ctrl-C
    callbacks.py   metrics.jsonl rows and the progress bar; Ctrl-C stops after the step with a checkpoint
    losses.py      losses as small nn.Modules
    frozen.py      train the top of a model on cached outputs of its frozen bottom
    causal_lm.py   the causal-LM recipes' shared steps: tokenizer padding, baseline perplexity, default
                   learning rate, evaluation subset, saving model/

A recipe (likeme/recipes/) composes these; inference (generate, classifier, embedder) never imports
them. Each module imports torch and transformers at its top: import them inside the functions that
train, so that `likeme --help` stays instant.
"""
