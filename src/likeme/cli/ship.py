"""Runs elsewhere: serve (an OpenAI-compatible API and a chat page), export (transformers, GGUF, Ollama), and the
studio (the whole path in the browser)."""
from __future__ import annotations

import click

from likeme.cli.options import backend_option, db_option, limits_options, precision_option
from likeme.errors import LikemeError


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine's own (127.0.0.1, ::1) needs an API key.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--api-key", envvar="LIKEME_API_KEY", default=None, metavar="KEY",
              help="Every /v1 request must send Authorization: Bearer KEY (also from LIKEME_API_KEY).")
@click.option("--log-messages", is_flag=True, help="Write the messages of each request to the log (off: only sizes).")
@backend_option
@precision_option
@limits_options
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


@click.command("export")
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


@click.command("merge")
@click.argument("runs", nargs=-1, required=True)
@click.option("--weights", default=None, metavar="W,W,...",
              help="One weight per run, comma-separated (default: equal, summing to 1).")
@click.option("--out", type=click.Path(), required=True, help="The merged run's folder (new).")
def merge_cmd(runs, weights, out):
    """Merge LoRA voices of one base: the new run's update is the weighted sum of theirs (task arithmetic).

    It prompts as the first run named (its people and slots). A person voice (--blend 0: the contrast
    alone) merged with a register voice (--contrast 0) kept most of each on Richard III; `train voice`
    does this by default (--blend).

    \b
    likeme merge runs/ana-contrast runs/ana-register --weights 0.65,0.35 --out runs/ana-merged"""
    from likeme.use.merge import merge, parse_weights

    click.echo(str(merge(list(runs), parse_weights(weights, len(runs)), out)))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but this machine's own (127.0.0.1, ::1) needs an API key.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--api-key", envvar="LIKEME_API_KEY", default=None, metavar="KEY",
              help="Every /api and chat request must send Authorization: Bearer KEY (also from LIKEME_API_KEY).")
@click.option("--allow", multiple=True, type=click.Path(exists=True, file_okay=False), metavar="FOLDER",
              help="A folder whose exports and models the page may name, besides $LIKEME_HOME and your home (repeatable).")
@click.option("--max-upload-mb", type=click.IntRange(1), default=500, show_default=True,
              help="Largest export the page may upload, in MB (a bigger one: give its path).")
@db_option
def studio(host, port, api_key, allow, max_upload_mb, db):
    """The whole path in the browser: add exports, train, watch the loss, chat with the run, export it.

    Each job (train, report, export) is this CLI in its own process, one at a time, queued.

    \b
    likeme studio                      # http://127.0.0.1:8000
    likeme studio --allow ~/exports --port 8080"""
    from likeme.serve import check_host
    from likeme.studio import studio as run_studio

    check_host(host, api_key)
    run_studio(host=host, port=port, api_key=api_key, allow=allow, db=db, max_upload_mb=max_upload_mb)
