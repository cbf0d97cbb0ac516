"""Using embedder, reward and classifier runs: score, search, index, classify."""
from __future__ import annotations

import json
import sys

import click

from likeme.cli.options import db_option, text_arg
from likeme.errors import LikemeError


@click.command()
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


@click.command()
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

    hits = search_(run, text_arg(text, "text"), k=k, author=author, db=db, progress=sys.stderr.isatty())
    for h in hits:
        if as_json:
            click.echo(json.dumps(h.__dict__, ensure_ascii=False))
        else:
            click.echo(f"{h.score:.3f}  {h.sent_at[:16].replace('T', ' ')}  {h.conversation} | {h.author}: {h.text}")


@click.command("index")
@click.argument("run")
@db_option
def index_cmd(run, db):
    """Bring the search index of RUN up to date with the store (search does it too)."""
    from likeme.use.index import update

    r = update(run, db, progress=sys.stderr.isatty())
    click.echo(f"{r.path}: {r.total} messages indexed ({r.added} added, {r.dropped} dropped)")


@click.command()
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
            from likeme.check.evaluate import classification_report, score_classifier

            r = score_classifier(clf, texts, labels)
            click.echo(json.dumps(r, ensure_ascii=False) if as_json else classification_report(r))
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


@click.command()
@click.argument("run")
@click.argument("text")
@click.option("--context", multiple=True, metavar="NAME: TEXT",
              help="A turn before TEXT, as 'Name: text' (repeat it, oldest first).")
@click.option("--people", default=None, metavar="A,B,C",
              help="Whose slots to compare (default: the run's speakers, or its person and the two most active others).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def who(run, text, context, people, as_json):
    """Who wrote TEXT? Rank the people a voice run knows by how much more likely each one's slot (the
    prompt naming them) under the run makes TEXT than the same slot under its base model, in nats per token
    (authorship by likelihood ratio: what the base finds likely in any mouth cancels out).

    \b
    likeme who gloucester-voice "Now is the winter of our discontent"
    likeme who ana-voice "omw" --context "Sam: where are you?"
    """
    from likeme.prompts import Turn
    from likeme.use.likelihood import Who

    turns = []
    for line in context:
        author, sep, said = line.partition(":")
        if not sep or not author.strip() or not said.strip():
            raise LikemeError(f"--context {line!r}: write each turn as 'Name: text'")
        turns.append(Turn(author.strip(), said.strip()))
    if not text.strip():
        raise LikemeError("nothing to attribute: give a text")
    ranked = Who(run, [p.strip() for p in people.split(",") if p.strip()] if people else None).rank(text, turns)
    if as_json:
        click.echo(json.dumps([{"person": p, "nats_per_token": round(v, 4)} for p, v in ranked], ensure_ascii=False))
        return
    for p, v in ranked:
        click.echo(f"{v:+.3f}  {p}")
