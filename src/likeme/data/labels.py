"""Labelled texts (the classifier): the order of the labels, a stratified split, weights per label."""
from __future__ import annotations

from collections import Counter


def label_order(labels: list[str]) -> list[str]:
    """The labels, each once, in a stable order: numbers by value, then names alphabetically.

    Example: ["b", "10", "a", "2", "b"] -> ["2", "10", "a", "b"]
    """
    def key(s: str):
        try:
            return (0, float(s), s)
        except ValueError:
            return (1, 0.0, s)
    return sorted(set(labels), key=key)


def stratified_split(labels: list, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices (train, validation): each label in the same share in both (sklearn's
    `train_test_split(stratify=...)`), and every label kept in train.

    A label with one example cannot be split: it goes to train. When the validation share is too small to
    hold every label once, the split is random, then any label that landed wholly in validation gets one
    example back.
    Example: labels a x4, b x4, c x1, fraction 0.5 -> train {2 a, 2 b, c}, validation {2 a, 2 b}
    """
    from sklearn.model_selection import train_test_split

    n = len(labels)
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    counts = Counter(labels)
    single = [i for i, y in enumerate(labels) if counts[y] == 1]
    multi = [i for i, y in enumerate(labels) if counts[y] > 1]
    n_val = max(1, round(fraction * n))
    if len(multi) < 2 or n_val >= len(multi):
        return list(range(n)), []
    try:
        train, val = train_test_split(multi, test_size=n_val, stratify=[labels[i] for i in multi], random_state=seed)
    except ValueError:  # fewer validation places than labels: sklearn cannot stratify
        train, val = train_test_split(multi, test_size=n_val, random_state=seed)
        in_train = {labels[i] for i in train}
        for i in list(val):
            if labels[i] not in in_train:
                val.remove(i)
                train.append(i)
                in_train.add(labels[i])
    return sorted(train + single), sorted(val)


def class_weights(y: list[int], n_classes: int) -> list[float]:
    """Per-label loss weights n / (k * count) (scikit-learn's "balanced"): each label's examples weigh
    as much in total as any other label's. A label absent from `y` gets weight 0.

    Example: y = [0, 0, 0, 1] (n=4, k=2) -> [4 / (2*3), 4 / (2*1)] = [0.667, 2.0]
    """
    counts = Counter(y)
    return [len(y) / (n_classes * counts[c]) if counts[c] else 0.0 for c in range(n_classes)]
