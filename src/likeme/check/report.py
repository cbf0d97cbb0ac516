"""Does it sound like NAME? `likeme report RUN --data EXPORT --as NAME`: one self-contained HTML page (plots
inline, no network) and the same figures as JSON.

    figures = report.build("runs/robin", "later.txt", "Robin", samples=200)
    report.write_html(figures, "robin-report.html")        # and robin-report.json beside it

Sections: held-out perplexity (trained vs base); real and written replies side by side for the same
contexts; style (reply lengths, emoji, punctuation, capitals, laughter, abbreviations; Burrows' Delta
of the function words to NAME's real replies); collapse and diversity (distinct-1/2, repetition loops,
word entropy); memorisation (8-grams of the written replies found word for word in NAME's training
messages, the longest copied run); likeness by a judge run (--judge); the leak audit's verdict when
`likeme audit` has run; the run's provenance card. Uses runs through the inference modules only.
"""
from __future__ import annotations

import base64
import html
import io
import json
from datetime import timedelta
from pathlib import Path

from likeme.errors import LikemeError

KINDS = ("real", "trained", "base")


def build(run, data, name: str, *, judge=None, samples: int = 200, seed: int = 0, max_new_tokens: int = 48,
          format: str | None = None, me: str | None = None) -> dict:
    """Every figure of the report, as a JSON-able dict (see the module's docstring)."""
    from likeme import runs
    from likeme.check import evaluate, style
    from likeme.data import examples

    ref, meta = evaluate.run_made_by(run, runs.VOICES)
    cfg = runs.voice_config(meta)
    turns = cfg.get("context_turns", 8)
    out: dict = {"run": str(ref.path), "as": name, "data": str(data), "base": runs.base_of(ref.path, meta)}
    out["perplexity"] = evaluate.eval_voice(run, data, name, format=format, me=me)
    out["likeness"] = evaluate.eval_likeness(run, data, name, format=format, me=me)
    with evaluate.temporary_store(data, format, me) as store:
        sessions = examples.reply_sessions(store, name, heldout=0.0, gap=timedelta(hours=cfg.get("session_gap_hours", 6.0)))[0]
        picked = examples.even_sample(examples.replies(sessions, name, turns), samples)
        by_author: dict[str, list[list[str]]] = {}
        for m in store.messages(kinds=("text",)):
            by_author.setdefault(m.author, []).append(style.words(m.text))
    if not picked:
        raise LikemeError(f"{data}: no reply by {name} with a message before it: nothing to compare")
    contexts = [r.context for r in picked]
    texts = {"real": [r.reply.text for r in picked]}
    written = {"trained": evaluate.write_replies(ref.path, meta, name, contexts, seed=seed, max_new_tokens=max_new_tokens)}
    if out["base"]:
        written["base"] = evaluate.write_replies(out["base"], meta, name, contexts, seed=seed, max_new_tokens=max_new_tokens)
    texts.update({k: [str(w) for w in v] for k, v in written.items()})
    out["samples"] = len(picked)
    out["examples"] = [{"context": [f"{t.author}: {t.text}" for t in c[-3:]], **{k: texts[k][i] for k in texts}}
                       for i, c in enumerate(contexts[:12])]

    # style and diversity, per kind of text
    tokens = {k: [style.words(t) for t in v] for k, v in texts.items()}
    profiles = {k: style.profile(v) for k, v in tokens.items()}
    authors = [style.profile(v) for v in by_author.values() if sum(map(len, v)) >= 200]
    sigma = style.spread(authors if len(authors) >= 2 else list(profiles.values()))
    out["style"] = {k: {**style.habits(texts[k]), "lengths": [len(t) for t in tokens[k]],
                        "distinct_1": style.distinct(tokens[k], 1), "distinct_2": style.distinct(tokens[k], 2),
                        "entropy_bits": style.entropy(tokens[k]), "loops": sum(map(style.loops, tokens[k])) / len(tokens[k]),
                        "burrows_delta": style.burrows_delta(profiles[k], profiles["real"], sigma)}
                    for k in texts}
    out["style_corpus"] = f"{len(authors)} writers in the export" if len(authors) >= 2 else "the three sets of replies"

    # memorisation: NAME's training messages, from the store the run was trained on
    from likeme.check.audit import training_messages

    training = training_messages(meta, name)
    out["memorisation"] = {k: vars(style.verbatim(texts[k], training, n=8)) for k in written} if training else None
    out["training_messages"] = len(training)

    if judge is not None:
        from likeme.use.judge import Judge, load_judge

        judge = judge if isinstance(judge, Judge) else load_judge(judge, name)
        real_scores = judge.score(texts["real"], contexts)
        out["judge"] = {"kind": judge.kind, **evaluate.reply_figures(texts["real"], real_scores, None, None, "_real")}
        for k, suffix in (("trained", ""), ("base", "_base")):
            if k in written:
                out["judge"].update(evaluate.reply_figures(texts[k], judge.score(texts[k], contexts), real_scores,
                                                           [w.finish == "stop" for w in written[k]], suffix))
    audit = ref.path / "audit.json"
    out["audit"] = json.loads(audit.read_text("utf-8")) if audit.is_file() else None
    out["provenance"] = runs.provenance(ref.path).get("data")
    return out


# -- the page ------------------------------------------------------------------------------------

def write_html(figures: dict, path: str | Path) -> Path:
    """The report as one HTML file (PNG plots inline as data: URIs) and its figures as JSON beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(figures, indent=2, ensure_ascii=False), "utf-8")
    st = figures["style"]
    ppl = figures["perplexity"]
    parts = [f"<h1>Does it sound like {_e(figures['as'])}?</h1>",
             f"<p class=sub>{_e(figures['run'])} · judged on {_e(figures['data'])} · {figures['samples']} replies</p>",
             "<h2>Held-out perplexity</h2>",
             f"<p>Perplexity of {_e(figures['as'])}'s {ppl['replies']} real replies in the export: "
             f"<b>{ppl['ppl']:.2f}</b> trained, {ppl['base_ppl']:.2f} base (lower: the model expects what "
             f"{_e(figures['as'])} writes).</p>", _img(_bars({"trained": ppl["ppl"], "base": ppl["base_ppl"]},
                                                               "Held-out perplexity (lower is better)", "perplexity"))]
    like = figures.get("likeness")
    if like:
        drops = {p: 100 * f["drop"] for p, f in like["by_person"].items()}
        parts += [f"<h2>Like {_e(figures['as'])}, or like everyone?</h2>",
                  f"<p>Every person's turns in these chats scored as if {_e(figures['as'])} had written them: the drop "
                  f"in perplexity from the base model, per person. <b>Specificity {like['specificity']:+.1f} points</b> "
                  f"({_e(figures['as'])}'s drop minus the others'); a voice of the medium lowers everyone's alike. The "
                  f"likelihood-ratio judge tells {_e(figures['as'])}'s turns from others' with AUC {like['likelihood_auc']}.</p>",
                  _img(_bars(drops, "Perplexity drop from the base, each person's turns in this slot",
                             "% lower than the base", highlight=figures["as"]))]
    if figures.get("judge"):
        j = figures["judge"]
        parts += ["<h2>Likeness, as the judge sees it</h2>",
                  f"<p>{_e(j['kind'])} judge: mean score real {j.get('judge_score_real')}, trained {j.get('judge_score')}, "
                  f"base {j.get('judge_score_base')}; how well it tells real from written (AUC, 0.5 = it cannot): "
                  f"trained {j.get('judge_auc')}, base {j.get('judge_auc_base')}.</p>"]
    parts += ["<h2>Style</h2>", _img(_lengths(st)), _img(_habits(st)),
              f"<p>Burrows' Delta of the function words to the real replies (0: the same habits; z-scores over "
              f"{_e(figures['style_corpus'])}): trained <b>{st['trained']['burrows_delta']:.3f}</b>"
              + (f", base {st['base']['burrows_delta']:.3f}" if "base" in st else "") + ".</p>",
              "<h2>Collapse and diversity</h2>", _img(_diversity(st)), _table(
                  ["", *st], [[k.replace("_", " "), *(f"{st[s][k]:.3f}" for s in st)]
                              for k in ("distinct_1", "distinct_2", "entropy_bits", "loops", "words")]),
              "<h2>Memorisation</h2>"]
    mem = figures.get("memorisation")
    if mem:
        parts.append(_table(["", "8-grams copied from training", "longest copied run (words)", "the run"],
                            [[k, f"{v['share']:.2%}", str(v["longest"]), _e(v["example"])] for k, v in mem.items()]))
    else:
        parts.append("<p>The store the run was trained on is not here: nothing to compare with.</p>")
    audit = figures.get("audit")
    parts.append("<h2>Leak audit</h2>")
    parts.append(f"<p class={audit['verdict'].lower()}><b>{audit['verdict']}</b>: {_e(audit['reason'])}</p>" if audit
                 else "<p>Not run yet: <code>likeme audit RUN</code>.</p>")
    parts += ["<h2>Side by side</h2>", _table(["context", *KINDS], [
        ["<br>".join(_e(c) for c in ex["context"]), *(_e(ex.get(k, "")) for k in KINDS)] for ex in figures["examples"]])]
    prov = figures.get("provenance") or {}
    if prov:
        people = prov.get("messages") or {}
        yes_no = {True: "yes", False: "no", None: "not recorded"}
        parts += ["<h2>Provenance</h2>", _table(
            ["export", "sha256", "platform", "from", "to", "messages", "scrubbed"],
            [[_e(s.get("name", "")), _e(str(s.get("sha256", ""))[:16]), _e(", ".join(s.get("platforms", []))),
              _e(str(s.get("first", ""))[:10]), _e(str(s.get("last", ""))[:10]), str(s.get("messages", "")),
              _e(", ".join(s["scrub"]) or "no") if s.get("scrub") is not None else yes_no.get(s.get("scrubbed"), "")]
             for s in prov.get("sources", [])]),
            _table(["person", "messages trained on"], [[_e(k), str(v)] for k, v in people.items()]),
            "<p>Forgotten before training (likeme forget): "
            + (", ".join(_e(f["author"]) for f in prov.get("forgotten", [])) or "nobody") + ".</p>"]
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>likeme report: {_e(figures['as'])}</title>"
            f"<style>{CSS}</style><body>{''.join(parts)}</body></html>")
    path.write_text(page, "utf-8")
    return path


CSS = ("body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}"
       "h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}img{max-width:100%;display:block;margin:.5em 0}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .6em;vertical-align:top;"
       "text-align:left}.pass{color:#1a7f37}.warn{color:#b35900}")


def _e(x) -> str:
    return html.escape(str(x))


def _table(head: list[str], rows: list[list[str]]) -> str:
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")


def _img(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    title = fig.axes[0].get_title() if fig.axes else "plot"
    plt.close(fig)
    return f'<img alt="{_e(title)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(values: dict, title: str, ylabel: str, highlight: str | None = None):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(values)), 3))
    colors = ["#4c72b0" if k == highlight else "#999999" for k in values] if highlight else \
        ["#4c72b0", "#999999", "#dd8452"][: len(values)]
    ax.bar(list(values), list(values.values()), color=colors)
    ax.set(title=title, ylabel=ylabel)
    if len(values) > 4:
        ax.tick_params(axis="x", labelrotation=30)
    return fig


def _lengths(st: dict):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    top = max(max(v["lengths"], default=1) for v in st.values())
    bins = range(0, min(top, 60) + 2)
    for k, v in st.items():
        ax.hist([min(x, 60) for x in v["lengths"]], bins=bins, histtype="step", linewidth=1.8, label=k)
    ax.set(title="Reply length", xlabel="words per reply (60+ at 60)", ylabel="replies")
    ax.legend()
    return fig


HABITS = ("emoji", "question", "exclamation", "ellipsis", "laughter", "abbreviation", "capitalised", "all_lowercase")


def _habits(st: dict):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(st)
    for i, (k, v) in enumerate(st.items()):
        ax.bar([j + i * width for j in range(len(HABITS))], [v[h] for h in HABITS], width, label=k)
    ax.set_xticks([j + width * (len(st) - 1) / 2 for j in range(len(HABITS))], [h.replace("_", " ") for h in HABITS],
                  rotation=20)
    ax.set(title="Writing habits: share of replies with each", ylabel="share of replies", ylim=(0, 1))
    ax.legend()
    return fig


def _diversity(st: dict):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    keys = ("distinct_1", "distinct_2", "loops")
    width = 0.8 / len(st)
    for i, (k, v) in enumerate(st.items()):
        axes[0].bar([j + i * width for j in range(len(keys))], [v[x] for x in keys], width, label=k)
    axes[0].set_xticks([j + width * (len(st) - 1) / 2 for j in range(len(keys))], ["distinct-1", "distinct-2", "loops"])
    axes[0].set(title="Diversity (loops: share of replies)", ylim=(0, 1))
    axes[0].legend()
    axes[1].bar(list(st), [v["burrows_delta"] for v in st.values()], color="#8172b2")
    axes[1].set(title="Burrows' Delta to the real replies", ylabel="delta (0: same habits)")
    return fig
