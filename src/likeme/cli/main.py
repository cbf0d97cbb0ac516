"""The `likeme` command. Thin: every command calls a library function a notebook could call too.
Heavy modules are imported inside the commands so that `likeme --help` answers at once."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from likeme.errors import LikemeError

db_option = click.option(
    "--db", type=click.Path(dir_okay=False), default=None, envvar="LIKEME_DB",
    help="SQLite store to use (default: $LIKEME_HOME/likeme.db, LIKEME_HOME defaulting to ~/.likeme).")


def _store(db):
    from likeme.data.store import Store
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
        except KeyboardInterrupt:
            click.echo(f"Interrupted while reading {path}: nothing of it was stored (the files before it were); "
                       "run the same command again to go on.", err=True)
            sys.exit(130)
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
    from likeme.data.cache import clear
    from likeme.use.index import prune

    store = _store(db)
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


@cli.command("runs")
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
            scrubbed = {s.get("scrubbed") for s in data["sources"]}
            what = (f"{len(data['sources'])} export(s)"
                    + {frozenset({True}): ", scrubbed", frozenset({False}): ", not scrubbed"}.get(frozenset(scrubbed), ""))
        else:
            files = data.get("files") or ([data] if data.get("file") else [])
            what = ", ".join(Path(f["file"]).name for f in files) or "-"
        people = ", ".join(f"{k} {v}" for k, v in list((data.get("messages") or {}).items())[:4])
        click.echo(f"{p.name:<24} {card.get('recipe') or '?':<10} {status or '?':<11} {str(card.get('created') or '')[:10]}  "
                   f"{what}{'; ' + people if people else ''}")


@cli.command()
def formats():
    """The export formats likeme reads (plug-ins included)."""
    from likeme.data.ingest import formats as registry
    for name, fmt in registry().items():
        click.echo(f"{name:<14} {getattr(fmt, 'DESCRIPTION', '')}")


# ---------------------------------------------------------------------------------------------
# Talking to a trained voice: likeme.use.generate


def sampling_options(fn):
    """The sampling flags (--temperature ... --num-return-sequences), one per `decoding.Sampling` field,
    help text and defaults written once there. Each is None when not given."""
    from likeme.config import click_options
    from likeme.use.decoding import Sampling  # light: decoding.py imports torch only inside its functions

    return click_options(Sampling)(fn)


def backend_option(fn):
    return click.option("--backend", type=click.Choice(["auto", "torch", "llama.cpp"]), default="auto",
                        show_default=True,
                        help="torch: transformers (fp32 on a CPU, bf16 on a GPU); llama.cpp: the run's f16 GGUF "
                             "through llama-cpp-python (make llama; 4.5x torch's tokens/s on 2 cores, the same "
                             "greedy replies); auto: llama.cpp when installed, else torch.")(fn)


def precision_option(fn):
    from likeme.precision import PRECISIONS

    return click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                        help="Number format of the weights. auto: bf16 on a GPU, and on a CPU where bf16 is native "
                             "and measured faster, else fp32 (llama.cpp: f16). int8: fast on a CPU but worse "
                             "replies (llama.cpp: q8_0).")(fn)


def json_schema_option(fn):
    return click.option("--json-schema", metavar="FILE", default=None,
                        help="Write JSON that validates against the JSON schema in FILE (constrained decoding; "
                             "'{\"type\": \"object\"}' in FILE for any JSON object).")(fn)


def _json_schema(path):
    """--json-schema FILE -> a compiled schema (checked before the model loads), or None."""
    if path is None:
        return None
    from likeme.use.grammar import load_schema_file

    return load_schema_file(path)


def _load_voice(run, flags: dict, **load_options):
    """Check the flags (before the slow load), load the run, make the flags its defaults."""
    from likeme.models import resolve
    from likeme.use.decoding import Sampling
    from likeme.use.load import load_voice as load

    Sampling().updated(**flags)
    resolve(run)  # a wrong name fails at once, before the slow imports
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would land in piped output's stderr
    hf_logging.set_verbosity_error()
    voice = load(run, **load_options)
    voice.sampling = voice.sampling.updated(**flags)
    return voice


def _text_arg(text: str, what: str) -> str:
    """'-' -> stdin (for pipes: `echo hi | likeme chat RUN -m -`)."""
    if text != "-":
        return text
    text = sys.stdin.read().strip()
    if not text:
        raise LikemeError(f"no {what} on stdin: pipe one in, or pass it as an argument")
    return text


def _echo_piece(piece: str) -> None:
    click.echo(piece, nl=False)  # click.echo flushes: each piece shows as it is generated


def _print_all(results, prefix: str = "") -> None:
    """Several samples, each under a header: `--- 1 of 3 ---`."""
    for i, text in enumerate(results, 1):
        click.echo(f"--- {i} of {len(results)} ---")
        click.echo(prefix + text)


@cli.command()
@click.argument("run")
@click.option("-m", "--message", metavar="TEXT", default=None,
              help="Print NAME's reply to this one message and exit ('-': read it from stdin). "
                   "Without it: an interactive chat.")
@click.option("--best-of", type=int, default=1, show_default=True,
              help="Write this many replies and show the one --judge finds most like NAME.")
@click.option("--judge", metavar="RUN", default=None,
              help="With --best-of: the run that picks (an embedder or author classifier of NAME, or a reward run).")
@click.option("--recall", type=int, default=None, metavar="K",
              help="Show the voice NAME's K past messages most like yours, from the store (default: as the run was "
                   "trained; 0: none).")
@json_schema_option
@backend_option
@precision_option
@db_option
@sampling_options
def chat(run, message, best_of, judge, recall, json_schema, backend, precision, db, **flags):
    """Chat with a trained voice: you write as the partner, it answers as NAME.

    RUN is a run folder (or its name under $LIKEME_HOME/runs). In the chat, /help lists the commands.

    \b
    likeme chat ana-voice
    likeme chat ana-voice --message "are you coming tonight?" --seed 1
    echo "are you up?" | likeme chat ana-voice --message -
    likeme chat ana-voice --best-of 4 --judge ana-embedder
    likeme chat ana-voice -m "rate tonight's film" --json-schema rating.schema.json
    """
    try:
        text = _text_arg(message, "message") if message is not None else None
        if best_of > 1 and not judge:
            raise LikemeError("--best-of needs --judge RUN to pick with (an embedder or author classifier of NAME)")
        schema = _json_schema(json_schema)
        voice = _load_voice(run, flags, recall=recall, db=db, backend="torch" if schema is not None else backend,
                            precision=precision)
        voice.prompt_ids([])  # a run that cannot chat (no as: NAME) says so now, not after the first message
        pick = {"json_schema": schema} if schema is not None else {}
        if best_of > 1:
            from likeme.use.judge import load_judge

            pick.update(best_of=best_of, judge=load_judge(judge, voice.name))
        if text is None:
            _repl(voice, pick)
            return
        out = voice.reply([text], stream=_echo_piece, **pick)
        if isinstance(out, list):
            _print_all(out)
        else:
            click.echo()
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(130)


REPL_HELP = """\
Type a message as {partner} and press Enter; {name} answers.
  /reset               forget the chat so far and start over
  /set                 show the sampling settings
  /set NAME VALUE      change one: /set temperature 0.9, /set top-k 20, /set min-p none, /set seed 7
  /set sample | /set no-sample   sample, or always take the likeliest token
  /help                this help
  /quit                leave (Ctrl-D too). Ctrl-C stops a reply as it is being written."""


def _repl(voice, pick: dict) -> None:
    """The interactive chat. A seed (--seed or /set seed) seeds the next reply only, so that a whole
    session replays the same while its replies still differ from each other."""
    import dataclasses

    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (arrow keys and line history in input())
        except ImportError:
            pass
    seed, voice.sampling = voice.sampling.seed, dataclasses.replace(voice.sampling, seed=None)
    history: list[tuple[str, str]] = []
    click.echo(f"Chatting with {voice.name} as {voice.partner}. /help for commands, /quit or Ctrl-D to leave.",
               err=True)
    while True:
        try:
            line = input(f"{voice.partner}> ")
        except EOFError:
            if interactive:
                click.echo()
            return
        except KeyboardInterrupt:
            click.echo("\n(/quit or Ctrl-D to leave)", err=True)
            continue
        if not interactive:
            click.echo(line)  # piped input: show it, so the transcript reads as a chat
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            try:
                action = _repl_command(text, voice)
            except LikemeError as e:
                click.echo(f"Error: {e}", err=True)
                continue
            if action == "quit":
                return
            if action == "reset":
                history.clear()
                click.echo("(the chat starts over)", err=True)
            elif isinstance(action, tuple):  # ("seed", n or None): seeds the next reply
                seed = action[1]
            elif action == "show":
                click.echo(_settings_text(voice, seed), err=True)
            continue
        history.append((voice.partner, text))
        pieces: list[str] = []
        click.echo(f"{voice.name}> ", nl=False)
        try:
            out = voice.reply(history, stream=lambda p: (pieces.append(p), _echo_piece(p)),
                              **({"seed": seed} if seed is not None else {}), **pick)
        except KeyboardInterrupt:
            click.echo()
            click.echo("(stopped)", err=True)
            if "".join(pieces).strip():
                history.append((voice.name, "".join(pieces).strip()))  # what was shown is what was said
            continue
        except LikemeError as e:
            click.echo()
            click.echo(f"Error: {e}", err=True)
            history.pop()
            continue
        seed = None
        if isinstance(out, list):
            click.echo()
            _print_all(out)
            click.echo("(the chat goes on from reply 1)", err=True)
            out = out[0]
        else:
            click.echo()
            if out.finish == "length":
                click.echo(f"(cut at --max-new-tokens {voice.sampling.max_new_tokens})", err=True)
        if out:
            history.append((voice.name, str(out)))


def _repl_command(text: str, voice):
    """One /command -> "quit", "reset", "show", ("seed", n) for the next reply, or None; the sampling settings are
    changed in place. `/set top-k 20` and `/set top_k 20` are the same; `/set no-sample` turns sampling off."""
    import dataclasses
    import typing

    from likeme.use.decoding import Sampling

    word, *args = text.split()
    word = word.lower()
    if word in ("/quit", "/exit", "/bye", "/q"):
        return "quit"
    if word == "/reset":
        return "reset"
    if word in ("/help", "/?", "/h"):
        click.echo(REPL_HELP.format(name=voice.name, partner=voice.partner), err=True)
        return None
    if word != "/set":
        raise LikemeError(f"unknown command {word}: /help lists them")
    if not args:
        return "show"
    key = args[0].lstrip("-").lower().replace("-", "_")
    if key in ("sample", "no_sample") and len(args) == 1:
        voice.sampling = voice.sampling.updated(do_sample=key == "sample")
        return None
    key = "do_sample" if key == "sample" else key
    fields = {f.name for f in dataclasses.fields(Sampling)}
    if key not in fields:
        raise LikemeError(f"no setting {args[0]!r}: use one of {', '.join(sorted(fields))}")
    if len(args) != 2:
        raise LikemeError(f"say the value: /set {args[0]} VALUE")
    hint = typing.get_type_hints(Sampling)[key]
    value = _parse_value(args[1], hint, key)
    if key == "seed":
        return ("seed", value)
    if value is None:
        voice.sampling = dataclasses.replace(voice.sampling, **{key: None})
        voice.sampling.check()
    else:
        voice.sampling = voice.sampling.updated(**{key: value})
    return None


def _parse_value(raw: str, hint, key: str):
    """'0.9' for a float field -> 0.9; 'none' for an optional one -> None; 'on'/'off' for a bool."""
    import typing

    kinds = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    optional = type(None) in typing.get_args(hint)
    if raw.lower() in ("none", "off", "null") and optional:
        return None
    kind = kinds[0]
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise LikemeError(f"{key} is on or off, not {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        what = {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
        raise LikemeError(f"{key} takes {what}, not {raw!r}") from None


def _settings_text(voice, seed) -> str:
    import dataclasses

    values = dataclasses.asdict(voice.sampling) | {"seed": seed}
    return "\n".join(f"  {k.replace('_', '-'):<22} {v}" for k, v in values.items())


@cli.command("generate")
@click.argument("run")
@click.argument("prompt")
@click.option("--echo/--no-echo", default=True, show_default=True,
              help="Print the prompt before its continuation.")
@json_schema_option
@backend_option
@precision_option
@sampling_options
def generate_text(run, prompt, echo, json_schema, backend, precision, **flags):
    """Continue raw text with a model, no chat template (PROMPT '-': read it from stdin).

    RUN is a run folder, or any model `likeme models` lists.

    \b
    likeme generate ana-voice "Sam: are you up?
    Ana:" --max-new-tokens 20
    """
    try:
        prompt = _text_arg(prompt, "prompt")
        schema = _json_schema(json_schema)
        voice = _load_voice(run, flags, backend="torch" if schema is not None else backend, precision=precision)
        if voice.sampling.num_return_sequences > 1:
            _print_all(voice.generate(prompt, json_schema=schema), prefix=prompt if echo else "")
            return
        if echo:
            _echo_piece(prompt)
        voice.generate(prompt, stream=_echo_piece, json_schema=schema)
        click.echo()
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(130)


# -- serving: likeme.serve -------------------------------------------------------------------


def _limits_options(fn):
    from likeme.config import click_options
    from likeme.serve.limits import Limits

    return click_options(Limits)(fn)


@cli.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine's own (127.0.0.1, ::1) needs an API key.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--api-key", envvar="LIKEME_API_KEY", default=None, metavar="KEY",
              help="Every /v1 request must send Authorization: Bearer KEY (also from LIKEME_API_KEY).")
@click.option("--log-messages", is_flag=True, help="Write the messages of each request to the log (off: only sizes).")
@backend_option
@precision_option
@_limits_options
def serve(runs, host, port, api_key, log_messages, backend, precision, **limit_flags):
    """Serve runs behind an OpenAI-compatible API, with a chat page at http://HOST:PORT/.

    Voice runs answer /v1/chat/completions and /v1/completions (streaming, n, stop, seed, JSON output with
    response_format); embedder runs /v1/embeddings and /v1/likeness; classifier runs /v1/classify.
    Each run is a model named by its folder.

    \b
    likeme serve runs/ana-voice runs/ana-embedder
    likeme serve runs/ana-voice --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"
    """
    from likeme.serve import check_host
    from likeme.serve import serve as run_server
    from likeme.serve.limits import Limits

    check_host(host, api_key)  # before the slow loads
    limits = Limits(**{k: v for k, v in limit_flags.items() if v is not None})
    bad = [k for k, v in vars(limits).items() if v < (0 if k == "max_queue" else 1)]
    if bad:
        raise LikemeError(f"--{bad[0].replace('_', '-')} must be at least {0 if bad[0] == 'max_queue' else 1}")
    run_server(list(runs), host=host, port=port, api_key=api_key, limits=limits, log_messages=log_messages,
               backend=backend, precision=precision)


@cli.command("export")
@click.argument("run")
@click.option("--to", "to", type=click.Choice(["hf", "gguf", "ollama"]), required=True,
              help="hf: a transformers folder (LoRA merged); gguf: one llama.cpp file; ollama: the GGUF and a Modelfile.")
@click.option("--quant", default=None, metavar="TYPE",
              help="GGUF weights: f32, f16, bf16, q8_0 (default), q4_0, q4_1, q5_0, q5_1.")
@click.option("--out", type=click.Path(), default=None, help="Where to write (default: RUN/export/).")
def export_cmd(run, to, quant, out):
    """Export a voice to run anywhere, prompting exactly as it was trained and stopping where NAME's turn ends.

    \b
    likeme export runs/ana --to hf            # transformers, vLLM
    likeme export runs/ana --to gguf --quant q4_1
    likeme export runs/ana --to ollama        # then: ollama create ana -f runs/ana/export/Modelfile"""
    from likeme.use.export import export

    path = export(run, to, quant=quant, out=out)
    click.echo(str(path))
    if to == "ollama":
        click.echo(f"ollama create NAME -f {path} && ollama run NAME", err=True)


# -- preference pairs: likeme.training.pairs -----------------------------------------------------------


@cli.command()
@click.option("--from", "run", required=True, metavar="RUN", help="The voice run that writes the rejected replies.")
@click.option("--as", "name", default=None, metavar="NAME", help="Whose replies are chosen (the run's NAME; checked).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="JSONL file to add the pairs to (default: $LIKEME_HOME/pairs/NAME.jsonl).")
@click.option("--per-context", type=int, default=1, show_default=True, help="Written replies per context.")
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
    likeme pairs --from runs/ana-voice --judge runs/ana-embedder --per-context 4   # best vs worst of 4"""
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
    bar = _bar_if_tty(max_contexts or None, "contexts")
    try:
        n = pairs_.append(path, pairs_.from_run(
            run, db=db, per_context=per_context, max_contexts=max_contexts or None, others=others, seed=seed,
            judge=judge or None, sampling={"max_new_tokens": max_new_tokens, "temperature": temperature},
            progress=bar.update if bar else None))
    finally:
        if bar:
            bar.close()
    click.echo(f"{path}: {n} pairs added")


@cli.command()
@click.argument("run")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="JSONL file to add your choices to (default: $LIKEME_HOME/pairs/NAME.jsonl).")
@click.option("--seed", type=int, default=None, help="Which contexts come up, and the replies written (default: random).")
@click.option("--max-new-tokens", type=int, default=None, help="Stop a written reply after this many tokens.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature of the written replies.")
@db_option
def compare(run, out, seed, max_new_tokens, temperature, db):
    """You pick: for one of NAME's chats after another, the voice writes two replies and you say which
    sounds more like NAME (1 or 2; s skips, q or Ctrl-D stops). Each choice is added as a pair."""
    import random

    from likeme.prompts import chat_messages
    from likeme.training import pairs as pairs_

    voice, found = pairs_.training_replies(run, db=db, sampling={"max_new_tokens": max_new_tokens,
                                                                 "temperature": temperature})
    path = Path(out) if out else pairs_.default_path(voice.name)
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
            kept += pairs_.append(path, [pairs_.pair(chat_messages(r.context, voice.name, r.prefix_names),
                                                     str(chosen), str(rejected))])
    click.echo(f"{path}: {kept} choices added", err=True)


def _bar_if_tty(total, unit: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", file=sys.stderr, leave=False)


# -- training ---------------------------------------------------------------------------------
from likeme.config import click_options  # noqa: E402  (light: dataclasses and typing only)
from likeme.recipes.voice import VoiceConfig  # noqa: E402  (the config only; torch loads on use)


@cli.group()
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


@cli.command()
@click.option("--as", "name", required=True, metavar="NAME", help="Whose voice, as `likeme people` shows them.")
@click.option("--base", default="smollm2-135m", show_default=True, help="Base model (only its config.json is read).")
@click.option("--method", type=click.Choice(["lora", "all", "last-blocks"]), default=None,
              help="What trains (default: chosen: LoRA unless every weight fits a GPU with room to spare).")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Examples a step (default: 8, less if it will not fit).")
@click.option("--block-size", type=click.IntRange(8), default=512, show_default=True, help="Tokens per example at most.")
@click.option("--lora-r", type=click.IntRange(1), default=32, show_default=True, help="LoRA rank.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True)
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Steps (default: likeme train voice's).")
@click.option("--packing/--no-packing", default=False, show_default=True, help="Plan padding-free batches (train voice --packing).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@db_option
def plan(name, base, method, batch_size, block_size, lora_r, precision, max_steps, packing, as_json, db):
    """Before training a voice: the method, LoRA rank, batch, precision and steps for this data and this
    machine, the expected time per step and peak memory, and whether it fits.

    likeme plan --as Ana
    likeme plan --as Ana --method all --batch-size 16"""
    from likeme.training.plan import plan_voice, render

    p = plan_voice(name, base=base, db=db, method=method, batch=batch_size, block_size=block_size, lora_r=lora_r,
                   precision=precision, steps=max_steps, packing=packing)
    click.echo(json.dumps(p, indent=2) if as_json else render(p))


@train_command("voice", VoiceConfig)
def train_voice_cmd(config_file, resume, quiet, **flags):
    """Write like me: fine-tune a causal LM on NAME's replies in the store.

    Ctrl-C stops after the current step and keeps a checkpoint that --resume continues from."""
    from likeme.recipes.voice import train_voice

    cfg, run, m = run_recipe(VoiceConfig, train_voice, config_file, flags, quiet, resume)
    click.echo(f"{run}: held-out perplexity of {cfg.name or 'the voice'}'s replies "
               f"{m['base_ppl']:.2f} (base) -> {m['ppl']:.2f} after {m['steps']} steps")
    click.echo(f"Talk to it: likeme chat {run}")


@cli.command()
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


@cli.command()
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


@cli.command("eval")
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
@click.option("--text-column", default=None, help="Classifier: the text column of --data.")
@click.option("--label-column", default=None, help="Classifier: the label column of --data.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_cmd(run, data, name, format_, me, max_replies, judge, samples, seed, text_column, label_column, as_json):
    """How like you a run is, on data it never saw.

    \b
    voice:      perplexity of NAME's replies, run and base model; with --judge, the judge's
                likeness score of replies the run writes, beside NAME's real ones and the base's
    classifier: accuracy and macro-F1 on a labelled file
    embedder:   triplet accuracy and score ROC-AUC for NAME, run and base model"""
    from likeme.check import evaluate

    recipe, r = evaluate.evaluate(run, data, name=name, format=format_, me=me, text_column=text_column,
                                  label_column=label_column, max_replies=max_replies, judge=judge,
                                  samples=samples, seed=seed)
    click.echo(json.dumps(r, ensure_ascii=False) if as_json else evaluate.summary(recipe, r, name))


@cli.command()
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


from likeme.recipes.tokenizer import TokenizerConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("tokenizer", TokenizerConfig)
def train_tokenizer_cmd(config_file, resume, quiet, **flags):
    """Text into tokens: a byte-level BPE, character or word tokenizer trained on your text (--data FILE
    or --db), with <|endoftext|> and the ChatML tokens, for likeme train pretrain --tokenizer RUN.

    \b
    likeme train tokenizer --data input.txt --kind char --out runs/chars
    likeme train tokenizer --db --as Ana --kind bpe --vocab-size 4000"""
    from likeme.recipes.tokenizer import train_tokenizer

    _, run, m = run_recipe(TokenizerConfig, train_tokenizer, config_file, flags, quiet, resume)
    click.echo(f"{run}: {m['kind']} tokenizer, {m['vocab_size']:,} tokens; on the held-out text "
               f"{m['heldout_chars_per_token']:.2f} characters per token, {m['heldout_tokens_per_word']:.2f} tokens per "
               f"word, {m['heldout_unknown_rate']:.2%} unknown")
    click.echo(f"See it: likeme tokenize {run} \"Hello there\"")


@cli.command()
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
        text = _text_arg(text, "text")
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


from likeme.recipes.pretrain import PretrainConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("pretrain", PretrainConfig)
def train_pretrain_cmd(config_file, resume, quiet, **flags):
    """A GPT from scratch: pretrain a small Llama-style model on raw text (--data FILE or --db), with a
    tokenizer from likeme train tokenizer; or continue a model's pretraining (--base MODEL).

    \b
    likeme train tokenizer --data input.txt --kind char --out runs/chars
    likeme train pretrain --data input.txt --tokenizer runs/chars --block-size 64 --max-steps 2000
    likeme train pretrain --data notes.txt --base smollm2-135m --max-steps 200"""
    from likeme.recipes.pretrain import train_pretrain

    _, run, m = run_recipe(PretrainConfig, train_pretrain, config_file, flags, quiet, resume)
    click.echo(f"{run}: validation loss {m['val_loss']:.4f} per token ({m['val_loss_per_char']:.4f} per character) "
               f"after {m['steps']} steps, {m['parameters']:,} parameters")
    click.echo(f"Write with it: likeme generate {run} \"Once upon a time\"")


from likeme.recipes.instruct import InstructConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("instruct", InstructConfig)
def train_instruct_cmd(config_file, resume, quiet, **flags):
    """Instruction tuning: answers to instructions (Alpaca JSON/JSONL, chat messages JSONL or
    'Question: ... Answer: ...' text), the loss on the answers only.

    \b
    likeme train instruct --data alpaca.json
    likeme train instruct --data faq.txt --base runs/gpt --trainable all"""
    from likeme.recipes.instruct import train_instruct

    _, run, m = run_recipe(InstructConfig, train_instruct, config_file, flags, quiet, resume)
    click.echo(f"{run}: held-out perplexity of the answers {m['base_ppl']:.2f} (base) -> {m['ppl']:.2f} "
               f"after {m['steps']} steps")
    click.echo(f"Ask it: likeme chat {run}")


from likeme.recipes.reward import RewardConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("reward", RewardConfig)
def train_reward_cmd(config_file, resume, quiet, **flags):
    """A reward model of NAME from comparisons (--pairs FILE, from likeme pairs or likeme compare):
    a scalar head trained so that the chosen reply scores above the rejected one.

    \b
    likeme train reward --pairs ~/.likeme/pairs/ana.jsonl
    likeme train reward --pairs pairs.jsonl --base minilm"""
    from likeme.recipes.reward import train_reward

    _, run, m = run_recipe(RewardConfig, train_reward, config_file, flags, quiet, resume)
    if "val_accuracy" in m:
        click.echo(f"{run}: held-out pairwise accuracy {m['base_val_accuracy']:.3f} (untrained head) -> "
                   f"{m['val_accuracy']:.3f} on {m['val_pairs']} pairs, after {m['steps']} steps")
    else:
        click.echo(f"{run}: trained on {m['train_pairs']} pairs (too few prompts to hold any out)")
    click.echo(f"Use it as a judge: likeme eval VOICE_RUN --data EXPORT --as NAME --judge {run}")


from likeme.recipes.prefer import PreferConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("prefer", PreferConfig)
def train_prefer_cmd(config_file, resume, quiet, **flags):
    """Preference tuning (DPO): make a voice prefer NAME's real replies over what it wrote (--pairs FILE).

    \b
    likeme pairs --as Ana --from runs/ana-voice
    likeme train prefer --from runs/ana-voice --pairs ~/.likeme/pairs/ana.jsonl
    likeme chat runs/ana-prefer"""
    from likeme.recipes.prefer import train_prefer

    _, run, m = run_recipe(PreferConfig, train_prefer, config_file, flags, quiet, resume)
    if "val_reward_accuracy" in m:
        click.echo(f"{run}: on {m['val_pairs']} held-out pairs the tuned voice prefers the real reply in "
                   f"{m['val_reward_accuracy']:.0%} (reward margin {m['val_reward_margin']:.3f}), after {m['steps']} steps")
    click.echo(f"Talk to it: likeme chat {run}")


# -- match my vibe: style embeddings (likeme.recipes.embed, likeme.use.embedder, likeme.use.index) -----
from likeme.recipes.embed import EmbedConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("embedder", EmbedConfig)
def train_embedder_cmd(config_file, resume, quiet, **flags):
    """Match my vibe: fine-tune sentence embeddings so NAME's messages lie close together.

    Triplets from the store: anchor and positive by NAME, negative by someone else in the same
    session. Saves a likeness score for `likeme score` and a model for `likeme search`."""
    from likeme.recipes.embed import train_embedder

    _, run, m = run_recipe(EmbedConfig, train_embedder, config_file, flags, quiet, resume)
    if "triplet_accuracy" in m:
        click.echo(f"{run}: held-out triplet accuracy {m['base_triplet_accuracy']} (base) -> "
                   f"{m['triplet_accuracy']} after {m['steps']} steps")
    if m.get("auc") is not None:
        click.echo(f"held-out AUC of the likeness score: {m['base_auc']} (base) -> {m['auc']}")
        click.echo(f'Try: likeme score {run} "some text"   or   likeme search {run} "some text"')


# -- smaller and faster: knowledge distillation (likeme.recipes.distill) ------------------------
from likeme.recipes.distill import DistillConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("distill", DistillConfig)
def train_distill_cmd(config_file, resume, quiet, **flags):
    """Smaller and faster: a student model learns a classifier's or a voice's outputs (--teacher RUN).

    \b
    likeme train distill --teacher runs/intents --student minilm --data intents.csv
    likeme train distill --teacher runs/intents --data intents.csv --unlabelled more.txt
    likeme train distill --teacher runs/ana-voice --student runs/small-lm"""
    from likeme.recipes.distill import train_distill

    _, run, m = run_recipe(DistillConfig, train_distill, config_file, flags, quiet, resume)
    if "val_accuracy" in m:
        click.echo(f"{run}: validation accuracy {m['val_accuracy']:.4f} (teacher {m['teacher_val_accuracy']:.4f}), "
                   f"macro-F1 {m['val_macro_f1']:.4f} on {m['val_examples']} texts")
        click.echo(f'Use it: likeme classify {run} "some text"')
    elif "ppl" in m:
        click.echo(f"{run}: held-out perplexity {m['base_ppl']:.2f} (student) -> {m['ppl']:.2f} after {m['steps']} "
                   f"steps; teacher {m['teacher_ppl']:.2f}")
        click.echo(f"Talk to it: likeme chat {run}")
    else:
        click.echo(f"{run}: trained on {m['train_examples']} texts (too few to hold any out)")


@cli.command()
@click.argument("run")
@click.argument("texts", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def score(run, texts, as_json):
    """How much each TEXT reads like the run's NAME (no TEXT: one per line from stdin): an embedder run's
    likeness score, 0..1, or a reward run's reward (higher is more like NAME).

    \b
    likeme score robin-embedder "sure, see you there" "Can you help me?"
    """
    from likeme.use.load import recipe_of

    texts = list(texts) or [line.strip() for line in sys.stdin if line.strip()]
    if not texts:
        raise LikemeError("nothing to score: pass texts as arguments or pipe them in, one per line")
    if recipe_of(run) == "reward":  # a reward, each text as a reply that opens a chat
        from likeme.use.reward import load_reward

        values = load_reward(run).score(texts)
    else:
        from likeme.use.embedder import load_scorer

        values = load_scorer(run).score(texts)
    if as_json:
        click.echo(json.dumps([{"text": t, "score": round(v, 4)} for t, v in zip(texts, values)], ensure_ascii=False))
        return
    for t, v in zip(texts, values):
        click.echo(f"{v:.3f}  {t}")


@cli.command()
@click.argument("run")
@click.argument("text")
@click.option("--k", type=int, default=10, show_default=True, help="How many messages to show.")
@click.option("--author", default=None, help="Only this person's messages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one message each.")
@db_option
def search(run, text, k, author, as_json, db):
    """The store's messages most like TEXT, by a sentence embedder (a run, or minilm).

    The index beside the store (<db>.index/) is brought up to date first: new messages are
    embedded, deleted ones dropped."""
    from likeme.use.index import search as search_

    hits = search_(run, _text_arg(text, "text"), k=k, author=author, db=db, progress=sys.stderr.isatty())
    for h in hits:
        if as_json:
            click.echo(json.dumps(h.__dict__, ensure_ascii=False))
        else:
            click.echo(f"{h.score:.3f}  {h.sent_at[:16].replace('T', ' ')}  {h.conversation} | {h.author}: {h.text}")


@cli.command("index")
@click.argument("run")
@db_option
def index_cmd(run, db):
    """Bring the search index of RUN up to date with the store (search does it too)."""
    from likeme.use.index import update

    r = update(run, db, progress=sys.stderr.isatty())
    click.echo(f"{r.path}: {r.total} messages indexed ({r.added} added, {r.dropped} dropped)")


# -- decide like me: sequence classification (likeme.recipes.classify, likeme.use.classifier) -----
from likeme.recipes.classify import ClassifyConfig  # noqa: E402  (the config only; torch loads on use)


@train_command("classifier", ClassifyConfig)
def train_classifier_cmd(config_file, resume, quiet, **flags):
    """Decide like me: learn labels from labelled texts (--data FILE) or who wrote a message (--label-by author).

    \b
    likeme train classifier --data tickets.csv --label-column team
    likeme train classifier --label-by author --min-messages 50
    likeme train classifier --data intents.jsonl --base minilm"""
    from likeme.recipes.classify import train_classifier

    _, run, m = run_recipe(ClassifyConfig, train_classifier, config_file, flags, quiet, resume)
    if "val_accuracy" in m:
        click.echo(f"{run}: validation accuracy {m['val_accuracy']:.4f}, macro-F1 {m['val_macro_f1']:.4f} on "
                   f"{m['val_examples']} texts ({m['labels']} labels, best epoch {m['best_epoch']})")
    else:
        click.echo(f"{run}: trained on {m['train_examples']} texts ({m['labels']} labels; too few to hold any out)")
    click.echo(f'Use it: likeme classify {run} "some text"')


@cli.command()
@click.argument("run")
@click.argument("texts", nargs=-1)
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV, TSV or JSONL file to classify; when it has a label column, it is scored.")
@click.option("--text-column", default=None, help="Column of --data with the text (default: as trained, else text).")
@click.option("--label-column", default=None, help="Column of --data with the label (default: as trained, else label).")
@click.option("--top", type=int, default=3, show_default=True, help="Probabilities shown per text.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def classify(run, texts, data, text_column, label_column, top, as_json):
    """Label each TEXT with a classifier run (no TEXT and no --data: one text per line from stdin).

    \b
    likeme classify banking77 "my card has not arrived" "how do I top up?"
    likeme classify banking77 --data test.csv --json     # accuracy, macro-F1, per label, confusion
    """
    from likeme.data.tables import read_labelled
    from likeme.use.classifier import load_classifier

    if data and texts:
        raise LikemeError("give texts or --data FILE, not both")
    if data:
        clf = load_classifier(run)
        text_column = text_column or clf.meta.get("text_column") or "text"
        label_column = label_column or clf.meta.get("label_column") or "label"
        texts, labels = read_labelled(data, text_column, label_column, need_labels=False)
        if labels is not None:  # a labelled file: score the run on it
            from likeme.check.evaluate import score_classifier

            r = score_classifier(clf, texts, labels)
            click.echo(json.dumps(r, ensure_ascii=False) if as_json else _classification_report(r))
            return
    else:
        texts = list(texts) or [line.strip() for line in sys.stdin if line.strip()]
        if not texts:
            raise LikemeError("nothing to classify: pass texts, --data FILE, or pipe texts in, one per line")
        clf = load_classifier(run)
    results = clf.predict(list(texts))
    if as_json:
        click.echo(json.dumps([{"text": t, "label": label, "probabilities": dict(list(p.items())[:top])}
                               for t, (label, p) in zip(texts, results)], ensure_ascii=False))
        return
    for t, (label, p) in zip(texts, results):
        shown = "  ".join(f"{k} {v:.3f}" for k, v in list(p.items())[:top])
        click.echo(f"{label}\t{shown}\t{t}")


def _classification_report(r: dict) -> str:
    """classification_metrics' dict as text: totals, a per-label table, the confusion matrix when small."""
    lines = [f"{r['examples']} texts: accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}", ""]
    width = min(max(len(str(k)) for k in r["labels"]), 32)
    lines.append(f"{'label':<{width}}  precision  recall      f1  support")
    for k, v in r["per_class"].items():
        lines.append(f"{str(k)[:width]:<{width}}  {v['precision']:>9.3f}  {v['recall']:>6.3f}  {v['f1']:>6.3f}  "
                     f"{v['support']:>7}")
    if len(r["labels"]) <= 12:
        lines += ["", "confusion (rows: true, columns: predicted, in the order above):"]
        lines += ["  " + " ".join(f"{n:>5}" for n in row) for row in r["confusion"]]
    else:
        lines += ["", "(--json prints the confusion matrix)"]
    return "\n".join(lines)


ARGV: list[str] = []  # the arguments main() was given: --processes runs the same command again in N processes


def main(args: list[str] | None = None):
    """The `likeme` command: `args` default to the command line. Errors are one line (exit 1), Ctrl-C exits 130."""
    import os
    import warnings

    ARGV[:] = list(args) if args is not None else sys.argv[1:]
    from likeme.runs import Interrupted

    # Library chatter is not for our users: weight-loading bars and deprecation notices of the
    # libraries we call. Our own progress bars and messages are unaffected.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        cli(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except Interrupted as e:
        click.echo(f"Stopped: {e}", err=True)
        sys.exit(130)
    except LikemeError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
