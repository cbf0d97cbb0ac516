"""The plots a run folder carries: learning curves from its metrics.jsonl, and a confusion matrix.

Every recipe draws its `plots/loss.png` with `learning_curves`, from the rows it logged (one schema,
runs.MetricsLog), so that all runs look alike: x is the step, the training and held-out losses on the
left axis, a held-out figure in 0..1 on the right one when the recipe logs one.

    learning_curves(run, ylabel="loss (nats/token)")
    learning_curves(run, right="eval_macro_f1")
"""
from __future__ import annotations

import json
from pathlib import Path

from likeme.processes import is_main


def read_metrics(run: Path) -> list[dict]:
    """The rows of run/metrics.jsonl (none when the run logged nothing yet)."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def learning_curves(run: Path, *, ylabel: str = "loss", right: str | None = None) -> Path:
    """run/plots/loss.png: the training loss and the held-out loss by step; `right`: an eval figure
    in 0..1 (e.g. "eval_macro_f1") on a right axis."""
    label = "held-out " + right.removeprefix("eval_").replace("_", " ") if right else ""
    return curves(run, [("loss", "train", "-"), ("eval_loss", "held-out", "o-")], ylabel=ylabel,
                  right=(right, label) if right else None)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server, and no window in a notebook
    import matplotlib.pyplot as plt

    return plt


def curves(run: Path, series: list[tuple[str, str, str]], *, x: str = "step", ylabel: str = "loss",
           right: tuple[str, str] | None = None, path: Path | None = None) -> Path:
    """Draw run/plots/loss.png (or `path`) from metrics.jsonl.

    series: (key in the rows, legend label, line style) on the left axis, e.g.
            [("loss", "train", "-"), ("eval_loss", "held-out", "o-")];
    right:  (key, label) of a 0..1 figure on a right axis, e.g. ("triplet_accuracy", "held-out triplet accuracy").
    Rows lacking a key (or holding null) are skipped for that line. Returns the file written.

    Example: rows {"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7} -> a train line
    through (1, 2.0), (2, 1.5) and one held-out point at (2, 1.7).
    """
    plt = _pyplot()
    run = Path(run)
    rows = read_metrics(run)
    path = path or run / "plots" / "loss.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for key, label, style in series:
        points = [(r[x], r[key]) for r in rows if r.get(key) is not None and x in r]
        if points:
            ax.plot(*zip(*points), style, label=label, lw=1.5 if "o" in style else 1)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if right:
        key, label = right
        points = [(r[x], r[key]) for r in rows if r.get(key) is not None and x in r]
        if points:
            ax2 = ax.twinx()
            ax2.plot(*zip(*points), "s--", color="tab:green", label=label, lw=1)
            ax2.set_ylabel(label)
            ax2.set_ylim(0, 1)
            handles += ax2.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles, [h.get_label() for h in handles], fontsize=8)
    ax.set_title(run.name)
    fig.tight_layout()
    if is_main():  # several training processes: one writes
        fig.savefig(path)
    plt.close(fig)
    return path


def confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str = "") -> Path:
    """The confusion matrix as a heat map (rows: true label, columns: predicted). Label names are shown up to
    30 labels (smaller type as they grow); beyond that the axes are numbered, the names being unreadable."""
    import numpy as np

    plt = _pyplot()
    k = len(labels)
    m = np.asarray(matrix, dtype=float)  # (K, K)
    side = min(14.0, max(4.5, 0.28 * k + 2.5))
    fig, ax = plt.subplots(figsize=(side, side * 0.9), dpi=120)
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if k <= 30:
        size = max(5, min(9, 220 // k))
        ax.set_xticks(range(k), [str(s)[:24] for s in labels], rotation=90, fontsize=size)
        ax.set_yticks(range(k), [str(s)[:24] for s in labels], fontsize=size)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if m[i, j]:
                        ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=size,
                                color="white" if m[i, j] > m.max() / 2 else "black")
    else:
        ticks = list(range(0, k, 10))
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=7)
    ax.set_xlabel("predicted" + (" (label index)" if k > 30 else ""))
    ax.set_ylabel("true" + (" (label index)" if k > 30 else ""))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_main():  # several training processes: one writes
        fig.savefig(path)
    plt.close(fig)
    return path
