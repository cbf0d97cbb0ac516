"""Before and after training: plan, eval, report, audit, tokenize."""
from __future__ import annotations

import json
from pathlib import Path

import click

from likeme.cli.options import db_option, text_arg
from likeme.errors import LikemeError
from likeme.recipes.voice import VoiceConfig  # the config only: train voice's defaults are the plan's


@click.command()
@click.option("--as", "name", required=True, metavar="NAME", help="Whose voice, as `likeme people` shows them.")
@click.option("--base", default="smollm2-135m", show_default=True, help="Base model (only its config.json is read).")
@click.option("--method", type=click.Choice(["lora", "all", "last-blocks"]), default=None,
              help="What trains (default: chosen: LoRA unless every weight fits a GPU with room to spare).")
@click.option("--batch-size", type=click.IntRange(1), default=VoiceConfig.batch_size, show_default=True,
              help="Examples a forward pass (train voice --batch-size).")
@click.option("--grad-accum", type=click.IntRange(1), default=VoiceConfig.grad_accum, show_default=True,
              help="Forward passes a step (train voice --grad-accum).")
@click.option("--block-size", type=click.IntRange(8), default=512, show_default=True, help="Tokens per example at most.")
@click.option("--lora-r", type=click.IntRange(1), default=32, show_default=True, help="LoRA rank.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True)
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Steps (default: likeme train voice's).")
@click.option("--packing/--no-packing", default=VoiceConfig.packing, show_default=True,
              help="Plan padding-free batches (train voice --packing).")
@click.option("--checkpointing/--no-checkpointing", default=VoiceConfig.checkpointing, show_default=True,
              help="Plan gradient checkpointing (train voice --checkpointing).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@db_option
def plan(name, base, method, batch_size, grad_accum, block_size, lora_r, precision, max_steps, packing, checkpointing,
         as_json, db):
    """Before training a voice: the method, LoRA rank, batch, precision and steps for this data and this
    machine, the expected time per step and peak memory, and whether it fits.

    likeme plan --as Ana
    likeme plan --as Ana --method all --batch-size 16"""
    from likeme.training.plan import plan_voice, render

    p = plan_voice(name, base=base, db=db, method=method, batch=batch_size, block_size=block_size, lora_r=lora_r,
                   precision=precision, steps=max_steps, packing=packing,
                   checkpointing=checkpointing, accum=grad_accum)
    click.echo(json.dumps(p, indent=2) if as_json else render(p))


@click.command("eval")
@click.argument("run")
@click.option("--data", required=True, type=click.Path(exists=True),
              help="An export never trained on (voice, embedder), or a labelled file (classifier).")
@click.option("--as", "name", default=None, metavar="NAME", help="Whose messages to score (voice, embedder).")
@click.option("--format", "format_", metavar="NAME", default=None, help="Format of --data (default: detected).")
@click.option("--me", metavar="NAME", default=None, help="Your name, for exports that only say 'from me'.")
@click.option("--max-replies", type=int, default=None,
              help="Voice: score at most this many of NAME's replies, spread evenly (default 400; 0: all).")
@click.option("--judge", metavar="RUN", default=None,
              help="Voice: also write replies and have this run judge them (an embedder or author classifier of "
                   "NAME, or a reward run).")
@click.option("--samples", type=int, default=50, show_default=True,
              help="Voice with --judge: how many of NAME's replies to write again, by the run and by its base.")
@click.option("--seed", type=int, default=0, show_default=True, help="Voice with --judge: the sampling seed.")
@click.option("--people", default=None, metavar="A,B,C",
              help="Voice: attribute each of these people's turns to the slot that makes it most likely (default: "
                   "the run's speakers, when it learnt from everyone).")
@click.option("--guidance", type=click.FloatRange(0, 10), default=None, metavar="A",
              help="Voice: score and write with person guidance A against the other people's slots, as `likeme chat "
                   "--guidance` (default: the run's; 0: off).")
@click.option("--text-column", default=None, help="Classifier: the text column of --data.")
@click.option("--label-column", default=None, help="Classifier: the label column of --data.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_cmd(run, data, name, format_, me, max_replies, judge, samples, seed, people, guidance, text_column, label_column,
             as_json):
    """How like you a run is, on data it never saw.

    \b
    voice:      perplexity of NAME's replies, run and base model; specificity (NAME's drop from the base
                minus the others', every turn scored as NAME's); attribution with --people; with --judge, the judge's
                likeness score of replies the run writes, beside NAME's real ones and the base's
    classifier: accuracy and macro-F1 on a labelled file
    embedder:   triplet accuracy and score ROC-AUC for NAME, run and base model"""
    from likeme.check import evaluate

    recipe, r = evaluate.evaluate(run, data, name=name, format=format_, me=me, text_column=text_column,
                                  label_column=label_column, max_replies=max_replies, judge=judge,
                                  samples=samples, seed=seed, guidance=guidance,
                                  people=[p.strip() for p in people.split(",") if p.strip()] if people else None)
    click.echo(json.dumps(r, ensure_ascii=False) if as_json else evaluate.summary(recipe, r, name))


@click.command()
@click.argument("run")
@click.option("--data", required=True, type=click.Path(exists=True), help="An export the run never trained on.")
@click.option("--as", "name", required=True, metavar="NAME", help="Whose replies to compare with.")
@click.option("--judge", metavar="RUN", default=None, help="Also score likeness with this embedder, classifier or reward run.")
@click.option("--samples", type=int, default=200, show_default=True,
              help="How many of NAME's replies the run and its base write again, for the same contexts.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "format_", metavar="NAME", default=None, help="Format of --data (default: detected).")
@click.option("--me", metavar="NAME", default=None, help="Your name, for exports that only say 'from me'.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="The HTML file (default: RUN/report.html); the figures go beside it as .json.")
def report(run, data, name, judge, samples, seed, format_, me, out):
    """Does it sound like NAME? One HTML page with plots: perplexity, replies side by side, style,
    diversity and collapse, memorisation, a judge's likeness, the leak audit and the provenance card."""
    from likeme.check import report as rep
    from likeme.models import resolve

    if samples < 1:
        raise LikemeError("--samples must be at least 1")
    figures = rep.build(run, data, name, judge=judge, samples=samples, seed=seed, format=format_, me=me)
    path = rep.write_html(figures, out or resolve(run).path / "report.html")
    st = figures["style"]
    click.echo(f"{path}: perplexity {figures['perplexity']['ppl']:.2f} (base {figures['perplexity']['base_ppl']:.2f}); "
               f"Burrows' Delta to {name}'s replies {st['trained']['burrows_delta']:.3f}"
               + (f" (base {st['base']['burrows_delta']:.3f})" if "base" in st else "")
               + f"; distinct-2 {st['trained']['distinct_2']:.3f} (real {st['real']['distinct_2']:.3f})")


@click.command()
@click.argument("run")
@click.option("--samples", type=int, default=500, show_default=True,
              help="Replies sampled from prompts that invite personal data.")
@click.option("--candidates", type=int, default=1000, show_default=True,
              help="Random secrets each canary is ranked among (exposure tops out at log2(candidates + 1) bits).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
def audit(run, samples, candidates, seed, as_json):
    """Is the voice safe to share? Samples replies to prompts that invite personal data, reports each
    phone number, e-mail, card, address... it writes and the training message it comes from, and the
    exposure of the run's canaries (likeme train voice --canaries K). PASS or WARN, with the reason;
    written to RUN/audit.json, and shown by likeme report."""
    from likeme.check import audit as aud

    if samples < 1 or candidates < 1:
        raise LikemeError("--samples and --candidates must be at least 1")
    r = aud.audit(run, samples=samples, candidates=candidates, seed=seed)
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False))
        return
    for h in r["hits"]:
        where = f"from training: {h['training_message']!r}" if h["training_message"] else "not in the training messages"
        click.echo(f"{h['kind']:<8} {h['found']!r} in reply to {h['prompt']!r}: {where}")
    for c in r["canaries"]:
        click.echo(f"canary {c['text']!r} (x{c['repeats']} in training): rank {c['rank']} of {c['candidates']}, "
                   f"exposure {c['exposure_bits']:.2f} bits")
    click.echo(f"{r['verdict']}: {r['reason']}")


@click.command()
@click.argument("model")
@click.argument("text", required=False)
@click.option("--stats", "stats_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Measure on this text file instead: characters per token, tokens per word, unknown and "
                   "byte-fallback rates.")
@click.option("--against", default="smollm2-135m", show_default=True,
              help="With --stats, the tokenizer to compare with ('' for none).")
def tokenize(model, text, stats_file, against):
    """The tokens of TEXT ('-': stdin) under a tokenizer run's or a model's tokenizer, with their ids.

    \b
    likeme tokenize runs/chars "Hello there"
    likeme tokenize runs/bpe8k --stats held-out.txt"""
    from likeme.check.tokenstats import pieces, stats
    from likeme.models import load_tokenizer

    if (text is None) == (stats_file is None):
        raise LikemeError("give the TEXT to tokenize, or --stats FILE to measure on")
    tok = load_tokenizer(model)
    if stats_file is None:
        text = text_arg(text, "text")
        parts = pieces(tok, text)
        click.echo(f"{len(parts)} tokens, {len(text)} characters")
        click.echo(" ".join(repr(p) for p, _ in parts))
        click.echo(" ".join(str(i) for _, i in parts))
        return
    try:
        sample = Path(stats_file).read_text("utf-8")
    except UnicodeDecodeError:
        raise LikemeError(f"{stats_file} is not UTF-8 text: convert it first, e.g. iconv -f latin1 -t utf-8") from None
    rows = [(model, stats(tok, sample))] + ([(against, stats(load_tokenizer(against), sample))] if against else [])
    keys = ("tokens", "chars_per_token", "tokens_per_word", "unknown_rate", "byte_fallback_rate")
    click.echo(f"{'':<28}" + "".join(f"{k.replace('_', ' '):>20}" for k in keys))
    for name, r in rows:
        click.echo(f"{str(name)[-28:]:<28}" + "".join(f"{r[k]:>20,}" if k == "tokens" else f"{r[k]:>20.4f}" for k in keys))
