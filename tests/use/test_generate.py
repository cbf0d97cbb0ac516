"""likeme.use.generate and `likeme chat` / `likeme generate`: on tiny run folders built here.

Two kinds of tiny model: the random one from tiny.py (any text, for seeds, streaming and the CLI), and a
"forced" one whose weights make it write a known chain of tokens and then a chosen end token, so that
where a reply stops can be checked exactly.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tiny import likeme_cli, tiny_causal_lm, tiny_tokenizer

import likeme
from likeme import prompts
from likeme.data import examples
from likeme.errors import LikemeError
from likeme.prompts import Turn

LIKEME = str(Path(sys.executable).parent / "likeme")


def make_run(folder: Path, model=None, **meta) -> Path:
    """A run folder as the voice recipe writes one: run.yaml, full weights and their tokenizer in model/.

    `base: model` is what the run started from; with model/ present, models._run_ref reads only that name.
    """
    tok = tiny_tokenizer()
    (model or tiny_causal_lm(tok)).save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    meta = {"base": "model", "task": "causal-lm", "recipe": "voice", "as": "Ana", "partner": "Sam", **meta}
    (folder / "run.yaml").write_text(yaml.safe_dump(meta), "utf-8")
    return folder


def forced_model(chain: list[int], end: int):
    """A tiny Llama that, after token chain[0], always writes chain[1:] and then `end`.

    Attention and MLP outputs are zeroed, so the hidden state is the embedding of the last token alone.
    Token chain[i] is embedded as the unit vector e_(i+1) (every other token as e_0); after RMSNorm that is
    8 e_(i+1) (hidden 64). The LM head (untied) row of chain[i+1] is 10 e_(i+1), of `end` 10 e_len(chain):
    the next token's logit is 80, every other one 0, whatever the position or the sampling settings.
    """
    import torch

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, tie_word_embeddings=False)
    assert len(set(chain + [end])) == len(chain) + 1, "a token may appear once in the chain"
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight  # (V, 64), (V, 64)
        emb.zero_()
        emb[:, 0] = 1.0
        head.zero_()
        for slot, t in enumerate(chain, start=1):
            emb[t] = 0.0
            emb[t, slot] = 1.0
        for slot, t in enumerate(chain[1:] + [end], start=1):
            head[t, slot] = 10.0
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs") / "ana")


@pytest.fixture(scope="module")
def voice(run):
    return likeme.load(run)


TOK = tiny_tokenizer()
NEWLINE = TOK.convert_tokens_to_ids("Ċ")  # the last token of the generation prompt "<|im_start|>assistant\n"
OK_SEE_YOU = TOK("ok see you", add_special_tokens=False)["input_ids"]  # ['ok', 'Ġsee', 'Ġyou']


def test_load_reads_the_run(voice, run):
    assert (voice.name, voice.partner, voice.run, voice.format) == ("Ana", "Sam", str(run), "persona")
    assert str(voice.model.device) == "cpu" and next(voice.model.parameters()).dtype.is_floating_point


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU")
def test_cuda_default_is_bf16(run):
    import torch

    voice = likeme.load(run)
    assert voice.model.device.type == "cuda" and next(voice.model.parameters()).dtype == torch.bfloat16
    assert voice.reply(["hi"], seed=1, max_new_tokens=16) == voice.reply(["hi"], seed=1, max_new_tokens=16)


def test_a_plain_model_needs_a_name(tmp_path):
    """Not a run: raw text works; replies need to know whom to speak as."""
    folder = tmp_path / "plain"
    tiny_causal_lm(TOK).save_pretrained(folder)
    TOK.save_pretrained(folder)
    voice = likeme.load(folder)
    assert voice.name is None and isinstance(voice.generate("hey", max_new_tokens=3), str)
    with pytest.raises(LikemeError, match="no as:"):
        voice.reply(["hi"])
    assert isinstance(likeme.load(folder, name="Ana").reply(["hi"], max_new_tokens=3), str)


def test_import_likeme_stays_light():
    code = "import sys, likeme; likeme.load; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_prompt_is_the_training_prompt(voice):
    """The ids reply() feeds the model are the prompt part of the training example for the same context."""
    context = [Turn("Sam", "are you coming?"), Turn("Ana", "yes"), Turn("Sam", "cake?")]
    example = examples.persona_example(voice.tokenizer, context, Turn("Ana", "sure"), "Ana", prefix_names=False)
    prompt_len = sum(1 for label in example["labels"] if label == prompts.IGNORE)
    assert voice.prompt_ids([("Sam", "are you coming?"), ("Ana", "yes"), "cake?"]) == example["input_ids"][:prompt_len]
    # A plain string is the partner's; consecutive messages of one author are one turn, as in training.
    assert voice.prompt_ids(["are you", "coming?"]) == voice.prompt_ids([("Sam", "are you\ncoming?")])
    # More than one other person: names before their messages, as in a group chat's training examples.
    text = voice.tokenizer.decode(voice.prompt_ids(["hi", ("Bo", "yo")]))
    assert "user\nSam: hi<|im_end|>\n<|im_start|>user\nBo: yo<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_reply_is_clean_text(voice):
    out = voice.reply(["hi"], seed=0, max_new_tokens=32)
    assert isinstance(out, str) and "<|im" not in out and out == out.strip()
    assert out.finish in ("stop", "length") and 1 <= len(out.token_ids) <= 32


def test_seeds(voice):
    assert voice.reply(["hi"], seed=1, max_new_tokens=20) == voice.reply(["hi"], seed=1, max_new_tokens=20)
    texts = {voice.reply(["hi"], seed=s, max_new_tokens=20) for s in range(4)}
    assert len(texts) > 1  # a random model sampling 20 tokens among ~50: 4 equal replies would be a bug
    greedy = voice.reply(["hi"], do_sample=False, max_new_tokens=20)
    assert greedy == voice.reply(["hi"], do_sample=False, max_new_tokens=20, seed=5)
    assert voice.reply(["hi"], temperature=0, max_new_tokens=20) == greedy  # temperature 0 is greedy, as in llama.cpp


def test_num_return_sequences(voice):
    outs = voice.reply(["hi"], num_return_sequences=3, seed=2, max_new_tokens=10)
    assert isinstance(outs, list) and len(outs) == 3 and all(isinstance(o, str) and "<|im" not in o for o in outs)
    assert len(set(outs)) > 1
    with pytest.raises(LikemeError, match="needs sampling"):
        voice.reply(["hi"], num_return_sequences=3, do_sample=False)


def test_bad_settings_are_one_line_errors(voice):
    with pytest.raises(LikemeError, match="unknown sampling setting 'temp'"):
        voice.reply(["hi"], temp=0.5)
    with pytest.raises(LikemeError, match="top_p"):
        voice.reply(["hi"], top_p=0)


def test_max_new_tokens_caps_a_runaway(voice):
    out = voice.reply(["hi"], seed=3, max_new_tokens=4)
    assert len(out.token_ids) <= 4 and (out.finish == "length") == (len(out.token_ids) == 4)


@pytest.mark.parametrize("end", ["<|im_end|>", "<|im_start|>", "<|endoftext|>"])
@pytest.mark.parametrize("sampling", [{}, {"do_sample": False}])
def test_reply_stops_at_the_end_of_the_turn(tmp_path, end, sampling):
    """The model writes 'ok see you' then `end`: the reply stops there, long before max_new_tokens.
    <|im_start|>: a model that starts a new turn has finished its own."""
    end_id = TOK.convert_tokens_to_ids(end)
    voice = likeme.load(make_run(tmp_path / "run", forced_model([NEWLINE, *OK_SEE_YOU], end_id)))
    out = voice.reply(["are you coming?"], max_new_tokens=100, **sampling)
    assert out == "ok see you"
    assert out.token_ids == (*OK_SEE_YOU, end_id) and out.finish == "stop"  # 4 tokens generated, not 100


def test_without_an_end_the_reply_is_cut(tmp_path):
    """'ok' forever (the chain loops on itself): cut at max_new_tokens, finish 'length'."""
    ok = OK_SEE_YOU[0]
    model = forced_model([NEWLINE, ok], TOK.convert_tokens_to_ids("<|im_end|>"))
    import torch

    with torch.no_grad():  # after 'ok' comes 'ok' again, instead of the end
        model.lm_head.weight[:, 2] = 0.0
        model.lm_head.weight[ok, 2] = 10.0
    voice = likeme.load(make_run(tmp_path / "run", model))
    out = voice.reply(["hi"], max_new_tokens=7, repetition_penalty=1.0, do_sample=False)
    assert out == "ok" * 7 and out.finish == "length" and len(out.token_ids) == 7


def test_streaming_pieces_join_to_the_reply(voice, tmp_path):
    pieces = []
    out = voice.reply(["hi"], seed=4, max_new_tokens=20, stream=pieces.append)
    assert "".join(pieces) == out and len(pieces) > 1
    forced = likeme.load(make_run(tmp_path / "run", forced_model([NEWLINE, *OK_SEE_YOU], 2)))
    pieces = []
    assert forced.reply(["hi"], stream=pieces.append) == "ok see you" == "".join(pieces)
    assert pieces == ["ok", " see", " you"]
    raw = []
    text = voice.generate("once upon", seed=4, max_new_tokens=10, stream=raw.append)
    assert "".join(raw) == text


def test_generate_continues_raw_text(voice):
    out = voice.generate("once upon", do_sample=False, max_new_tokens=5)
    assert isinstance(out, str) and len(out.token_ids) <= 5 and "<|im" not in out
    assert out == voice.generate("once upon", do_sample=False, max_new_tokens=5)


def test_transcript_run(tmp_path):
    """A run trained on "Name: message" lines is prompted with lines, and its reply ends with the line."""
    colon, space_ok = TOK.convert_tokens_to_ids(":"), TOK(" ok", add_special_tokens=False)["input_ids"]
    model = forced_model([colon, *space_ok, NEWLINE], TOK.convert_tokens_to_ids("S"))  # ": ok\nS..."
    voice = likeme.load(make_run(tmp_path / "run", model, config={"format": "transcript", "context_turns": 2}))
    assert voice.format == "transcript"
    prompt = voice.tokenizer.decode(voice.prompt_ids(["one", ("Ana", "two"), "three"]))
    assert prompt == "<|im_end|>Ana: two\nSam: three\nAna:"  # the last context_turns=2 turns
    out = voice.reply(["hi"], max_new_tokens=50)
    assert out == "ok" and out.token_ids == (*space_ok, NEWLINE) and out.finish == "stop"


# ---------------------------------------------------------------------------------------------
# The CLI, through its real entry point: in this process (tiny.likeme_cli), errors in a subprocess too


def cli(*args, input=None):
    return likeme_cli(*args, input=input)


def subprocess_cli(*args, input=None):
    return subprocess.run([LIKEME, *args], capture_output=True, text=True, input=input,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=120)


def test_cli_chat_one_message(tmp_path):
    run = make_run(tmp_path / "run", forced_model([NEWLINE, *OK_SEE_YOU], 2))
    p = cli("chat", str(run), "--message", "hi", "--seed", "1")
    assert (p.returncode, p.stdout) == (0, "ok see you\n"), p.stderr  # the reply alone: it can be piped
    p = cli("chat", str(run), "--message", "-", input="are you coming?\n")
    assert (p.returncode, p.stdout) == (0, "ok see you\n"), p.stderr


def test_cli_repl(tmp_path):
    run = make_run(tmp_path / "run", forced_model([NEWLINE, *OK_SEE_YOU], 2))
    p = cli("chat", str(run), input="hi\n/set temperature 0.5\n/set top-k nope\n/reset\nhello\n/help\n/quit\nnot read\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Ana> ok see you\n") == 2 and "Sam> hi\n" in p.stdout and "not read" not in p.stdout
    assert "top_k takes a whole number, not 'nope'" in p.stderr and "/reset" in p.stderr  # /help went to stderr


def test_cli_repl_random_model(run):
    """Settings change between replies; the end of input (Ctrl-D) leaves."""
    p = cli("chat", str(run), "--seed", "3", "--max-new-tokens", "8",
            input="hi\n/set temperature 0.5\n/set min-p 0.1\n/set\n/set no-sample\n/reset\nhello\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Ana> ") == 2 and "Error" not in p.stderr
    assert "temperature            0.5" in p.stderr and "min-p                  0.1" in p.stderr


def test_cli_generate(run):
    p = cli("generate", str(run), "once upon", "--max-new-tokens", "5", "--no-sample")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "once upon" + likeme.load(run).generate("once upon", max_new_tokens=5, do_sample=False) + "\n"
    p = cli("generate", str(run), "once upon", "--max-new-tokens", "5", "--num-return-sequences", "2", "--seed", "1")
    assert p.returncode == 0 and p.stdout.startswith("--- 1 of 2 ---\nonce upon") and "--- 2 of 2 ---\nonce upon" in p.stdout


def test_cli_errors_are_one_line(tmp_path, run):
    for args in (["chat", str(tmp_path / "missing"), "-m", "hi"], ["generate", str(tmp_path / "missing"), "x"],
                 ["chat", str(run), "-m", "hi", "--top-p", "2"]):
        p = subprocess_cli(*args)
        assert p.returncode == 1 and p.stderr.startswith("Error: ") and p.stderr.count("\n") == 1, p.stderr
        assert "Traceback" not in p.stderr


# -- JSON output, stop strings, cancelling -------------------------------------------------------------

MOOD = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}, "ok": {"type": "boolean"}},
        "required": ["mood", "ok"], "additionalProperties": False}


def test_json_schema_replies_parse_and_validate(voice, tmp_path):
    import json

    from likeme.use.grammar import compile_schema

    for seed in range(4):  # a random model: only the grammar makes these valid
        out = voice.reply(["hi"], json_schema=MOOD, seed=seed, max_new_tokens=40)
        got = json.loads(out)
        assert set(got) == {"mood", "ok"} and got["mood"] in ("happy", "sad") and isinstance(got["ok"], bool)
        assert out.finish == "stop" and ", " in out  # compact JSON, ended by the grammar
    many = voice.reply(["hi"], json_schema=compile_schema(MOOD), seed=1, num_return_sequences=3, max_new_tokens=40)
    assert all(json.loads(m)["mood"] in ("happy", "sad") for m in many)
    pieces = []
    streamed = voice.reply(["hi"], json_schema=MOOD, seed=2, max_new_tokens=40, stream=pieces.append)
    assert "".join(pieces) == streamed and json.loads(streamed)
    raw = voice.generate("weather:", json_schema={"type": "object", "properties": {"rain": {"type": "boolean"}},
                                                  "required": ["rain"], "additionalProperties": False}, seed=0)
    assert json.loads(raw)["rain"] in (True, False)


@pytest.mark.parametrize("schema, message", [
    ({"type": "object", "properties": {"a": {"type": "frobnicate"}}}, "cannot use this JSON schema"),
    ("{not json", "not JSON"),
    ([1, 2], "JSON object"),
])
def test_bad_schemas_are_one_line_errors(voice, schema, message):
    from likeme.use.grammar import compile_schema

    with pytest.raises(LikemeError, match=message):
        compile_schema(schema)


def test_cli_json_schema(run, tmp_path):
    import json

    (tmp_path / "mood.json").write_text(json.dumps(MOOD))
    p = cli("chat", str(run), "-m", "hi", "--json-schema", str(tmp_path / "mood.json"), "--seed", "3",
            "--max-new-tokens", "40")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["mood"] in ("happy", "sad")
    p = cli("generate", str(run), "w:", "--no-echo", "--json-schema", str(tmp_path / "mood.json"), "--seed", "3",
            "--max-new-tokens", "40")
    assert p.returncode == 0 and json.loads(p.stdout)["ok"] in (True, False)
    (tmp_path / "bad.json").write_text("{nope")
    p = cli("chat", str(run), "-m", "hi", "--json-schema", str(tmp_path / "bad.json"))
    assert p.returncode == 1 and "not JSON" in p.stderr and "Traceback" not in p.stderr
    p = cli("chat", str(run), "-m", "hi", "--json-schema", str(tmp_path / "missing.json"))
    assert p.returncode == 1 and "no such file" in p.stderr


def test_stop_strings_cut_the_reply(voice):
    free = voice.reply(["hi"], seed=4, max_new_tokens=30)
    assert len(free) >= 3
    stop = free[1:3]
    cut = voice.reply(["hi"], seed=4, max_new_tokens=30, stop=[stop])
    assert cut == free[: free.index(stop)] and cut.finish == "stop"
    pieces = []
    streamed = voice.reply(["hi"], seed=4, max_new_tokens=30, stop=[stop], stream=pieces.append)
    assert "".join(pieces) == streamed == cut  # a stop string never shows, not even while streaming


def test_cancel_stops_after_the_next_token(voice):
    import threading

    cancel = threading.Event()
    seen = []

    def piece(p):
        seen.append(p)
        cancel.set()

    out = voice.reply(["hi"], seed=0, max_new_tokens=60, stream=piece, cancel=cancel, repetition_penalty=1.0)
    assert out.finish in ("cancelled", "stop") and len(out.token_ids) <= 3


def test_system_text_joins_the_training_system_turn(voice):
    plain = voice.tokenizer.decode(voice.prompt_ids(["hi"]))
    told = voice.tokenizer.decode(voice.prompt_ids(["hi"], system="Be brief."))
    assert told == plain.replace("own words and style.", "own words and style.\nBe brief.")
