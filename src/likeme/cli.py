"""The `likeme` command. Thin: every command calls a library function a notebook could call too.
Heavy modules are imported inside the commands so that `likeme --help` answers at once."""
from __future__ import annotations

import json
import sys

import click

from likeme.errors import LikemeError

db_option = click.option(
    "--db", type=click.Path(dir_okay=False), default=None, envvar="LIKEME_DB",
    help="SQLite store to use (default: $LIKEME_HOME/likeme.db, LIKEME_HOME defaulting to ~/.likeme).")


def _store(db):
    from likeme.store import Store
    return Store(db)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="likeme")
def cli():
    """Turn your own chat history into models that are like you.

    \b
    Start with:  likeme ingest "WhatsApp Chat with Sam.zip"
    Then:        likeme people
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "format_", metavar="NAME", default=None,
              help="Skip detection and read as this format (see `likeme formats`).")
@click.option("--me", metavar="NAME", default=None,
              help="Your name, for exports that only mark your messages as 'from me' (iMessage).")
@click.option("--scrub", is_flag=True,
              help="Replace e-mails, phone numbers, URLs and card/IBAN numbers with placeholders before storing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@db_option
def ingest(paths, format_, me, scrub, quiet, db):
    """Read chat exports (files, .zip or export folders) into the store.

    Re-ingesting an export adds nothing; a later, overlapping export adds only the new messages.
    Each file is one transaction: a file that fails leaves the store as it was."""
    from pathlib import Path

    store = _store(db)
    options = {"me": me} if me else {}
    failed = 0
    for p in paths:
        path = Path(p)
        bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(desc=path.name[:30], unit=" msg", unit_scale=True, leave=False, file=sys.stderr)
        try:
            res = store.ingest_path(path, format_, scrub=scrub, progress=bar.update if bar else None, **options)
        except LikemeError as e:
            failed += 1
            click.echo(f"Error: {e}", err=True)
            continue
        finally:
            if bar is not None:
                bar.close()
        if res.already_ingested:
            click.echo(f"{path}: already ingested ({res.format}), nothing to add")
        else:
            convs = len(res.conversations)
            click.echo(f"{path}: {res.added} new messages ({res.skipped} already stored) "
                       f"from {res.format}, {convs} conversation{'s' * (convs != 1)}")
    if failed:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@db_option
def people(as_json, db):
    """Who is in the store: message counts, conversations, first and last date."""
    rows = _store(db).people()
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No messages yet: run `likeme ingest EXPORT` first.")
        return
    width = min(max(len(r.author) for r in rows), 40)
    click.echo(f"{'author':<{width}}  {'messages':>8}  {'convs':>5}  first       last")
    for r in rows:
        click.echo(f"{r.author[:width]:<{width}}  {r.messages:>8}  {r.conversations:>5}  {r.first[:10]}  {r.last[:10]}")


@cli.command()
@click.option("--author", default=None, help="Only this person's messages.")
@click.option("--conversation", default=None, help="Only this conversation.")
@click.option("--limit", type=int, default=None, help="At most this many messages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one message each.")
@db_option
def messages(author, conversation, limit, as_json, db):
    """Messages in time order (per conversation)."""
    for m in _store(db).messages(author=author, conversation=conversation, limit=limit):
        if as_json:
            click.echo(json.dumps(m.__dict__, ensure_ascii=False))
        else:
            text = m.text if m.text or m.kind != "media" else "[media]"
            tag = f" [{m.kind}]" if m.kind == "system" else ""
            click.echo(f"{m.sent_at[:16].replace('T', ' ')}  {m.conversation} | {m.author or '-'}{tag}: {text}")


@cli.command()
@click.option("--author", required=True, help="The person to take out, exactly as `likeme people` shows them.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@db_option
def forget(author, yes, db):
    """Delete a person's messages everywhere, and keep them out of later ingests."""
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete every message by {author!r}?", abort=True)
    n = _store(db).forget(author)
    click.echo(f"Deleted {n} messages by {author}; later ingests will skip them.")


@cli.command()
def formats():
    """The export formats likeme reads (plug-ins included)."""
    from likeme.ingest import formats as registry
    for name, fmt in registry().items():
        click.echo(f"{name:<14} {getattr(fmt, 'DESCRIPTION', '')}")


def main():
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except LikemeError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted: the file being read was not stored; the store is as it was before it.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
