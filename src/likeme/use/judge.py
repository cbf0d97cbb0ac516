"""Judging how much a text sounds like NAME, with a trained run: one interface over three kinds.

    embedder    an embedder run of NAME (`likeme train embedder --as NAME`): its likeness score, 0..1
    classifier  an author classifier (`likeme train classifier --label-by author`): P(NAME wrote it)
    reward      a reward run (`likeme train reward`): its scalar reward for the reply in its context
    likelihood  a voice run (`use.likelihood.Who`): how much more likely NAME's slot under the run makes the
                reply than under its base, beside the other people's slots (nats per token)

    >>> judge = load_judge("runs/robin-embedder", "Robin")
    >>> judge.score(["sure thing", "Can you help me?"])
    [0.83, 0.12]

Higher means more like NAME; scores compare within one judge, not across kinds. `strength` measures a
judge on messages whose authors are known: the ROC-AUC of its scores at telling NAME's messages from
other people's (0.5: it cannot tell), which bounds how much any judged figure can say.
Uses runs through the inference modules only.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

from likeme.errors import LikemeError


class Judge:
    """`score(replies, contexts=None) -> list[float]`; contexts (lists of turns before each reply) are
    read by a reward judge, which scores a reply as an answer to them, and ignored by the others."""

    def __init__(self, kind: str, run: str, name: str, fn: Callable[[list[str], list | None], list[float]]):
        self.kind, self.run, self.name, self._fn = kind, run, name, fn

    def __repr__(self) -> str:
        return f"Judge(kind={self.kind!r}, name={self.name!r}, run={self.run!r})"

    def score(self, replies: Sequence[str], contexts: Sequence | None = None) -> list[float]:
        if contexts is not None and len(contexts) != len(replies):
            raise LikemeError(f"{len(replies)} replies but {len(contexts)} contexts to judge them in")
        return [float(x) for x in self._fn(list(replies), list(contexts) if contexts is not None else None)] \
            if replies else []

    def strength(self, texts: Sequence[str], is_name: Sequence[int], contexts: Sequence | None = None) -> float:
        """ROC-AUC of the scores at telling NAME's texts (is_name 1) from others' (0)."""
        from likeme.use.embedder import auc

        return auc(list(is_name), self.score(texts, contexts))


def load_judge(run: str | os.PathLike, name: str) -> Judge:
    """A judge of NAME from an embedder, author-classifier or reward run; a one-line error for anything
    else, or for a judge that learned someone else."""
    from likeme.use.load import recipe_of

    recipe = recipe_of(run)
    if recipe == "embedder":
        from likeme.use.embedder import load_scorer

        e = load_scorer(run)
        if e.name != name:
            raise LikemeError(f"{run} learned {e.name!r}'s style, not {name!r}'s: train a judge with "
                              f"likeme train embedder --as {name!r}")
        return Judge("embedder", str(run), name, lambda texts, _: e.score(texts))
    if recipe == "classifier":
        from likeme.use.classifier import load_classifier

        clf = load_classifier(run)
        if name not in clf.labels:
            raise LikemeError(f"{run} has no label {name!r} (labels: {', '.join(clf.labels[:8])}): a judge is an "
                              f"author classifier that knows {name} (likeme train classifier --label-by author)")
        column = clf.labels.index(name)
        return Judge("classifier", str(run), name, lambda texts, _: clf.probabilities(texts)[:, column].tolist())
    if recipe == "reward":
        from likeme.use.reward import load_reward

        rm = load_reward(run)
        return Judge("reward", str(run), name, lambda texts, contexts: rm.score(texts, contexts, name=name))
    if recipe == "voice":
        from likeme.use.likelihood import Who

        who = Who(run)
        if name not in who.people:
            raise LikemeError(f"{run} did not learn {name!r} (it knows {', '.join(who.people)}): a voice judges "
                              "the people it was trained on")
        return Judge("likelihood", str(run), name, lambda texts, contexts: who.judge(name, texts, contexts))
    raise LikemeError(f"{run} is a {recipe} run: a judge is an embedder, an author classifier, a reward run or a "
                      "voice (likelihood ratio)")
