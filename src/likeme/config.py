"""Recipe configs: one dataclass per recipe, filled from a YAML file and from CLI flags.

Each field's help lives once, in `field(metadata={"help": ...})`; `click_options` turns the fields
into flags (litgpt's `TrainArgs`), `from_sources` merges defaults < YAML file < flags.

    >>> @dataclass
    ... class Demo:
    ...     lr: float = field(default=2e-4, metadata={"help": "Learning rate."})
    >>> from_sources(Demo, yaml_path=None, flags={"lr": 1e-3}).lr
    0.001

The fields every training recipe has are declared once, in `RunFields`, `TrainingFields` and `LoraFields`,
and a recipe's config inherits them (TRL's `ModelConfig`); it declares a field again only where its
default or its help differs, e.g. `batch_size: int = field(default=4, ...)  # pairs, each two rows`.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from likeme.errors import LikemeError


def _flag(f: dataclasses.Field) -> str:
    return "--" + f.metadata.get("flag", f.name.replace("_", "-"))


def help_text(cls, f: dataclasses.Field) -> str:
    """The field's help, with the config class's attributes named in its metadata's `fill` put in:
    RunFields' out, "Run folder (default: $LIKEME_HOME/runs/{run_name}).", in a config whose
    run_name = "instruct" -> "Run folder (default: $LIKEME_HOME/runs/instruct)."."""
    text = f.metadata.get("help", "")
    fill = f.metadata.get("fill", ())
    return text.format(**{name: getattr(cls, name) for name in fill}) if fill else text


def click_options(cls):
    """A decorator adding one click option per dataclass field (default None = "not given"): the class's
    own fields first, in their order, then those it inherits (RunFields' --seed, --out, ...)."""
    import click

    hints = typing.get_type_hints(cls)
    own = list(vars(cls).get("__annotations__", {}))  # in the order the class declares them
    fields = sorted(dataclasses.fields(cls), key=lambda f: own.index(f.name) if f.name in own else len(own))

    def decorate(fn):
        for f in reversed(fields):
            if f.metadata.get("cli") is False:
                continue
            hint = hints[f.name]
            base = [hint] if typing.get_origin(hint) is list else \
                [a for a in typing.get_args(hint) if a is not type(None)] or [hint]  # X | None -> X
            typ = base[0] if base[0] in (int, float, str, bool) else str
            default = f.default if f.default is not dataclasses.MISSING else None
            help_ = help_text(cls, f) + (f" [default: {default}]" if default not in (None, "") else "")
            if typing.get_origin(base[0]) is list:  # a repeatable flag: --data a.txt --data b.txt
                opt = click.option(_flag(f), f.name, multiple=True, default=None, help=help_text(cls, f),
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


REPORT_TO = ["none", "tensorboard", "mlflow", "trackio"]  # transformers' integrations; each an optional extra


def report_to_field():
    """The `--report-to` field of every recipe that trains through transformers' Trainer (training.trainer.arguments
    reads it from the run's config)."""
    return dataclasses.field(default="none", metadata={
        "choices": REPORT_TO,
        "help": "Also log the training to an experiment tracker (transformers' integration; pip install "
                "'likeme[NAME]'): tensorboard writes RUN/tensorboard, mlflow and trackio go where their own "
                "settings say (MLFLOW_TRACKING_URI, trackio's project 'likeme'). metrics.jsonl is written either way."})


@dataclass
class RunFields:
    """Every training recipe's run folder and seed. The config names its default folder in `run_name`
    and what the seed decides in `seeded` (class attributes, not settings), and the help shows them."""
    run_name = "NAME"  # --out's default folder under $LIKEME_HOME/runs
    seeded = "data order"  # what --seed decides
    seed: int = field(default=0, metadata={"help": "Random seed ({seeded}).", "fill": ("seeded",)})
    out: str | None = field(default=None, metadata={"help": "Run folder (default: $LIKEME_HOME/runs/{run_name}).",
                                                     "fill": ("run_name",)})


@dataclass
class TrainingFields:
    """How long and how fast a recipe trains, and in what number format. `lr` is None where the default
    depends on what trains (training.causal_lm.learning_rate)."""
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training examples."})
    max_steps: int | None = field(default=None, metadata={
        "help": "Stop after this many optimizer steps (overrides --epochs)."})
    lr: float | None = field(default=None, metadata={"help": "Peak learning rate."})
    batch_size: int = field(default=8, metadata={"help": "Examples per step."})
    precision: str = precision_field()
    report_to: str = report_to_field()


@dataclass
class LoraFields:
    """The LoRA adapters' shape (Hu et al. 2021), for the recipes that train them on a causal LM."""
    lora_r: int = field(default=32, metadata={
        "help": "LoRA rank. 32: in 10 CPU minutes on Shakespeare held-out perplexity 82.9 against 88.1 at 16 "
                "(bench/voice_defaults.py); in 3 minutes on chatterbot 93 against 105; 64 gave 87 with an adapter "
                "twice the size."})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scale numerator (2 x rank, the common choice)."})
    lora_dropout: float = field(default=0.0, metadata={
        "help": "Dropout on the LoRA path (0: PEFT's default). Drawing its masks was a third of a voice step on a "
                "2-core CPU: 0.05 made a step 1.7x slower (bench/lora_step.py); in 4 minutes the Richard III voice "
                "reached held-out perplexity 71.88 without it, 73.27 with it (BENCHMARKS.md)."})


def with_default(fields_cls, name: str, default) -> dataclasses.Field:
    """The shared field `name` of `fields_cls` with another default and the same help and flag, for a
    recipe whose default differs: in PreferConfig, `lora_alpha: int = with_default(LoraFields, "lora_alpha", 32)`."""
    return field(default=default, metadata=fields_cls.__dataclass_fields__[name].metadata)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
