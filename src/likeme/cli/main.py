"""The `likeme` command: the group, its commands gathered from one module per topic, and main(), which
turns errors into one line and exit codes. Thin: every command calls a library function a notebook could
call too. Heavy modules are imported inside the commands so that `likeme --help` answers at once."""
from __future__ import annotations

import os
import sys
import warnings

import click

from likeme.cli import check, data, score, ship, talk, train
from likeme.cli.options import ARGV
from likeme.errors import LikemeError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="likeme")
def cli():
    """Turn your own chat history into models that are like you.

    \b
    Start with:  likeme ingest "WhatsApp Chat with Sam.zip"
    Then:        likeme people
    """


for command in (data.ingest, data.people, data.messages, data.forget, data.runs_cmd, data.formats, data.models,
                talk.chat, talk.generate_text, score.score, score.who, score.search, score.index_cmd, score.classify,
                check.plan, check.eval_cmd, check.report, check.audit, check.tokenize,
                ship.serve, ship.export_cmd, ship.merge_cmd, ship.studio, train.train, train.pairs, train.compare):
    cli.add_command(command)


def main(args: list[str] | None = None):
    """The `likeme` command: `args` default to the command line. Errors are one line (exit 1), Ctrl-C exits 130."""
    ARGV[:] = list(args) if args is not None else sys.argv[1:]
    from likeme.runs import Interrupted  # 0.1 s: not for building the commands

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
