"""Taking a voice anywhere: a run -> a plain transformers folder, a llama.cpp GGUF file, or an Ollama model,
each prompting exactly as the voice was trained and stopping at the end of NAME's turn. Offline, in Python.

    likeme export runs/ana --to hf       # runs/ana/export/hf/: safetensors, tokenizer, chat template,
                                         #   generation_config.json (eos = the end-of-turn tokens)
    likeme export runs/ana --to gguf --quant q8_0      # runs/ana/export/ana-q8_0.gguf
    likeme export runs/ana --to ollama   # the GGUF + a Modelfile: ollama create ana -f .../Modelfile

The chat template shipped with every format is the base model's, with two things added that the voice
was trained with: the system turn `prompts.system_prompt(NAME)` when a chat has none, and the speaker's
name before each of the others' messages ("Bo: cake?") when more than one other person speaks (a
message's `name`). So `[{"role": "user", "content": "hi"}]` gives the training prompt byte for byte,
in transformers, vLLM, llama.cpp and (through the Modelfile's own template) Ollama.

GGUF: llama.cpp's tensor names and q/k row order for Llama-style models (SmolLM2, Llama, Qwen2 without
biases), the tokenizer as a byte-level BPE with its pre-tokenizer type, eos and eot = NAME's end of
turn; weights written by the `gguf` package (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1; norms stay
f32, and a weight whose rows do not split into the format's blocks stays f16).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from likeme.errors import LikemeError

FORMATS = ("hf", "gguf", "ollama")
QUANTS = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1")

# llama.cpp's names for Llama tensors (its convert_hf_to_gguf.py); `{i}` is the layer.
GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


# -- the chat template -------------------------------------------------------------------------------


def voice_template(base_template: str, name: str, partner: str) -> str:
    """The chat template every export ships: `prompts.jinja_template` (the base model's, with the voice's
    system turn and speaker names in front)."""
    from likeme.prompts import jinja_template

    return jinja_template(base_template, name, partner)


# -- the GGUF file --------------------------------------------------------------------------------


def _permute(w, n_head: int):
    """llama.cpp stores q/k rows interleaved for its rotary kernel (transformers undoes this on load).

    (out, in) -> (n_head, 2, out/n_head/2, in) -> swap the middle axes -> (out, in)
    """
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def pre_tokenizer_type(tokenizer) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE; a clear error for one it would
    split differently (a GGUF that tokenizes unlike training answers unlike training)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    pre = spec.get("pre_tokenizer") or {}
    if spec.get("model", {}).get("type") != "BPE":
        raise LikemeError(f"GGUF export handles byte-level BPE tokenizers; this one is {spec.get('model', {}).get('type')}")
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"  # the GPT-2 split regex: what transformers' byte-level BPE applies (llama.cpp spells it gpt-2)
    steps = [p.get("type") for p in pre.get("pretokenizers", [])] if pre.get("type") == "Sequence" else []
    if steps == ["Digits", "ByteLevel"] and pre["pretokenizers"][0].get("individual_digits"):
        return "smollm"  # GPT-2's split after one digit at a time (SmolLM, StarCoder)
    raise LikemeError(f"this tokenizer's pre-tokenizer ({json.dumps(pre)[:80]}) has no llama.cpp name that "
                      "likeme knows: export --to hf instead")


def write_gguf(model, tokenizer, path: str | os.PathLike, *, quant: str = "q8_0", chat_template: str | None = None,
               eos_ids: list[int] = (), name: str = "likeme voice") -> Path:
    """Write a Llama-style transformers model and its tokenizer as a GGUF file."""
    import gguf
    import numpy as np

    if quant not in QUANTS:
        raise LikemeError(f"unknown --quant {quant!r}: use one of {', '.join(QUANTS)}")
    cfg = model.config
    if getattr(cfg, "model_type", None) not in ("llama", "mistral", "qwen2") or getattr(cfg, "attention_bias", False):
        raise LikemeError(f"GGUF export handles Llama-style models; this one is {cfg.model_type!r}: "
                          "export --to hf instead")
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    pre = pre_tokenizer_type(tokenizer)
    vocab = {**bpe["vocab"], **{t.content: i for i, t in tokenizer.added_tokens_decoder.items()}}
    n_vocab = max(cfg.vocab_size, max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    types = [gguf.TokenType.UNUSED] * n_vocab
    for token, i in vocab.items():
        tokens[i], types[i] = token, gguf.TokenType.NORMAL
    for i, t in tokenizer.added_tokens_decoder.items():
        types[i] = gguf.TokenType.CONTROL if t.special else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    rope = getattr(cfg, "rope_parameters", None) or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_file_type(getattr(gguf.LlamaFileType, "MOSTLY_" + quant.upper(), gguf.LlamaFileType.ALL_F32)
                         if quant != "f32" else gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    eos = list(eos_ids) or [tokenizer.eos_token_id]
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(eos[0])
    writer.add_eot_token_id(eos[0])  # llama.cpp ends a chat turn here
    if tokenizer.unk_token_id is not None:
        writer.add_unk_token_id(tokenizer.unk_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0])
    writer.add_add_bos_token(False)  # the chat template writes every special token itself
    writer.add_chat_template(chat_template or tokenizer.chat_template or "")

    names = {}
    for i in range(cfg.num_hidden_layers):
        names.update({hf.format(i=i): g.format(i=i) for hf, g in GGUF_NAMES.items()})
    names.update({k: v for k, v in GGUF_NAMES.items() if "{i}" not in k})
    qtype = getattr(gguf.GGMLQuantizationType, quant.upper())
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # tied: llama.cpp files store the embedding once
        if key not in names:
            raise LikemeError(f"GGUF export: no llama.cpp name for tensor {key!r}: export --to hf instead")
        w = tensor.detach().float().cpu().numpy()
        if key.endswith("q_proj.weight"):
            w = _permute(w, cfg.num_attention_heads)
        elif key.endswith("k_proj.weight"):
            w = _permute(w, cfg.num_key_value_heads)
        t = qtype if w.ndim == 2 else gguf.GGMLQuantizationType.F32  # norms stay f32, as llama.cpp writes them
        if t not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) and w.shape[-1] % block:
            t = gguf.GGMLQuantizationType.F16
        if t == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(names[key], np.ascontiguousarray(w, dtype=np.float32))
        elif t == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(names[key], np.ascontiguousarray(w, dtype=np.float16))
        else:
            data = gguf.quants.quantize(w, t)
            writer.add_tensor(names[key], data, raw_shape=data.shape, raw_dtype=t)  # (rows, bytes per row)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


# -- Ollama ------------------------------------------------------------------------------------------


def modelfile(gguf_name: str, name: str, stops: list[str], sampling) -> str:
    """An Ollama Modelfile whose Go template writes the ChatML prompt the voice was trained on: NAME's
    training system turn (with the chat's own system messages added after it on new lines), then the
    messages, then the assistant's turn; it stops at every end-of-turn token and samples as likeme does.
    Ollama's messages have no `name`: in a group chat, write "Bo: cake?" in the content, as training did."""
    from likeme.prompts import ollama_template

    template = ollama_template(name)
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines += [f"PARAMETER temperature {sampling.temperature}", f"PARAMETER top_k {sampling.top_k}",
              f"PARAMETER top_p {sampling.top_p}", f"PARAMETER repeat_penalty {sampling.repetition_penalty}",
              f"PARAMETER num_predict {sampling.max_new_tokens}"]
    return "\n".join(lines) + "\n"


def render_ollama(modelfile_text: str, messages: list[dict]) -> str:
    """What Ollama sends the model for `messages` with a Modelfile written by `modelfile`: its Go
    template evaluated by hand (`range .Messages`, `if eq/ne .Role "system"`, `.Role`, `.Content`), so
    that tests can compare it with the other prompts without an Ollama install."""
    import re

    template = modelfile_text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]

    def loop(body: str) -> str:
        out = ""
        for m in messages:
            def cond(match):
                op, role, inner = match.group(1), match.group(2), match.group(3)
                return inner if (m["role"] == role) == (op == "eq") else ""
            piece = re.sub(r'\{\{ if (eq|ne) \.Role "(\w+)" \}\}(.*?)\{\{ end \}\}', cond, body, flags=re.S)
            out += piece.replace("{{ .Role }}", m["role"]).replace("{{ .Content }}", m["content"])
        return out

    return re.sub(r"\{\{ range \.Messages \}\}(.*?\{\{ end \}\})\{\{ end \}\}", lambda mt: loop(mt.group(1)),
                  template, flags=re.S)


# -- export -------------------------------------------------------------------------------------------


def export(run: str | os.PathLike, to: str, *, quant: str | None = None, out: str | os.PathLike | None = None) -> Path:
    """Export a voice run (or any causal LM) to `to` ("hf", "gguf", "ollama"); returns the folder or file
    written. Default place: RUN/export/. `quant`: the GGUF weight format (default q8_0)."""
    from likeme import models, runs
    from likeme.paths import atomic_dir
    from likeme.use import generate

    if to not in FORMATS:
        raise LikemeError(f"unknown export format {to!r}: use one of {', '.join(FORMATS)}")
    if quant is not None and quant not in QUANTS:
        raise LikemeError(f"unknown --quant {quant!r}: use one of {', '.join(QUANTS)}")
    if to == "hf" and quant not in (None, "f32"):
        raise LikemeError("--quant is for gguf and ollama; an hf export keeps the weights as they are")
    ref = models.resolve(run)
    meta = runs.read_meta(ref.path) if ref.kind == "run" else {}
    task = meta.get("task") or ref.task
    if task != "causal-lm":
        raise LikemeError(f"{run} is a {task} model: export writes language models (voice, preference and "
                          "from-scratch runs); a classifier or embedder run is a transformers folder already (RUN/model)")
    voice = generate.load(run, device="cpu", precision="fp32")  # the weights as trained
    name = voice.name
    base = voice.tokenizer.chat_template
    template = voice_template(base, name, voice.partner) if name and base and voice.format == "persona" else base
    stop_ids = voice.reply_stop_ids
    slug = runs.slug(ref.path.name if ref.kind == "run" else str(run))
    folder = Path(out) if out else (ref.path / "export" if ref.kind == "run" else Path.cwd() / f"{slug}-export")
    quant = quant or "q8_0"

    if to == "hf":
        target = folder / "hf" if not out else folder
        with atomic_dir(target) as tmp:
            voice.model.save_pretrained(tmp)
            tok = voice.tokenizer
            tok.chat_template = template
            tok.save_pretrained(tmp)
            gen = voice.model.generation_config
            gen.eos_token_id = stop_ids[:-1] if len(stop_ids) > 1 else stop_ids  # NAME's turn ends: <|im_end|>, eos
            gen.pad_token_id = voice.pad_id
            gen.do_sample, gen.temperature, gen.top_k, gen.top_p = True, voice.sampling.temperature, \
                voice.sampling.top_k, voice.sampling.top_p
            gen.repetition_penalty = voice.sampling.repetition_penalty
            gen.save_pretrained(tmp)
        return target
    if to == "ollama" and "<|im_end|>" not in voice.tokenizer.get_vocab():
        raise LikemeError("the Ollama export writes ChatML prompts (<|im_start|> ... <|im_end|>), and this model's "
                          "template is another: use --to gguf with llama.cpp's --jinja")
    gguf_file = folder / f"{slug}-{quant}.gguf"
    write_gguf(voice.model, voice.tokenizer, gguf_file, quant=quant, chat_template=template,
               eos_ids=stop_ids, name=f"likeme {slug}")
    if to == "gguf":
        return gguf_file
    stops = [t for t in voice.tokenizer.convert_ids_to_tokens(stop_ids) if t]
    (folder / "Modelfile").write_text(modelfile(gguf_file.name, name or slug, stops, voice.sampling), "utf-8")
    return folder / "Modelfile"
