"""`likeme export`: hf, gguf and ollama; the train/serve contract (one prompt, byte for byte, whichever way
the voice is run); the GGUF read back by transformers; errors."""


import pytest
import torch
from tiny import likeme_cli

from likeme.errors import LikemeError

CHATS = {  # (OpenAI-style messages, the same chat as likeme.chat takes it: history, system)
    "two people": ([{"role": "user", "content": "hi"}], (["hi"], None)),
    "two people, longer": ([{"role": "user", "content": "cake?"}, {"role": "assistant", "content": "sure"},
                            {"role": "user", "content": "chocolate or lemon?"}],
                           (["cake?", ("Ana", "sure"), "chocolate or lemon?"], None)),
    "group chat with names": ([{"role": "user", "name": "Sam", "content": "hi"}, {"role": "assistant", "content": "yo"},
                               {"role": "user", "name": "Bo", "content": "cake?"}],
                              ([("Sam", "hi"), ("Ana", "yo"), ("Bo", "cake?")], None)),
    "with a system prompt": ([{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "hi"}],
                             (["hi"], "Answer in French.")),
}


@pytest.fixture(scope="module")
def voice_run(tiny_voice_run):
    return tiny_voice_run


@pytest.fixture(scope="module")
def exported(voice_run, tmp_path_factory):
    from likeme.use.export import export

    out = tmp_path_factory.mktemp("exported")
    return {"hf": export(voice_run, "hf", out=out / "hf"),
            "f16": export(voice_run, "gguf", quant="f16", out=out / "gguf"),
            "q8_0": export(voice_run, "gguf", quant="q8_0", out=out / "gguf"),
            "ollama": export(voice_run, "ollama", out=out / "ollama")}


def gguf_fields(path) -> dict:
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.") or
            k in ("tokenizer.ggml.pre", "tokenizer.ggml.model", "tokenizer.ggml.eos_token_id",
                  "tokenizer.ggml.eot_token_id")} | {"tensors": {t.name: (t.tensor_type.name, [int(x) for x in t.shape])
                                                       for t in reader.tensors}}


def render_jinja(template: str, messages: list[dict]) -> str:
    """A chat template rendered as transformers and llama.cpp's --jinja render it."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")


@pytest.mark.parametrize("chat", list(CHATS))
def test_one_prompt_whichever_way_the_voice_runs(voice_run, exported, chat):
    from transformers import AutoTokenizer

    import likeme
    from likeme.serve.app import history_of
    from likeme.serve.schemas import ChatMessage
    from likeme.use.export import render_ollama

    messages, (history, system) = CHATS[chat]
    voice = likeme.load(voice_run)
    tok = voice.tokenizer
    chat_prompt = tok.decode(voice.prompt_ids(history, system=system))  # likeme chat
    served_history, served_system = history_of([ChatMessage(**m) for m in messages], voice)
    server_prompt = tok.decode(voice.prompt_ids(served_history, system=served_system))  # likeme serve
    gguf_prompt = render_jinja(gguf_fields(exported["q8_0"])["tokenizer.chat_template"], messages)
    hf_prompt = AutoTokenizer.from_pretrained(exported["hf"]).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)
    folded = [{"role": m["role"], "content": (f"{m['name']}: " if m.get("name") else "") + m["content"]}
              for m in messages]  # Ollama's messages have no name: a group chat writes it in the content
    ollama_prompt = render_ollama(exported["ollama"].read_text(), folded if chat == "group chat with names" else messages)
    assert chat_prompt.startswith("<|im_start|>system\nYou are Ana.")
    assert server_prompt == chat_prompt
    assert gguf_prompt == chat_prompt
    assert hf_prompt == chat_prompt
    assert ollama_prompt == chat_prompt


def test_ollama_template_golden(exported):
    """The Modelfile's Go template, as Ollama renders it for a two-message chat (written out by hand)."""
    from likeme.use.export import render_ollama

    text = exported["ollama"].read_text()
    want = ("<|im_start|>system\nYou are Ana. Write Ana's next message in this chat, in Ana's own words and style."
            "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert render_ollama(text, [{"role": "user", "content": "hi"}]) == want
    assert text.startswith(f"FROM ./{exported['q8_0'].name}\n")
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    assert "PARAMETER temperature 0.8" in text and "PARAMETER repeat_penalty 1.1" in text
    assert (exported["ollama"].parent / exported["q8_0"].name).is_file()


def test_gguf_names_shapes_and_tokenizer(voice_run, exported):
    import likeme

    voice = likeme.load(voice_run)
    cfg = voice.model.config
    f = gguf_fields(exported["q8_0"])
    assert f["general.architecture"] == "llama" and f["llama.block_count"] == cfg.num_hidden_layers
    assert f["llama.attention.head_count_kv"] == cfg.num_key_value_heads
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "gpt-2"
    im_end = voice.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert f["tokenizer.ggml.eos_token_id"] == im_end and f["tokenizer.ggml.eot_token_id"] == im_end
    t = f["tensors"]
    assert t["token_embd.weight"] == ("Q8_0", [cfg.hidden_size, cfg.vocab_size])  # llama.cpp's (in, out) order
    assert t["blk.0.attn_q.weight"][0] == "Q8_0" and t["blk.0.attn_norm.weight"] == ("F32", [cfg.hidden_size])
    assert t["blk.1.attn_k.weight"][1] == [cfg.hidden_size, cfg.num_key_value_heads * cfg.hidden_size // cfg.num_attention_heads]
    assert len(t) == 2 + 9 * cfg.num_hidden_layers + (0 if cfg.tie_word_embeddings else 1)
    assert gguf_fields(exported["f16"])["tensors"]["blk.0.ffn_up.weight"][0] == "F16"


def greedy(model, ids, n=12):
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, eos_token_id=None,
                             attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    return out[0, len(ids):].tolist()


def test_gguf_reads_back_in_transformers(voice_run, exported):
    from transformers import AutoModelForCausalLM

    import likeme

    voice = likeme.load(voice_run)
    ids = voice.prompt_ids(["chocolate or lemon?"])
    want = greedy(voice.model, ids)
    f16 = AutoModelForCausalLM.from_pretrained(exported["f16"].parent, gguf_file=exported["f16"].name, dtype=torch.float32)
    assert greedy(f16, ids) == want  # the same greedy tokens
    q8 = AutoModelForCausalLM.from_pretrained(exported["q8_0"].parent, gguf_file=exported["q8_0"].name, dtype=torch.float32)
    with torch.inference_mode():
        a = voice.model(torch.tensor([ids])).logits[0, -1].float()  # bf16 where the CPU has it natively
        b = q8(torch.tensor([ids])).logits[0, -1]
    assert torch.allclose(a, b, atol=0.05 * a.abs().max().item()), (a - b).abs().max()


def test_hf_export_loads_as_it_is(voice_run, exported):
    from transformers import AutoModelForCausalLM, GenerationConfig

    import likeme

    voice = likeme.load(voice_run)
    model = AutoModelForCausalLM.from_pretrained(exported["hf"])
    ids = voice.prompt_ids(["hi"])
    assert greedy(model, ids) == greedy(voice.model, ids)  # LoRA merged
    gen = GenerationConfig.from_pretrained(exported["hf"])
    assert voice.tokenizer.convert_tokens_to_ids("<|im_end|>") in gen.eos_token_id
    assert not (exported["hf"] / "adapter_config.json").exists()


def test_export_cli_and_errors(voice_run, tmp_path, _tiny_models):
    p = likeme_cli("export", voice_run, "--to", "gguf", "--quant", "q4_1", "--out", tmp_path / "q4")
    assert p.returncode == 0 and p.stdout.strip().endswith("ana-q4_1.gguf"), p.stderr
    assert (tmp_path / "q4" / "ana-q4_1.gguf").is_file()
    p = likeme_cli("export", voice_run, "--to", "gguf", "--quant", "q3_z", "--out", tmp_path / "x")
    assert p.returncode == 1 and "unknown --quant 'q3_z'" in p.stderr and "Traceback" not in p.stderr
    p = likeme_cli("export", voice_run, "--to", "zip")
    assert p.returncode == 2 and "zip" in p.stderr
    from conftest import _copy
    st = _copy(_tiny_models, "st", tmp_path)
    p = likeme_cli("export", st, "--to", "gguf")
    assert p.returncode == 1 and "language models" in p.stderr and "Traceback" not in p.stderr
    with pytest.raises(LikemeError, match="--quant is for gguf"):
        from likeme.use.export import export
        export(voice_run, "hf", quant="q8_0", out=tmp_path / "h")
