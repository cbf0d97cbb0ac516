"""The llama.cpp backend (optional: llama-cpp-python compiles llama.cpp, `make llama`); skipped without it."""

import json

import pytest
from tiny import likeme_cli

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def voice_run(tiny_voice_run):
    return tiny_voice_run


@pytest.fixture(scope="module")
def both(voice_run):
    from likeme.use import generate, llama

    return generate.load(voice_run, precision="fp32"), llama.load(voice_run, quant="f32")


def test_greedy_replies_are_the_torch_backends(both, voice_run):
    torch_voice, cpp = both
    for history in (["hi"], ["cake?", ("Ana", "sure"), "chocolate or lemon?"]):
        a = cpp.reply(history, do_sample=False, max_new_tokens=16)
        b = torch_voice.reply(history, do_sample=False, max_new_tokens=16)
        assert a.token_ids == b.token_ids and a == b and a.finish == b.finish
    assert (voice_run / "export" / "ana-f32.gguf").is_file()  # exported on first use, kept in the run


def test_sampling_streaming_stops_and_json(both):
    _, cpp = both
    assert cpp.reply(["hi"], seed=3, max_new_tokens=12) == cpp.reply(["hi"], seed=3, max_new_tokens=12)
    pieces = []
    out = cpp.reply(["hi"], seed=4, max_new_tokens=12, stream=pieces.append)
    assert "".join(pieces) == out
    three = cpp.reply(["hi"], seed=5, num_return_sequences=3, max_new_tokens=8)
    assert len(three) == 3
    free = cpp.reply(["hi"], seed=6, max_new_tokens=20)
    if len(free) >= 3:
        cut = cpp.reply(["hi"], seed=6, max_new_tokens=20, stop=[free[1:3]])
        assert cut == free[: free.index(free[1:3])] and cut.finish == "stop"
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    assert json.loads(cpp.reply(["hi"], json_schema=schema, seed=1, max_new_tokens=20))["ok"] in (True, False)


def test_cli_backends_agree(voice_run):
    args = ["chat", voice_run, "-m", "hi", "--no-sample", "--max-new-tokens", 12]
    torch_out = likeme_cli(*args, "--backend", "torch")
    cpp_out = likeme_cli(*args, "--backend", "llama.cpp")
    assert torch_out.returncode == cpp_out.returncode == 0, cpp_out.stderr
    assert cpp_out.stdout == torch_out.stdout


def test_auto_prefers_llama_cpp(voice_run):
    from likeme.use.load import load_voice

    assert type(load_voice(voice_run, backend="auto")).__name__ == "LlamaVoice"
    assert type(load_voice(voice_run, backend="torch")).__name__ == "Voice"
