"""Replies constrained to JSON: at every step only the tokens that keep the text a valid start of a JSON
value matching a schema may be sampled, so the finished text always parses and validates.

    >>> from likeme.use.grammar import compile_schema
    >>> schema = compile_schema({"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}},
    ...                          "required": ["mood"]})
    >>> voice.reply(["how are you?"], json_schema=schema)            # or the dict itself
    '{"mood": "happy"}'

The grammar engine is llguidance (Microsoft; the engine behind OpenAI-style structured output in
llama.cpp, vLLM and SGLang): it compiles a JSON schema in about a millisecond, computes a mask over
SmolLM2's 49k-token vocabulary in tens of microseconds on a CPU, is a 3 MB wheel with no dependencies,
and covered every schema of `bench/grammar.py` (BENCHMARKS.md has the comparison with xgrammar,
outlines-core, lm-format-enforcer and transformers-cfg).

JSON is written compactly on one line, with ", " and ": " between items (whitespace is not free, so a
small model cannot pad the reply with newlines until max_new_tokens runs out).
"""
from __future__ import annotations

import json
from typing import Any

from likeme.errors import LikemeError

JSON_OBJECT: dict = {"type": "object"}  # OpenAI's response_format {"type": "json_object"}
OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class Schema:
    """A JSON schema compiled to a grammar, checked: a schema the engine cannot compile raises LikemeError
    (with the engine's reason) before anything is generated. `.schema` is the dict it came from."""

    def __init__(self, schema: dict, grammar: str):
        self.schema, self.grammar = schema, grammar

    def __repr__(self) -> str:
        return f"Schema({json.dumps(self.schema)[:60]})"


def compile_schema(schema: dict | str | Schema) -> Schema:
    """A schema dict (or its JSON text) -> `Schema`. {"type": "object"} is any JSON object."""
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise LikemeError(f"the JSON schema is not JSON ({e})") from None
    if not isinstance(schema, dict):
        raise LikemeError(f"a JSON schema is a JSON object, not {type(schema).__name__}")
    import llguidance

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=OPTIONS)
    except (ValueError, TypeError) as e:
        raise LikemeError(f"cannot use this JSON schema: {e}") from None
    error = llguidance.LLMatcher.validate_grammar(grammar)
    if error and not error.startswith("WARNING"):
        raise LikemeError(f"cannot use this JSON schema: {error.splitlines()[0]}")
    return Schema(schema, grammar)


def load_schema_file(path) -> Schema:
    """The schema in a .json file (the CLI's --json-schema FILE), compiled."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise LikemeError(f"{p}: no such file: --json-schema takes a file holding a JSON schema")
    try:
        return compile_schema(json.loads(p.read_text("utf-8-sig")))
    except ValueError as e:
        raise LikemeError(f"{p}: not JSON ({e}): --json-schema takes a file holding a JSON schema") from None


_TOKENIZERS: dict[int, Any] = {}


def _ll_tokenizer(tokenizer, stop_ids: list[int]):
    """llguidance's view of a transformers tokenizer, made once per tokenizer (about a second)."""
    key = id(tokenizer)
    if key not in _TOKENIZERS:
        import llguidance.hf

        if not getattr(tokenizer, "is_fast", False):
            raise LikemeError("JSON output needs a fast (Rust) tokenizer; this model's is a slow one")
        _TOKENIZERS[key] = (tokenizer, llguidance.hf.from_tokenizer(tokenizer, eos_token=stop_ids[0]))
    return _TOKENIZERS[key][1]


class JsonLogits:
    """A logits processor (the `LogitsProcessor` call interface, duck-typed) that masks every token the
    schema does not allow next, one matcher per sequence of the batch. Once a sequence's JSON is complete
    only `stop_ids[0]` (NAME's end of turn) is allowed.

    input_ids (B, T), scores (B, V) -> scores with the forbidden tokens at -inf.
    """

    def __init__(self, schema: Schema, tokenizer, stop_ids: list[int], prompt_len: int, batch: int):
        import llguidance

        self.ll = _ll_tokenizer(tokenizer, stop_ids)
        self.matchers = [llguidance.LLMatcher(self.ll, schema.grammar, log_level=0) for _ in range(batch)]
        error = next((m.get_error() for m in self.matchers if m.is_error()), None)
        if error:
            raise LikemeError(f"cannot use this JSON schema: {error.splitlines()[0]}")
        self.prompt_len, self.stop_id = prompt_len, stop_ids[0]

    def __call__(self, input_ids, scores):
        import torch

        n_vocab = scores.shape[1]
        mask = torch.zeros(scores.shape, dtype=torch.bool)  # (B, V): True = allowed
        words = torch.empty((1, (self.ll.vocab_size + 31) // 32), dtype=torch.int32)
        shifts = torch.arange(32, dtype=torch.int32)
        for b, m in enumerate(self.matchers):
            if input_ids.shape[1] > self.prompt_len:
                m.consume_token(int(input_ids[b, -1]))  # the token sampled at the last step
            if m.is_error() or m.is_stopped():
                mask[b, self.stop_id] = True  # finished (or a sequence that has already ended): close the turn
                continue
            m.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * 4)
            bits = ((words.unsqueeze(-1) >> shifts) & 1).bool().reshape(-1)[:n_vocab]  # (V,)
            mask[b, : bits.numel()] = bits
        return scores.masked_fill(~mask.to(scores.device), float("-inf"))


def parse(text: str, schema: Schema | None = None) -> Any:
    """The JSON value of a constrained reply; a one-line LikemeError when it is not complete JSON (a reply
    cut at max_new_tokens)."""
    try:
        return json.loads(text)
    except ValueError:
        raise LikemeError("the reply is not complete JSON (cut at max_new_tokens?): allow more new tokens") from None
