"""What the commands share: flags (--db, the sampling flags, --backend, --precision, --json-schema, the server's
limits), the store, a loaded voice, text from an argument or stdin, progress bars. Light: heavy modules are
imported inside the functions, so that `likeme --help` answers at once."""
from __future__ import annotations

import sys

import click

from likeme.errors import LikemeError

ARGV: list[str] = []  # the arguments main() was given: --processes runs the same command again in N processes

db_option = click.option(
    "--db", type=click.Path(dir_okay=False), default=None, envvar="LIKEME_DB",
    help="SQLite store to use (default: $LIKEME_HOME/likeme.db, LIKEME_HOME defaulting to ~/.likeme).")


def open_store(db):
    from likeme.data.store import Store
    return Store(db)


def sampling_options(fn):
    """The sampling flags (--temperature ... --num-return-sequences), one per `decoding.Sampling` field,
    help text and defaults written once there. Each is None when not given."""
    from likeme.config import click_options
    from likeme.use.decoding import (
        Sampling,  # light: decoding.py imports torch only inside its functions
    )

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


def limits_options(fn):
    """The server's limits (--max-queue ...), one flag per `Limits` field."""
    from likeme.config import click_options
    from likeme.serve.limits import Limits

    return click_options(Limits)(fn)


def load_json_schema(path):
    """--json-schema FILE -> a compiled schema (checked before the model loads), or None."""
    if path is None:
        return None
    from likeme.use.grammar import load_schema_file

    return load_schema_file(path)


def open_voice(run, flags: dict, **load_options):
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


def text_arg(text: str, what: str) -> str:
    """'-' -> stdin (for pipes: `echo hi | likeme chat RUN -m -`)."""
    if text != "-":
        return text
    text = sys.stdin.read().strip()
    if not text:
        raise LikemeError(f"no {what} on stdin: pipe one in, or pass it as an argument")
    return text


def echo_piece(piece: str) -> None:
    click.echo(piece, nl=False)  # click.echo flushes: each piece shows as it is generated


def print_all(results, prefix: str = "") -> None:
    """Several samples, each under a header: `--- 1 of 3 ---`."""
    for i, text in enumerate(results, 1):
        click.echo(f"--- {i} of {len(results)} ---")
        click.echo(prefix + text)


def bar_if_tty(total, unit: str):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=f" {unit}", file=sys.stderr, leave=False)
