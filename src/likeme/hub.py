"""The Hugging Face hub side of model names: the local cache first, a download only when allowed.

`offline()` reads HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE; `snapshot` finds a cached model's folder,
`load` calls a `from_pretrained` on a hub id (cache first), `download` fetches the files likeme reads,
and `cached` lists the models in the cache. Turning these into `ModelRef`s is models.py's job.

    >>> from likeme import hub
    >>> hub.snapshot("HuggingFaceTB/SmolLM2-360M-Instruct")   # None when it is not downloaded
    PosixPath('.../models--HuggingFaceTB--SmolLM2-360M-Instruct/snapshots/<sha>')
"""
from __future__ import annotations

import os
from pathlib import Path

from likeme.errors import LikemeError
from likeme.paths import first_line


def offline() -> bool:
    """True when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set (1, true, yes or on): never reach the hub."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of `repo_id` (the one `main` points at), or None if not downloaded."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id huggingface_hub rejects, or no cache at all: not downloaded
        return None
    return Path(found).parent if isinstance(found, str) else None


def load(loader, repo_id: str, what: str, **kwargs):
    """From the Hugging Face cache first, so a cached model loads with no network; else download it."""
    try:
        return loader(repo_id, local_files_only=True, **kwargs)
    except Exception as cached_miss:
        if offline():
            raise LikemeError(
                f"{what} of {repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
                f"download it while online (hf download {repo_id})"
            ) from cached_miss
    try:
        return loader(repo_id, **kwargs)
    except Exception as e:
        raise LikemeError(f"could not download {what} of {repo_id!r} ({first_line(e)}): check the id and your connection") from e


def download(repo_id: str) -> Path:
    """Download the files transformers and sentence-transformers read; the snapshot folder."""
    if offline():
        raise LikemeError(f"{repo_id!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: download it while online (hf download {repo_id})")
    try:
        from huggingface_hub import snapshot_download

        # The files transformers and sentence-transformers read; not the .bin/.h5/.onnx duplicates.
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]))
    except Exception as e:
        raise LikemeError(f"could not download {repo_id!r} ({first_line(e)}): check the id and your connection") from e


def cached() -> list[tuple[str, Path, int]]:
    """The models in the Hugging Face cache that `from_pretrained` can read: (repo_id, snapshot, bytes on disk),
    sorted by id, the newest snapshot of each. Empty when there is no cache (or no huggingface_hub)."""
    try:
        from huggingface_hub import scan_cache_dir

        cache = scan_cache_dir()
    except Exception:  # no cache folder yet, or huggingface_hub missing or changed: nothing to list
        return []
    rows = []
    for repo in sorted(cache.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        folder = max(repo.revisions, key=lambda r: r.last_modified).snapshot_path
        if not (folder / "config.json").exists():
            continue  # a model without a config (a GGUF-only repo, say) is nothing from_pretrained can read
        rows.append((repo.repo_id, folder, repo.size_on_disk))
    return rows
