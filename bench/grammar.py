"""Which JSON-schema-constrained decoding library should serve `response_format` (json_object / json_schema)?

Compares llguidance, xgrammar, outlines-core, lm-format-enforcer and transformers-cfg on the CPU with the
bundled SmolLM2-135M tokenizer (vocab 49152), over seven schemas that cover what OpenAI clients send. For
each library and schema: does it compile (and the error's head when not), compile time, and the time to
compute the next-token mask over the whole vocabulary before each token of a fixed valid instance, advancing
the matcher with the library's own API. It also checks that every token of the instance is in the mask and
that EOS is allowed at the end, and reports each library's installed size and required dependencies.

    .venv/bin/pip install --target /tmp/gram --no-deps xgrammar outlines-core lm-format-enforcer \\
        transformers-cfg interegular termcolor apache-tvm-ffi   # the last three: needed to import them
    PYTHONPATH=/tmp/gram HF_HUB_OFFLINE=1 .venv/bin/python bench/grammar.py [--out /tmp/grammar-bench.json]
    .venv/bin/python bench/grammar.py --voice RUN      # what constraining costs in likeme's own replies

A library that fails to import (a missing compiled dependency, say) is reported with its one-line reason.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import time
from importlib import metadata

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled tokenizer needs no network

# (name, schema, a valid instance); instances keep the schema's property order, as outlines-core requires.
TREE = {"type": "object", "properties": {"value": {"type": "integer"},
                                         "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["value", "children"]}
SCHEMAS = [
    ("json_object", {"type": "object"},
     {"name": "Ana", "tags": ["a", "b"], "score": 3.5, "ok": True, "none": None, "more": {"k": [1, 2]}}),
    ("flat", {"type": "object", "required": ["name", "age", "active", "role"], "properties": {
        "name": {"type": "string"}, "age": {"type": "integer"}, "active": {"type": "boolean"},
        "role": {"enum": ["admin", "user", "guest"]}}},
     {"name": "Robin", "age": 34, "active": True, "role": "user"}),
    ("nested_array", {"type": "object", "required": ["title", "items"], "properties": {
        "title": {"type": "string"},
        "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
            "type": "object", "required": ["sku", "qty"],
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}}}},
     {"title": "order 7", "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-22", "qty": 10}]}),
    ("pattern_bounds", {"type": "object", "required": ["code", "note", "score"], "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$", "maxLength": 8},
        "note": {"type": "string", "maxLength": 20},
        "score": {"type": "number", "minimum": 0, "maximum": 1}}},
     {"code": "ABC-1234", "note": "short note", "score": 0.75}),
    ("anyof_oneof", {"type": "object", "required": ["id", "shape"], "properties": {
        "id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "shape": {"oneOf": [
            {"type": "object", "required": ["kind", "r"],
             "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}}},
            {"type": "object", "required": ["kind", "side"],
             "properties": {"kind": {"const": "square"}, "side": {"type": "number"}}}]}}},
     {"id": "x-7", "shape": {"kind": "square", "side": 2}}),
    # Four levels: outlines-core unrolls $ref recursion to a fixed depth and rejects a fourth level.
    ("ref_recursion", {"$defs": {"node": TREE}, "$ref": "#/$defs/node"},
     {"value": 1, "children": [{"value": 2, "children": []}, {"value": 3, "children": [
         {"value": 4, "children": [{"value": 5, "children": []}]}]}]}),
    ("closed_optional", {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {
        "text": {"type": "string"}, "lang": {"type": "string"}, "count": {"type": "integer"},
        "final": {"type": "boolean"}}},
     {"text": "hello", "count": 2}),
]


class Library:
    """One library behind five calls: setup(tok) once, compile(schema) per schema, then start(grammar) and,
    before each token, mask(); allows(token) reads the mask, advance(token) feeds the token to the matcher.
    The three libraries with a bitmask API fill `self.words`: (V/32,) int32, bit t % 32 of word t // 32."""

    dist = module = ""

    def allows(self, token: int) -> bool:
        return bool((int(self.words[token >> 5]) >> (token & 31)) & 1)


class Llguidance(Library):
    dist, module = "llguidance", "llguidance"

    def setup(self, tok):
        import llguidance.hf
        import llguidance.numpy

        self.ll, self.tokenizer = llguidance, llguidance.hf.from_tokenizer(tok)
        self.bitmask = llguidance.numpy.allocate_token_bitmask(1, self.tokenizer.vocab_size)  # (1, V/32)
        self.words = self.bitmask[0]

    def compile(self, schema):
        # No compile step apart from building the matcher: llguidance computes masks lazily, per token.
        matcher = self.ll.LLMatcher(self.tokenizer, self.ll.LLMatcher.grammar_from_json_schema(schema), log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return matcher

    def start(self, grammar):
        self.matcher = grammar

    def mask(self):
        self.ll.numpy.fill_next_token_bitmask(self.matcher, self.bitmask)

    def advance(self, token):
        return self.matcher.consume_token(token)


class Xgrammar(Library):
    dist, module = "xgrammar", "xgrammar"

    def setup(self, tok):
        import xgrammar

        self.xgr, info = xgrammar, xgrammar.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
        self.compiler = xgrammar.GrammarCompiler(info, cache_enabled=False)  # no cache: time real compiles
        self.bitmask = xgrammar.allocate_token_bitmask(1, len(tok))  # (1, V/32) torch.int32
        self.words = self.bitmask[0].numpy()  # shares memory

    def compile(self, schema):
        # strict_mode=False keeps JSON Schema's meaning ({"type": "object"} admits any property);
        # xgrammar's default forbids properties the schema does not list.
        return self.compiler.compile_json_schema(schema, strict_mode=False)

    def start(self, grammar):
        self.matcher = self.xgr.GrammarMatcher(grammar)

    def mask(self):
        self.matcher.fill_next_token_bitmask(self.bitmask)

    def advance(self, token):
        return self.matcher.accept_token(token)


class OutlinesCore(Library):
    dist, module = "outlines-core", "outlines_core"

    def setup(self, tok):
        # Vocabulary.from_pretrained fetches from the hub, so build it from the loaded tokenizer: SmolLM2's
        # tokens are GPT-2 byte-level strings, mapped back to the raw bytes they stand for.
        import numpy as np
        import outlines_core
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
        special = set(tok.all_special_ids)
        tokens: dict[bytes, list[int]] = {}
        for text, i in tok.get_vocab().items():
            if i not in special:
                tokens.setdefault(bytes(byte_of[c] for c in text), []).append(i)
        self.oc, self.vocabulary = outlines_core, outlines_core.Vocabulary(tok.eos_token_id, tokens)
        self.words = np.zeros((len(tok) + 31) // 32, dtype=np.int32)  # (V/32,)

    def compile(self, schema):
        return self.oc.Index(self.oc.json_schema.build_regex_from_schema(json.dumps(schema)), self.vocabulary)

    def start(self, grammar):
        self.guide = self.oc.Guide(grammar)

    def mask(self):
        self.guide.write_mask_into(self.words.ctypes.data, self.words.size, 4)

    def advance(self, token):
        self.guide.advance(token, return_tokens=False)  # raises on a token the index does not allow
        return True


class LmFormatEnforcer(Library):
    dist, module = "lm-format-enforcer", "lmformatenforcer"

    def setup(self, tok):
        # lmformatenforcer.integrations.transformers does not import under transformers 5 (it imports
        # PreTrainedTokenizerBase from transformers.tokenization_utils), so this repeats its recipe:
        # decode each token after "0" to learn whether it starts a word.
        import lmformatenforcer

        zero, special = tok.encode("0", add_special_tokens=False)[-1], set(tok.all_special_ids)
        regular = []
        for i in range(len(tok)):
            if i not in special:
                after_zero = tok.decode([zero, i])[1:]
                regular.append((i, after_zero, len(after_zero) > len(tok.decode([i]))))
        decode = lambda ids: tok.decode(ids).rstrip("\ufffd")  # noqa: E731
        self.lmfe = lmformatenforcer
        self.data = lmformatenforcer.TokenEnforcerTokenizerData(regular, decode, tok.eos_token_id, True, len(tok))

    def compile(self, schema):
        return self.lmfe.JsonSchemaParser(schema)  # parses lazily: unsupported keywords fail at a mask

    def start(self, grammar):
        self.enforcer, self.tokens = self.lmfe.TokenEnforcer(self.data, grammar), []

    def mask(self):
        # Its API takes the whole sequence so far: this also consumes the previous token.
        self.allowed = self.enforcer.get_allowed_tokens(self.tokens)

    def allows(self, token):
        return bool(self.allowed.is_token_allowed(token))

    def advance(self, token):
        self.tokens.append(token)
        return True


# llama.cpp's json.gbnf: transformers-cfg takes EBNF grammars and has no JSON Schema compiler.
JSON_EBNF = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F]) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]*)) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws
ws     ::= ([ \t\n] ws)?
"""


class TransformersCfg(Library):
    dist, module = "transformers-cfg", "transformers_cfg"

    def setup(self, tok):
        from transformers_cfg.tokenization.byte_trie import ByteTrie
        from transformers_cfg.tokenization.middle.TokenizerMiddleMapping import (
            TokenizerMiddleMapping,
        )

        # Under transformers 5 AutoTokenizer gives a TokenizersBackend, which it does not map; loading the
        # same files as GPT2TokenizerFast gets further, then it downloads the "gpt2" tokenizer from the hub.
        self.tok, self.mapping = tok, TokenizerMiddleMapping.from_hf_tokenizer(tok)
        self.trie = ByteTrie.from_tokenizer(tok)

    def compile(self, schema):
        from transformers_cfg.token_grammar_recognizer import IncrementalTokenRecognizer

        if schema != {"type": "object"}:
            raise NotImplementedError("no JSON Schema support: EBNF grammars only")
        return IncrementalTokenRecognizer(JSON_EBNF, "root", self.tok, trie=self.trie, homomorphism=self.mapping)

    def start(self, grammar):
        self.recognizer, self.state = grammar, grammar.string_recognizer.get_initial_parsing_state()

    def mask(self):
        self.allowed = self.recognizer.filter_vocab(self.state, "cpu")  # (V,) bool

    def allows(self, token):
        return bool(self.allowed[token])

    def advance(self, token):
        # What its GrammarConstrainedLogitsProcessor calls for each new token.
        self.state = self.recognizer._update_state_with_token_id(token, self.state)
        return len(self.state.stacks) > 0


LIBRARIES = [Llguidance, Xgrammar, OutlinesCore, LmFormatEnforcer, TransformersCfg]


def _head(error: BaseException) -> str:
    """`ValueError: unsupported keyword 'foo'` from the first line of an exception, at most 160 chars."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:160]


def weight(dist: str) -> dict:
    """Installed size of a distribution (the files its RECORD lists) and its required dependencies on this
    machine. Example: {"version": "1.9.1", "installed_mb": 12.3, "requires": ["numpy>=1.24"]}."""
    from packaging.requirements import Requirement

    d = metadata.distribution(dist)
    size = sum(os.path.getsize(p) for f in d.files or [] if os.path.isfile(p := d.locate_file(f)))
    requires = [Requirement(r) for r in d.requires or []]
    needed = [f"{r.name}{r.specifier}" for r in requires if not r.marker or r.marker.evaluate({"extra": ""})]
    return {"version": d.version, "installed_mb": round(size / 2**20, 1), "requires": needed}


def run_schema(lib, schema, ids: list[int], eos: int) -> dict:
    """Compile `schema`, then walk `ids` then EOS: mask before each token, check it is allowed, advance."""
    start = time.perf_counter()
    try:
        grammar = lib.compile(schema)
    except Exception as e:
        return {"compiled": False, "error": _head(e)}
    result = {"compiled": True, "compile_ms": (time.perf_counter() - start) * 1e3, "accepted": True}
    mask_us = []
    try:
        lib.start(grammar)
        for k, token in enumerate([*ids, eos]):
            start = time.perf_counter()
            lib.mask()
            mask_us.append((time.perf_counter() - start) * 1e6)
            if not lib.allows(token):
                result.update(accepted=False, error=f"token {k} ({token}) not in the mask")
                break
            if token != eos and not lib.advance(token):
                result.update(accepted=False, error=f"token {k} ({token}) refused by the matcher")
                break
    except Exception as e:
        result.update(accepted=False, error=f"at token {len(mask_us)}: {_head(e)}")
    result["mask_us"] = mask_us
    return result


def bench(cls, tok, cases: list[tuple[str, dict, list[int]]]) -> dict:
    row = {"library": cls.dist, **weight(cls.dist), "error": None, "schemas": {}}
    stage = "import"
    try:
        importlib.import_module(cls.module)
        stage, lib, start = "tokenizer setup", cls(), time.perf_counter()
        lib.setup(tok)
    except Exception as e:
        row["error"] = f"{stage} failed: {_head(e)}"
        return row
    row["tokenizer_ms"] = (time.perf_counter() - start) * 1e3
    for name, schema, ids in cases:
        row["schemas"][name] = run_schema(lib, schema, ids, tok.eos_token_id)
    return row


def table(rows: list[dict]) -> str:
    from packaging.requirements import Requirement

    lines = ["| library | version | schemas | compile ms median / max | mask µs mean / p95 | accepts valid "
             "| tokenizer info ms | installed MB | deps |", "|" + "---|" * 9]
    notes = []
    for row in rows:
        deps = ", ".join(Requirement(r).name for r in row["requires"])
        if row["error"]:
            lines.append(f"| {row['library']} | {row['version']} | - | - | - | - | - | {row['installed_mb']} | {deps} |")
            notes.append(f"- {row['library']}: {row['error']}")
            continue
        done = {k: v for k, v in row["schemas"].items() if v["compiled"]}
        mask = [t for v in done.values() for t in v["mask_us"]]
        compile_ms = [v["compile_ms"] for v in done.values()]
        compiled = f"{statistics.median(compile_ms):.1f} / {max(compile_ms):.1f}" if done else "-"
        timing = f"{statistics.mean(mask):.0f} / {statistics.quantiles(mask, n=20)[-1]:.0f}" if mask else "-"
        accepted = sum(v["accepted"] for v in done.values())
        lines.append(f"| {row['library']} | {row['version']} | {len(done)}/{len(row['schemas'])} "
                     f"| {compiled} | {timing} | {accepted}/{len(done)} | {row['tokenizer_ms']:.0f} "
                     f"| {row['installed_mb']} | {deps} |")
        notes += [f"- {row['library']} / {k}: {v['error']}" for k, v in row["schemas"].items() if v.get("error")]
    return "\n".join(lines + ([""] + notes if notes else []))


def in_likeme(run: str, replies: int = 8) -> dict:
    """What constraining costs where it is used: new tokens per second of `Voice.reply` on `run`, free and
    with json_object / the flat schema (llguidance through likeme.use.grammar), greedy, 64 new tokens at most."""
    from likeme.use import generate

    voice = generate.load(run)
    voice.reply(["hi"], max_new_tokens=4)  # warm
    out = {}
    for label, schema in (("free", None), ("json_object", {"type": "object"}), ("flat", SCHEMAS[1][1])):
        tokens, t = 0, time.perf_counter()
        for i in range(replies):
            r = voice.reply([f"tell me about your day {i}"], json_schema=schema, max_new_tokens=64, do_sample=False)
            tokens += len(r.token_ids)
        out[label] = {"tokens_per_s": round(tokens / (time.perf_counter() - t), 1), "tokens": tokens}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/grammar-bench.json", help="where to write the results as JSON")
    parser.add_argument("--voice", default=None, metavar="RUN",
                        help="also time Voice.reply on this voice run, free and constrained (llguidance)")
    args = parser.parse_args()
    if args.voice:
        result = in_likeme(args.voice)
        print(json.dumps(result))
        return

    from likeme import models

    tok = models.load_tokenizer(models.resolve("smollm2-135m"))
    cases = []
    for name, schema, instance in SCHEMAS:
        text = json.dumps(instance)  # ", " and ": " separators: single spaces, which every library allows
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text, name
        cases.append((name, schema, ids))
    rows = [bench(cls, tok, cases) for cls in LIBRARIES]

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"SmolLM2-135M tokenizer ({len(tok)} tokens), {sum(len(c[2]) + 1 for c in cases)} masks per library\n")
    print(table(rows))
    with open(args.out, "w") as f:
        json.dump({"tokens": {name: len(ids) for name, _, ids in cases}, "results": rows}, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
