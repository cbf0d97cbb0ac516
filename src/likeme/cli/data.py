"""What is in the store and on this machine: ingest, people, messages, forget, runs, formats, models."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from likeme.cli.options import db_option, open_store
from likeme.errors import LikemeError


class _ScrubValueOptional(click.Command):
    """`--scrub` alone means `--scrub patterns`, as before it took a value: `likeme ingest --scrub chat.txt`
    reads chat.txt, not a scrub named chat.txt (click would take the next word as the value)."""

    def parse_args(self, ctx, args):
        args = list(args)
        for i, a in enumerate(args):
            if a == "--scrub" and (i + 1 == len(args) or args[i + 1] not in SCRUB_LEVELS):
                args[i] = "--scrub=patterns"
        return super().parse_args(ctx, args)


SCRUB_LEVELS = ("patterns", "names", "all")


@click.command(cls=_ScrubValueOptional)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "format_", metavar="NAME", default=None,
              help="Skip detection and read as this format (see `likeme formats`).")
@click.option("--me", metavar="NAME", default=None,
              help="Your name, for exports that only mark your messages as 'from me' (iMessage).")
@click.option("--scrub", type=click.Choice(SCRUB_LEVELS), default=None,
              help="Replace personal data with placeholders before storing. patterns (also a bare --scrub): "
                   "e-mails, phone numbers, URLs, card/IBAN numbers; names: people other than the chat's own "
                   "(<PERSON_1>, <PERSON_2>, ... the same friend the same number) and places, addresses (<PLACE>), "
                   "with Presidio and spaCy (make names); all: both. The same export again with more to scrub "
                   "replaces its stored text.")
@click.option("--blocklist", metavar="FILE", default=None,
              help="Words and phrases (one a line, any case, whole words) to replace with <BLOCKED> before storing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@db_option
def ingest(paths, format_, me, scrub, blocklist, quiet, db):
    """Read chat exports (files, .zip or export folders) into the store.

    Re-ingesting an export adds nothing; a later, overlapping export adds only the new messages.
    Each file is one transaction: a file that fails leaves the store as it was."""
    from likeme.data.scrub import read_blocklist, scrubber_for

    try:
        words = read_blocklist(blocklist) if blocklist else []
        scrubber = scrubber_for(scrub, words)  # loads nothing yet; says what to install for names
    except LikemeError as e:
        raise click.ClickException(str(e)) from None
    store = open_store(db)
    options = {"me": me} if me else {}
    failed = 0
    for p in paths:
        path = Path(p)
        bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(desc=path.name[:30], unit=" msg", unit_scale=True, leave=False, file=sys.stderr)
        try:
            res = store.ingest_path(path, format_, scrub=scrubber, progress=bar.update if bar else None, **options)
        except LikemeError as e:
            failed += 1
            click.echo(f"Error: {e}", err=True)
            continue
        except KeyboardInterrupt:
            click.echo(f"Interrupted while reading {path}: nothing of it was stored (the files before it were); "
                       "run the same command again to go on.", err=True)
            sys.exit(130)
        finally:
            if bar is not None:
                bar.close()
        if res.already_ingested and res.scrub and (scrubber.kinds or res.rescrubbed):
            click.echo(f"{path}: already ingested ({res.format}); scrubbed now: {res.scrub.replace(',', ', ')}; "
                       f"{res.rescrubbed} of its {res.skipped} stored messages changed" if res.rescrubbed or res.skipped
                       else f"{path}: already ingested ({res.format}), scrubbed: {res.scrub.replace(',', ', ')}")
        elif res.already_ingested:
            click.echo(f"{path}: already ingested ({res.format}), nothing to add")
        else:
            convs = len(res.conversations)
            click.echo(f"{path}: {res.added} new messages ({res.skipped} already stored) "
                       f"from {res.format}, {convs} conversation{'s' * (convs != 1)}"
                       + (f"; scrubbed: {res.scrub.replace(',', ', ')}" if res.scrub else ""))
    if failed:
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def people(as_json, db):
    """Who is in the store: message counts, conversations, first and last date, what was scrubbed from
    their messages (from every export of theirs; `+x in some`: from some only)."""
    rows = open_store(db).people()
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No messages yet: run `likeme ingest EXPORT` first.")
        return
    width = min(max(len(r.author) for r in rows), 40)
    click.echo(f"{'author':<{width}}  {'messages':>8}  {'convs':>5}  first       last        scrubbed")
    for r in rows:
        scrubbed = (r.scrubbed or "-").replace(",", "+") + (f" (+{r.partly_scrubbed.replace(',', '+')} in some)"
                                                            if r.partly_scrubbed else "")
        click.echo(f"{r.author[:width]:<{width}}  {r.messages:>8}  {r.conversations:>5}  {r.first[:10]}  {r.last[:10]}"
                   f"  {scrubbed}")


@click.command()
@click.option("--author", default=None, help="Only this person's messages.")
@click.option("--conversation", default=None, help="Only this conversation.")
@click.option("--limit", type=int, default=None, help="At most this many messages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one message each.")
@db_option
def messages(author, conversation, limit, as_json, db):
    """Messages in time order (per conversation)."""
    for m in open_store(db).messages(author=author, conversation=conversation, limit=limit):
        if as_json:
            click.echo(json.dumps(m.__dict__, ensure_ascii=False))
        else:
            text = m.text if m.text or m.kind != "media" else "[media]"
            tag = f" [{m.kind}]" if m.kind == "system" else ""
            click.echo(f"{m.sent_at[:16].replace('T', ' ')}  {m.conversation} | {m.author or '-'}{tag}: {text}")


@click.command()
@click.option("--author", required=True, help="The person to take out, exactly as `likeme people` shows them.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
def forget(author, yes, db):
    """Delete a person's messages everywhere, and keep them out of later ingests."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete every message by {author!r}?", abort=True)
    from likeme.data.cache import clear
    from likeme.use.index import prune

    store = open_store(db)
    n = store.forget(author)
    prune(db)  # their vectors leave the search indexes beside the store too
    clear(store.path)  # and their words the tokenized datasets
    click.echo(f"Deleted {n} messages by {author}; later ingests will skip them.")
    from likeme.runs import trained_on

    trained = trained_on(author)
    if trained:  # a model keeps what it learned: these need training again (or deleting)
        click.echo(f"{len(trained)} run(s) were trained on {author}'s messages; train them again without, or delete them:")
        for run in trained:
            click.echo(f"  {run}")


@click.command("runs")
@click.option("--json", "as_json", is_flag=True, help="Print each run's provenance card as JSON.")
def runs_cmd(as_json):
    """Your runs, with their provenance at a glance: recipe, status, what they were trained on and whose
    messages went in (each run's provenance.json)."""
    from likeme import runs

    found = runs.all_runs()
    if as_json:
        click.echo(json.dumps([{"run": str(p), "status": runs.read_meta(p).get("status"), **runs.provenance(p)}
                               for p in found], ensure_ascii=False))
        return
    if not found:
        click.echo(f"No runs in {runs.runs_dir()} yet: likeme train voice --as NAME")
        return
    for p in found:
        card, status = runs.provenance(p), runs.read_meta(p).get("status")
        data = card.get("data") or {}
        if data.get("sources"):
            kinds = {",".join(s["scrub"]) if s.get("scrub") is not None else s.get("scrubbed") for s in data["sources"]}
            one = kinds.pop() if len(kinds) == 1 else None
            what = f"{len(data['sources'])} export(s)" + (
                ", scrubbed" if one is True else ", not scrubbed" if one in (False, "") else
                f", scrubbed: {one.replace(',', '+')}" if isinstance(one, str) else "")
        else:
            files = data.get("files") or ([data] if data.get("file") else [])
            what = ", ".join(Path(f["file"]).name for f in files) or "-"
        people = ", ".join(f"{k} {v}" for k, v in list((data.get("messages") or {}).items())[:4])
        click.echo(f"{p.name:<24} {card.get('recipe') or '?':<10} {status or '?':<11} {str(card.get('created') or '')[:10]}  "
                   f"{what}{'; ' + people if people else ''}")


@click.command()
def formats():
    """The export formats likeme reads (plug-ins included)."""
    from likeme.data.ingest import formats as registry
    for name, fmt in registry().items():
        click.echo(f"{name:<14} {getattr(fmt, 'DESCRIPTION', '')}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models(as_json):
    """Models available here: bundled ones, converted caches, your runs, Hugging Face cache."""
    from likeme.models import available

    rows = available()
    if as_json:
        click.echo(json.dumps([{"name": r.name, "kind": r.kind, "task": r.task, "path": str(r.path or ""),
                                "ready": r.ready, "size_bytes": r.size_bytes, "note": r.note} for r in rows]))
        return
    for r in rows:
        size = f"{r.size_bytes / 2**20:,.0f} MiB" if r.size_bytes else "-"
        state = "" if r.ready else " (built on first use)"
        click.echo(f"{r.name:<28} {r.kind:<8} {r.task:<19} {size:>10}  {r.note}{state}")
