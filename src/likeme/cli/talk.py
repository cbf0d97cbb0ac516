"""Talking to a trained voice (likeme.use.generate): chat, and generate for raw text."""
from __future__ import annotations

import sys

import click

from likeme.cli.options import (
    backend_option,
    db_option,
    echo_piece,
    json_schema_option,
    load_json_schema,
    open_voice,
    precision_option,
    print_all,
    sampling_options,
    text_arg,
)
from likeme.cli.repl import repl
from likeme.errors import LikemeError


@click.command()
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
@click.option("--as", "as_name", metavar="NAME", default=None,
              help="Speak as another person the run learnt (a run trained with --learn-from everyone); default: its own.")
@click.option("--guidance", type=click.FloatRange(0, 10), default=None, metavar="A",
              help="Person guidance: sharpen NAME's slot against the other people's slots of the chat by A "
                   "(classifier-free guidance; default: the run's, 0: off; torch backend).")
@json_schema_option
@backend_option
@precision_option
@db_option
@sampling_options
def chat(run, message, best_of, judge, recall, as_name, guidance, json_schema, backend, precision, db, **flags):
    """Chat with a trained voice: you write as the partner, it answers as NAME.

    RUN is a run folder (or its name under $LIKEME_HOME/runs). In the chat, /help lists the commands.

    \b
    likeme chat ana-voice
    likeme chat ana-voice --message "are you coming tonight?" --seed 1
    echo "are you up?" | likeme chat ana-voice --message -
    likeme chat ana-voice --best-of 4 --judge ana-embedder
    likeme chat ana-voice --as Sam          # a run that learnt from everyone speaks as any of them
    likeme chat ana-voice --guidance 1      # more like Ana than like the others in the chat
    likeme chat ana-voice -m "rate tonight's film" --json-schema rating.schema.json
    """
    try:
        text = text_arg(message, "message") if message is not None else None
        if best_of > 1 and not judge:
            raise LikemeError("--best-of needs --judge RUN to pick with (an embedder or author classifier of NAME)")
        schema = load_json_schema(json_schema)
        torch_only = schema is not None or guidance is not None
        voice = open_voice(run, flags, recall=recall, db=db, backend="torch" if torch_only else backend,
                           precision=precision, **({"name": as_name} if as_name else {}),
                           **({"guidance": guidance} if guidance is not None else {}))
        voice.prompt_ids([])  # a run that cannot chat (no as: NAME) says so now, not after the first message
        pick = {"json_schema": schema} if schema is not None else {}
        if best_of > 1:
            from likeme.use.judge import load_judge

            pick.update(best_of=best_of, judge=load_judge(judge, voice.name))
        if text is None:
            repl(voice, pick)
            return
        out = voice.reply([text], stream=echo_piece, **pick)
        if isinstance(out, list):
            print_all(out)
        else:
            click.echo()
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(130)


@click.command("generate")
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
        prompt = text_arg(prompt, "prompt")
        schema = load_json_schema(json_schema)
        voice = open_voice(run, flags, backend="torch" if schema is not None else backend, precision=precision)
        if voice.sampling.num_return_sequences > 1:
            print_all(voice.generate(prompt, json_schema=schema), prefix=prompt if echo else "")
            return
        if echo:
            echo_piece(prompt)
        voice.generate(prompt, stream=echo_piece, json_schema=schema)
        click.echo()
    except KeyboardInterrupt:
        click.echo("", err=True)
        sys.exit(130)
