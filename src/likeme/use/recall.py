"""Recall: show the voice things NAME has said before that are like the message it answers.

    likeme train voice --as Ana --recall 3      # each training prompt lists 3 of Ana's past messages
    likeme chat runs/ana-voice                  # ... and so does every chat prompt (from the search index)

The k past messages of NAME most like the last message of the context (cosine of sentence embeddings,
`minilm` by default) are listed in the system turn (`datasets.system_prompt`):

    You are Ana. Write Ana's next message in this chat, in Ana's own words and style.
    Things Ana has said before:
    - pizza obviously
    - always lol

In training they come from the training sessions only, never the reply's own session (which holds the
reply itself); in a chat, from all of NAME's messages in the store, through its search index
(`index.search`). The prompt reads the same in both, so training and use agree.
"""
from __future__ import annotations

from typing import Callable

MODEL = "minilm"  # the bundled sentence embedder: small, offline, and what `likeme search` uses by default


def lines_of(sessions, name: str) -> list[str]:
    """NAME's messages in sessions of `datasets.reply_sessions` (turn texts split into their lines), each once.

    Example: a session [Sam "hi", Ana "hey\\nwhat's up"] -> ["hey", "what's up"]
    """
    seen = {}
    for _, _, turns in sessions:
        for t in turns:
            if t.author == name:
                for line in t.text.splitlines():
                    if line.strip():
                        seen.setdefault(line.strip(), None)
    return list(seen)


class Memory:
    """Messages and their unit embeddings: `nearest(queries, k, exclude)` -> the k most like each query."""

    def __init__(self, texts: list[str], model):
        from likeme.use.embedder import embed

        self.texts, self.model = texts, model
        self.vectors = embed(model, texts)  # (N, D)

    def nearest(self, queries: list[str], k: int, exclude: list[set] | None = None) -> list[list[str]]:
        import numpy as np

        from likeme.use.embedder import embed

        if not queries:
            return []
        scores = embed(self.model, queries) @ self.vectors.T  # (Q, D) @ (D, N) -> (Q, N)
        out = []
        for i, row in enumerate(scores):
            banned = exclude[i] if exclude else set()
            picked = [self.texts[j] for j in np.argsort(-row) if self.texts[j] not in banned][:k]
            out.append(picked)
        return out


def for_training(train_sessions, name: str, k: int, model: str = MODEL) -> Callable:
    """The `recall` of `datasets.persona_dataset`: (replies, their sessions) -> k of NAME's training
    messages per reply, most like its context's last message, none from the reply's own session."""
    from likeme.use.embedder import load_model

    memory = Memory(lines_of(train_sessions, name), load_model(model))

    def recall(found, sessions) -> list[list[str]]:
        queries = [r.context[-1].text for r in found]
        exclude = [set(lines_of([sessions[r.session]], name)) for r in found]
        return memory.nearest(queries, k, exclude)

    return recall


class Recall:
    """At chat time: text -> NAME's k past messages most like it, from the store's search index."""

    def __init__(self, name: str, k: int, *, model: str = MODEL, db=None):
        self.name, self.k, self.model_name, self.db = name, k, model, db
        self._model = None

    def __repr__(self) -> str:
        return f"Recall(name={self.name!r}, k={self.k}, model={self.model_name!r})"

    def __call__(self, text: str) -> list[str]:
        from likeme.use.embedder import load_model
        from likeme.use.index import search

        if not text.strip():
            return []
        self._model = self._model or load_model(self.model_name)
        wanted = 3 * self.k
        while True:  # people repeat themselves: widen the search until k different messages turn up
            hits = search(self.model_name, text, k=wanted, author=self.name, db=self.db, model=self._model)
            out: dict[str, None] = {}
            for hit in hits:
                out.setdefault(" / ".join(x.strip() for x in hit.text.splitlines() if x.strip()), None)
            if len(out) >= self.k or len(hits) < wanted:
                return list(out)[: self.k]
            wanted *= 4
