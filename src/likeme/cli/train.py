"""Training: the `train` group, one command per recipe, and the preference pairs it learns from (pairs, compare).

Each `likeme train NAME` is built from RECIPES: its flags are the config's fields, its help the config's
docstring, and it prints the recipe's `summary` of metrics.json when done. A new recipe is a file in
likeme/recipes/ and a line in RECIPES."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from likeme.cli.options import ARGV, bar_if_tty, db_option
from likeme.config import click_options  # light: dataclasses and typing only
from likeme.errors import LikemeError
from likeme.recipes import (  # configs: light
    classify,
    distill,
    embed,
    instruct,
    prefer,
    pretrain,
    reward,
    tokenizer,
    voice,
)

RECIPES = {  # likeme train NAME: (its config, the function that trains it, the one that reports its metrics)
    "voice": (voice.VoiceConfig, voice.train_voice, voice.summary),
    "tokenizer": (tokenizer.TokenizerConfig, tokenizer.train_tokenizer, tokenizer.summary),
    "pretrain": (pretrain.PretrainConfig, pretrain.train_pretrain, pretrain.summary),
    "instruct": (instruct.InstructConfig, instruct.train_instruct, instruct.summary),
    "reward": (reward.RewardConfig, reward.train_reward, reward.summary),
    "prefer": (prefer.PreferConfig, prefer.train_prefer, prefer.summary),
    "embedder": (embed.EmbedConfig, embed.train_embedder, embed.summary),
    "distill": (distill.DistillConfig, distill.train_distill, distill.summary),
    "classifier": (classify.ClassifyConfig, classify.train_classifier, classify.summary),
}


@click.group()
def train():
    """Train a model like you: `likeme train voice --as NAME`."""


def train_command(name: str, config_cls):
    """A `likeme train NAME` command whose flags are config_cls's fields, plus --config YAML, --resume, -q,
    and --processes / --strategy for recipes that train a torch model."""
    def wrap(fn):
        fn = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")(fn)
        if "precision" in {f.name for f in dataclasses.fields(config_cls)}:
            fn = click.option("--strategy", type=click.Choice(["ddp", "fsdp", "deepspeed"]), default="ddp",
                              help="With --processes: ddp copies the model into each process (CPU or GPU); fsdp "
                                   "and deepspeed (ZeRO-2) shard it over GPUs.")(fn)
            fn = click.option("--processes", type=click.IntRange(1), default=1, metavar="N",
                              help="Train in N processes, data-parallel: N CPU processes (gloo), or one per GPU "
                                   "through accelerate launch; --batch-size is per process.")(fn)
        fn = click.option("--resume", is_flag=True,
                          help="Continue an unfinished run (--out RUN) from its latest checkpoint.")(fn)
        fn = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
                          help="YAML file of settings (flags given here win).")(fn)
        return train.command(name)(click_options(config_cls)(fn))
    return wrap


def run_recipe(config_cls, train_fn, config_file, flags: dict, quiet: bool, resume: bool):
    """The config from YAML and flags, the recipe run with a progress bar on a terminal; returns
    (config, run folder, its metrics.json). Ctrl-C stops after the current step with a checkpoint."""
    from likeme import processes
    from likeme.config import from_sources

    n, strategy = flags.pop("processes", 1) or 1, flags.pop("strategy", "ddp") or "ddp"
    cfg = from_sources(config_cls, config_file, flags)
    if getattr(cfg, "precision", None):  # an impossible --precision is refused before anything loads
        from likeme.models import default_device
        from likeme.precision import choose

        choose(cfg.precision, default_device(), inference=False)
    tracker = getattr(cfg, "report_to", "none")
    if tracker not in (None, "none"):  # transformers would fail only once the model is loaded
        import importlib.util

        if importlib.util.find_spec(tracker) is None:
            raise LikemeError(f"--report-to {tracker} needs the {tracker} package: pip install 'likeme[{tracker}]'")
    if getattr(cfg, "quantize", None):
        from likeme.models import quantization_config

        if cfg.trainable != "lora":
            raise LikemeError("--quantize loads the base in 4/8 bits to train LoRA adapters on it: use --trainable lora")
        quantization_config(cfg.quantize)
    if (n > 1 or strategy != "ddp") and not processes.launched():
        sys.exit(processes.relaunch(ARGV or sys.argv[1:], n, strategy))
    run = train_fn(cfg, progress=not quiet and sys.stderr.isatty() and processes.is_main(), resume=resume)
    if not processes.is_main():
        sys.exit(0)  # the main process reports
    return cfg, run, json.loads((run / "metrics.json").read_text("utf-8"))


def recipe_command(name: str, config_cls, train_fn, summary):
    """`likeme train NAME`: run the recipe, then print its summary."""
    def command(config_file, resume, quiet, **flags):
        cfg, run, m = run_recipe(config_cls, train_fn, config_file, flags, quiet, resume)
        text = summary(cfg, run, m)
        if text:
            click.echo(text)

    command.__name__, command.__doc__ = f"train_{name}_cmd", config_cls.__doc__
    return train_command(name, config_cls)(command)


for _name, (_config, _train, _summary) in RECIPES.items():
    recipe_command(_name, _config, _train, _summary)


@click.command()
@click.option("--from", "run", required=True, metavar="RUN", help="The voice run that writes the rejected replies.")
@click.option("--as", "name", default=None, metavar="NAME", help="Whose replies are chosen (the run's NAME; checked).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="JSONL file to add the pairs to (default: $LIKEME_HOME/pairs/NAME.jsonl).")
@click.option("--per-context", type=int, default=1, show_default=True,
              help="Written replies per context (0 with --others: only other people's real messages, nothing generated).")
@click.option("--max-contexts", type=int, default=200, show_default=True,
              help="NAME's training replies used at most, spread evenly (0: all; each costs a generation).")
@click.option("--others", is_flag=True, help="Also pair each real reply against someone else's message in its session.")
@click.option("--judge", metavar="RUN", default=None,
              help="Rank the written replies with this run (an embedder, author classifier or reward run of NAME): "
                   "chosen its favourite of --per-context replies, rejected its least favourite.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-new-tokens", type=int, default=None, help="Stop a written reply after this many tokens.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature of the written replies.")
@db_option
def pairs(run, name, out, per_context, max_contexts, others, judge, seed, max_new_tokens, temperature, db):
    """Preference pairs from NAME's own replies: chosen the real reply, rejected what the voice writes.

    Training sessions only (the run's held-out ones never appear). JSONL in TRL's conversational
    prompt / chosen / rejected format, for likeme train reward and likeme train prefer.

    \b
    likeme pairs --from runs/ana-voice                                   # real reply vs written
    likeme pairs --from runs/ana-voice --judge runs/ana-embedder --per-context 4   # best vs worst of 4
    likeme pairs --from runs/ana-voice --others --per-context 0          # Ana's reply vs someone else's"""
    from likeme.models import resolve
    from likeme.runs import read_meta
    from likeme.training import pairs as pairs_

    ref = resolve(run)
    meta = read_meta(ref.path) if ref.kind == "run" else {}
    if name and meta.get("as") and name != meta["as"]:
        raise LikemeError(f"{run} speaks as {meta['as']!r}, not {name!r}: pairs are the run's own NAME's")
    if judge:
        from likeme.use.judge import load_judge

        judge = load_judge(judge, meta.get("as") or name)
    path = Path(out) if out else pairs_.default_path(meta.get("as") or name or "pairs")
    bar = bar_if_tty(max_contexts or None, "contexts")
    try:
        n = pairs_.append(path, pairs_.from_run(
            run, db=db, per_context=per_context, max_contexts=max_contexts or None, others=others, seed=seed,
            judge=judge or None, sampling={"max_new_tokens": max_new_tokens, "temperature": temperature},
            progress=bar.update if bar else None))
    finally:
        if bar:
            bar.close()
    click.echo(f"{path}: {n} pairs added")


@click.command()
@click.argument("run")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="JSONL file to add your choices to (default: $LIKEME_HOME/pairs/NAME.jsonl).")
@click.option("--seed", type=int, default=None, help="Which contexts come up, and the replies written (default: random).")
@click.option("--max-new-tokens", type=int, default=None, help="Stop a written reply after this many tokens.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature of the written replies.")
@db_option
def compare(run, out, seed, max_new_tokens, temperature, db):
    """You pick: for one of NAME's chats after another, the voice writes two replies and you say which
    sounds more like NAME (1 or 2; s skips, q or Ctrl-D stops). Each choice is added as a pair, and as two
    marks (the one you picked good, the other bad) to RUN/marks.jsonl, for likeme train prefer --loss kto."""
    import random

    from likeme.prompts import chat_messages
    from likeme.training import marks
    from likeme.training import pairs as pairs_

    voice, found = pairs_.training_replies(run, db=db, sampling={"max_new_tokens": max_new_tokens,
                                                                 "temperature": temperature})
    path = Path(out) if out else pairs_.default_path(voice.name)
    marks_path = marks.path_of(run)
    rng = random.Random(seed)
    kept = 0
    click.echo(f"Which reply sounds more like {voice.name}? 1 or 2 (s: skip, q: stop). Choices go to {path}", err=True)
    for _ in range(len(found)):
        r = rng.choice(found)
        a, b = voice.reply(r.context, num_return_sequences=2, seed=rng.randrange(2**31))
        if pairs_.same(a, b):
            continue
        click.echo("")
        for t in r.context[-4:]:
            click.echo(f"  {t.author}: {t.text}")
        click.echo(f"1) {voice.name}: {a}\n2) {voice.name}: {b}")
        try:
            answer = input("> ").strip().lower()
        except EOFError:
            break
        if answer in ("q", "quit"):
            break
        if answer in ("1", "2"):
            chosen, rejected = (a, b) if answer == "1" else (b, a)
            made = pairs_.pair(chat_messages(r.context, voice.name, r.prefix_names), str(chosen), str(rejected))
            kept += pairs_.append(path, [made])
            pairs_.append(marks_path, marks.unpaired([made]))
    click.echo(f"{path}: {kept} choices added ({marks_path}: {2 * kept} marks)", err=True)
