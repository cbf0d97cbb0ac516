"""Persona examples assembled from token ids: each message rendered and tokenized once, not once per example.

`examples.persona_example` (the reference) renders the chat template twice and tokenizes the whole
conversation for every context length it tries: about 16 examples/s with SmolLM2's tokenizer on a store
with 8,643 replies of one person. Here each message's piece of the rendered chat (in ChatML
"<|im_start|>user\\nhi<|im_end|>\\n") is found by rendering the template on [system] and on [system,
message] and taking the difference; it is tokenized once per (role, content), and an example is its pieces
end to end:

    prompt = the system piece + the context's pieces + the generation prompt ("<|im_start|>assistant\\n")
    answer = the reply's assistant piece after the generation prompt, up to and including the end-of-turn id

The chat format itself stays in `likeme.prompts` (`chat_messages` says who is `user` and who `assistant`,
and the template renders them). Pieces tokenized apart equal the whole rendering tokenized only when the
tokenizer splits at message boundaries (ChatML's special tokens do), so `PersonaBuilder` checks its examples
against the reference (the first few, and the first of each kind: group chat, recalled lines, cut context)
and builds every later one with the reference when they differ.
"""
from __future__ import annotations

from typing import Callable, Sequence

from likeme.prompts import IGNORE, chat_messages, end_of_turn_id, system_prompt

CHECKS = 4  # examples compared with the reference before trusting the pieces (~60 ms each with SmolLM2)


class NotSplittable(Exception):
    """The template does not render a chat as its messages' pieces end to end."""


class PersonaBuilder:
    """Builds `persona_example`'s examples from memoized pieces.

    reference: (reply, recalled lines) -> the reference example, for the checks and the fallback.

    >>> b = PersonaBuilder(tok, "Ana", max_length=512, reference=ref)
    >>> b.examples([(Reply([Turn("Sam", "hi")], Turn("Ana", "hey"), False), ())])
    [{"input_ids": [...], "labels": [...]}]      # == ref(that reply, ()), token for token
    """

    def __init__(self, tokenizer, name: str, *, max_length: int, reference: Callable, checks: int = CHECKS):
        self.tokenizer, self.name, self.max_length, self.reference = tokenizer, name, max_length, reference
        self.checks = checks
        self.compared = 0  # examples compared with the reference so far
        self.kinds: set = set()  # kinds of example compared: (group chat, recalled lines, context cut)
        self.fast = True  # False once a check failed: the reference builds everything after
        self.pieces: dict[tuple[str, str], list[int]] = {}  # (role, content) -> ids of its rendered piece
        self.eot = end_of_turn_id(tokenizer)
        try:
            self.anchor = {"role": "system", "content": system_prompt(name)}
            self.anchor_text = self._render([self.anchor], False)
            gen_text = self._render([self.anchor], True)
            if not gen_text.startswith(self.anchor_text):
                raise NotSplittable("the generation prompt does not extend the rendered chat")
            self.gen = list(self._encode([gen_text[len(self.anchor_text):]])[0])
        except Exception:  # NotSplittable, or a template that cannot render this at all: the reference decides
            self.fast = False

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []

    def _piece_text(self, role: str, content: str) -> str:
        if role == "system":
            return self._render([{"role": role, "content": content}], False)
        text = self._render([self.anchor, {"role": role, "content": content}], False)
        if not text.startswith(self.anchor_text):
            raise NotSplittable(f"a {role} message changes how the system turn renders")
        return text[len(self.anchor_text):]

    def _prepare(self, keys: Sequence[tuple[str, str]]) -> None:
        """Render and tokenize, in one batch, the pieces not seen yet."""
        todo = list(dict.fromkeys(k for k in keys if k not in self.pieces))
        for key, ids in zip(todo, self._encode([self._piece_text(*k) for k in todo])):
            self.pieces[key] = list(ids)

    def _assemble(self, keys: list[tuple[str, str]]) -> tuple[dict | None, bool]:
        """keys: the system's, the context's, the reply's -> (the example, whether context was cut)."""
        sys_ids, context, piece = self.pieces[keys[0]], [self.pieces[k] for k in keys[1:-1]], self.pieces[keys[-1]]
        if piece[: len(self.gen)] != self.gen:
            raise NotSplittable("the reply's turn does not start with the generation prompt")
        answer = piece[len(self.gen):]
        if self.eot in answer:  # up to and including the end-of-turn token, not the newline after it
            answer = answer[: answer.index(self.eot) + 1]
        total = len(sys_ids) + sum(len(c) for c in context) + len(self.gen) + len(answer)
        start = 0
        while start < len(context) and total > self.max_length:  # drop the oldest turns until it fits
            total -= len(context[start])
            start += 1
        prompt = sys_ids + [t for c in context[start:] for t in c] + self.gen
        ids = (prompt + answer)[: self.max_length]
        labels = ([IGNORE] * len(prompt) + answer)[: self.max_length]
        if all(l == IGNORE for l in labels):
            return None, start > 0
        return {"input_ids": ids, "labels": labels}, start > 0

    def examples(self, block: Sequence[tuple]) -> list[dict | None]:
        """(reply, recalled lines) pairs -> one example (or None, as the reference gives) each."""
        if not self.fast:
            return [self.reference(r, lines) for r, lines in block]
        try:
            keyed = []
            for r, lines in block:
                msgs = chat_messages(r.context, self.name, r.prefix_names, lines)
                keyed.append([(m["role"], m["content"]) for m in msgs] + [("assistant", r.reply.text)])
            self._prepare([k for keys in keyed for k in keys])
            out = []
            for (r, lines), keys in zip(block, keyed):
                ex, cut = self._assemble(keys)
                kind = (r.prefix_names, bool(lines), cut)
                if self.compared < self.checks or kind not in self.kinds:
                    self.compared += 1
                    self.kinds.add(kind)
                    if ex != self.reference(r, lines):
                        raise NotSplittable("an example differs from the reference")
                out.append(ex)
            return out
        except Exception:  # NotSplittable, or anything the reference would report better: let it
            self.fast = False
            return [self.reference(r, lines) for r, lines in block]
