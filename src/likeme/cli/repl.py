"""The interactive chat of `likeme chat RUN`: the loop, its /commands and the /set values."""
from __future__ import annotations

import dataclasses
import sys
import typing

import click

from likeme.cli.options import echo_piece, print_all
from likeme.errors import LikemeError
from likeme.use.decoding import Sampling  # light: torch only inside its functions

REPL_HELP = """\
Type a message as {partner} and press Enter; {name} answers.
  /reset               forget the chat so far and start over
  /good | /bad         mark {name}'s last reply good or bad (added to RUN/marks.jsonl, for likeme train prefer --loss kto)
  /set                 show the sampling settings
  /set NAME VALUE      change one: /set temperature 0.9, /set top-k 20, /set min-p none, /set seed 7
  /set sample | /set no-sample   sample, or always take the likeliest token
  /help                this help
  /quit                leave (Ctrl-D too). Ctrl-C stops a reply as it is being written."""


def repl(voice, pick: dict) -> None:
    """The interactive chat. A seed (--seed or /set seed) seeds the next reply only, so that a whole
    session replays the same while its replies still differ from each other."""
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (arrow keys and line history in input())
        except ImportError:
            pass
    seed, voice.sampling = voice.sampling.seed, dataclasses.replace(voice.sampling, seed=None)
    history: list[tuple[str, str]] = []
    last = None  # (the history a reply answered, the reply): what /good and /bad mark
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
                action = repl_command(text, voice)
            except LikemeError as e:
                click.echo(f"Error: {e}", err=True)
                continue
            if action == "quit":
                return
            if action in ("good", "bad"):
                try:
                    click.echo(marked(voice, last, action == "good"), err=True)
                    last = None  # one mark per reply
                except LikemeError as e:
                    click.echo(f"Error: {e}", err=True)
            elif action == "reset":
                history.clear()
                last = None
                click.echo("(the chat starts over)", err=True)
            elif isinstance(action, tuple):  # ("seed", n or None): seeds the next reply
                seed = action[1]
            elif action == "show":
                click.echo(settings_text(voice, seed), err=True)
            continue
        history.append((voice.partner, text))
        pieces: list[str] = []
        click.echo(f"{voice.name}> ", nl=False)
        try:
            out = voice.reply(history, stream=lambda p: (pieces.append(p), echo_piece(p)),
                              **({"seed": seed} if seed is not None else {}), **pick)
        except KeyboardInterrupt:
            click.echo()
            click.echo("(stopped)", err=True)
            if "".join(pieces).strip():
                history.append((voice.name, "".join(pieces).strip()))  # what was shown is what was said
            last = None  # a reply cut short is not marked
            continue
        except LikemeError as e:
            click.echo()
            click.echo(f"Error: {e}", err=True)
            history.pop()
            continue
        seed = None
        if isinstance(out, list):
            click.echo()
            print_all(out)
            click.echo("(the chat goes on from reply 1)", err=True)
            out = out[0]
        else:
            click.echo()
            if out.finish == "length":
                click.echo(f"(cut at --max-new-tokens {voice.sampling.max_new_tokens})", err=True)
        last = (list(history), str(out)) if str(out).strip() else None
        if out:
            history.append((voice.name, str(out)))


def repl_command(text: str, voice):
    """One /command -> "quit", "reset", "show", ("seed", n) for the next reply, or None; the sampling settings are
    changed in place. `/set top-k 20` and `/set top_k 20` are the same; `/set no-sample` turns sampling off."""
    word, *args = text.split()
    word = word.lower()
    if word in ("/quit", "/exit", "/bye", "/q"):
        return "quit"
    if word == "/reset":
        return "reset"
    if word in ("/good", "/bad"):
        return word[1:]
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
    value = parse_value(args[1], hint, key)
    if key == "seed":
        return ("seed", value)
    if value is None:
        voice.sampling = dataclasses.replace(voice.sampling, **{key: None})
        voice.sampling.check()
    else:
        voice.sampling = voice.sampling.updated(**{key: value})
    return None


def marked(voice, last, good: bool) -> str:
    """Append the mark of the last reply to RUN/marks.jsonl; returns what the chat says about it."""
    from likeme.training import marks
    from likeme.training.pairs import append

    if last is None:
        raise LikemeError(f"nothing to mark: /{'good' if good else 'bad'} marks {voice.name}'s last reply, once")
    path = marks.path_of(voice.run)
    append(path, [marks.of_reply(voice, *last, good)])
    return f"(marked {'good' if good else 'bad'}: {path})"


def parse_value(raw: str, hint, key: str):
    """'0.9' for a float field -> 0.9; 'none' for an optional one -> None; 'on'/'off' for a bool."""
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


def settings_text(voice, seed) -> str:
    values = dataclasses.asdict(voice.sampling) | {"seed": seed}
    return "\n".join(f"  {k.replace('_', '-'):<22} {v}" for k, v in values.items())
