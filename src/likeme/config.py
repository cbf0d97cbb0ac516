"""Recipe configs: one dataclass per recipe, filled from a YAML file and from CLI flags.

Each field's help lives once, in `field(metadata={"help": ...})`; `click_options` turns the fields
into flags (litgpt's `TrainArgs`), `from_sources` merges defaults < YAML file < flags.

    >>> @dataclass
    ... class Demo:
    ...     lr: float = field(default=2e-4, metadata={"help": "Learning rate."})
    >>> from_sources(Demo, yaml_path=None, flags={"lr": 1e-3}).lr
    0.001
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from likeme.errors import LikemeError


def _flag(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("flag", f.name.replace("_", "-"))


def click_options(cls):
    """A decorator adding one click option per dataclass field (default None = "not given")."""
    import click

    hints = typing.get_type_hints(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.metadata.get("cli") is False:
                continue
            hint = hints[f.name]
            base = [hint] if typing.get_origin(hint) is list else \
                [a for a in typing.get_args(hint) if a is not type(None)] or [hint]  # X | None -> X
            typ = base[0] if base[0] in (int, float, str, bool) else str
            default = f.default if f.default is not dataclasses.MISSING else None
            help_ = f.metadata.get("help", "") + (f" [default: {default}]" if default not in (None, "") else "")
            if typing.get_origin(base[0]) is list:  # a repeatable flag: --data a.txt --data b.txt
                opt = click.option(_flag(f), f.name, multiple=True, default=None, help=f.metadata.get("help", ""),
                                   metavar=f.metadata.get("metavar"))
            elif typ is bool:
                opt = click.option(_flag(f) + "/--no-" + _flag(f)[2:], f.name, default=None, help=help_)
            elif "choices" in f.metadata:
                opt = click.option(_flag(f), f.name, type=click.Choice(f.metadata["choices"]), default=None,
                                   help=help_)
            else:
                opt = click.option(_flag(f), f.name, type=typ, default=None, help=help_,
                                   metavar=f.metadata.get("metavar"))
            fn = opt(fn)
        return fn

    return decorate


def from_sources(cls, yaml_path: str | Path | None = None, flags: dict | None = None):
    """defaults < YAML file < flags (flags that are None were not given)."""
    import yaml

    values: dict = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if yaml_path:
        try:
            loaded = yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise LikemeError(f"{yaml_path}: cannot read the config ({str(e).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise LikemeError(f"{yaml_path}: a config file is a YAML mapping of setting: value")
        loaded = {k.replace("-", "_"): v for k, v in loaded.items()}
        unknown = set(loaded) - names
        if unknown:
            raise LikemeError(f"{yaml_path}: unknown settings {sorted(unknown)}; known: {', '.join(sorted(names))}")
        values.update(loaded)
    values.update({k: list(v) if isinstance(v, tuple) else v for k, v in (flags or {}).items()
                   if v is not None and v != () and k in names})
    try:
        return cls(**values)
    except TypeError as e:
        raise LikemeError(f"bad config: {e}") from None


def precision_field():
    """The `--precision` field every training recipe has (training.trainer.precision reads it)."""
    return dataclasses.field(default="auto", metadata={
        "choices": ["auto", "fp32", "bf16", "fp16"],
        "help": "Number format of training: auto is bf16 mixed precision on a CUDA GPU and on a CPU with native "
                "bf16 (AVX512-BF16 / AMX) where it measures faster, fp32 elsewhere; fp16 (loss-scaled) needs a GPU."})


def quantize_field():
    """The `--quantize` field of the recipes that train LoRA adapters on a causal LM (QLoRA)."""
    return dataclasses.field(default=None, metadata={
        "choices": ["4bit", "8bit"],
        "help": "Load the base in 4 bits (NF4, QLoRA) or 8 bits through bitsandbytes and train LoRA adapters on "
                "it: a CUDA GPU only; about a quarter of the base's memory in 4 bits."})


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
