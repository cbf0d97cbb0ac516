"""Run folders: what every recipe writes, in one layout, and how its training is recorded.

    runs/ana-voice/
      run.yaml        recipe, task, base, status, created, config (resolved), data (where it came from),
                      versions (of the libraries), and what the recipe adds (as, partner, labels, ...)
      model/          the weights (safetensors) with their tokenizer beside them: a full model
                      (config.json, model.safetensors), a LoRA adapter on `base` (adapter_config.json,
                      adapter_model.safetensors) or a sentence-transformers folder (modules.json, ...)
      metrics.jsonl   one line per log, the same schema for every recipe (below)
      metrics.json    the final figures
      plots/          loss.png, and what the recipe adds
      checkpoints/    only while a run is unfinished: what `--resume` continues from

`status` is `training` while a recipe runs (and stays so when the process is killed), `interrupted`
after Ctrl-C, `failed` after an error, `done` at the end. A run that is not done resumes from its
latest checkpoint with `likeme train RECIPE --out RUN --resume`.

metrics.jsonl, one schema for step- and epoch-based recipes: every row has `step` (optimizer steps
so far), `epoch` (passes over the training data, fractional) and `seconds` (training time so far);
a training row adds `loss`, `lr`, a rate (`tokens_per_s`, or `examples_per_s`) and `max_steps` (the
last step as planned then: a time budget moves it), an evaluation row `eval_loss` and `eval_<figure>`:

    {"step": 12, "epoch": 0.48, "seconds": 31.2, "loss": 2.3101, "lr": 0.0002, "max_steps": 60, "tokens_per_s": 412.0}
    {"step": 20, "epoch": 0.8, "seconds": 52.0, "eval_loss": 2.1042, "eval_accuracy": 0.7143}

A resumed run drops the rows logged after its checkpoint, so each step appears once.

    >>> run, cfg = start("voice", cfg, default_name="ana-voice", resume=False)
    >>> run.begin(task="causal-lm", base="smollm2-135m", data=store.provenance("Ana"), **{"as": "Ana"})
    >>> with run.recording():
    ...     ...  # train, writing run.metrics rows; run.finish(figures) at the end
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from likeme.errors import LikemeError
from likeme.paths import atomic_dir, atomic_write, first_line, is_disk_full, runs_dir
from likeme.processes import is_main

RUN_FILE = "run.yaml"
STATUSES = ("training", "interrupted", "done", "failed")
VERSIONED = ("likeme", "torch", "transformers", "peft", "accelerate", "sentence-transformers", "trl")
VOICES = ("voice", "prefer")  # recipes whose runs write replies as NAME (`generate.load`)
USED_AS = {"classification": "classifier", "causal-lm": "voice", "sentence-embedding": "embedder"}  # by task


def slug(name: str) -> str:
    """A folder name from a person's or a file's name: "Ana María" -> "ana-maría", "x/y" -> "x-y"."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-").lower() or "run"


def read_meta(run: str | Path) -> dict:
    """run/run.yaml as a dict. Example: runs/ana-voice -> {"recipe": "voice", "base": "smollm2-135m", ...}"""
    import yaml

    run_file = Path(run) / RUN_FILE
    try:
        meta = yaml.safe_load(run_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise LikemeError(f"{run_file}: cannot read it ({first_line(e)}): fix or delete the run") from e
    return meta if isinstance(meta, dict) else {}


def write_meta(run: str | Path, meta: dict) -> None:
    """Write run/run.yaml in one step (keys in the order given; non-ASCII names kept readable)."""
    import yaml

    atomic_write(Path(run) / RUN_FILE, yaml.safe_dump(meta, allow_unicode=True, sort_keys=False))


def base_of(run: str | Path, meta: dict | None = None) -> str | None:
    """The base model named in run.yaml; a relative name that exists beside the run folder is taken as
    a path from it, so runs can be moved together. Example: base "../tiny" -> "runs/ana/../tiny"."""
    base = (meta if meta is not None else read_meta(run)).get("base")
    if not base:
        return None
    local = Path(run) / str(base)
    return str(local) if local.exists() else str(base)


def root_base(run: str | Path) -> str | None:
    """The model a chain of runs started from: a preference run's base is a voice run, whose base is the
    model. Example: runs/ana-orpo (base runs/ana) -> runs/ana (base smollm2-135m) -> "smollm2-135m"."""
    base = base_of(run)
    for _ in range(16):  # a chain of runs, each tuned from the one before
        if base is None or not (Path(base) / "run.yaml").is_file():
            break
        base = base_of(base)
    return base


def used_as(meta: dict) -> str | None:
    """The recipe whose runs this one is used like: its own for voice, prefer, classifier, embedder and reward
    runs; for the others (pretrain, instruct, a distilled student) what their task says.

    Example: {"recipe": "distill", "task": "classification"} -> "classifier"; {"recipe": "pretrain",
      "task": "causal-lm"} -> "voice"; {"recipe": "tokenizer", "task": "tokenizer"} -> None
    """
    recipe = meta.get("recipe")
    return recipe if recipe in ("voice", "prefer", "classifier", "embedder", "reward") else USED_AS.get(meta.get("task"))


def speaking_as(meta: dict, name: str | None, partner: str | None) -> tuple[str | None, str | None]:
    """(who a voice run speaks as, who the user plays): the run's person and partner, or another speaker of
    a run that learnt from everyone (`speakers:`), whose partner is then the run's person. A name the run
    never learnt is a one-line error (a plain model, with no `as:`, takes any name).

    Example: {"as": "Ana", "partner": "Sam", "speakers": {"Ana": 20, "Sam": 18}}, "Sam" -> ("Sam", "Ana")
    """
    own, speakers = meta.get("as"), meta.get("speakers") or {}
    if not name or name == own or not own:
        return name or own, partner or meta.get("partner")
    if name not in speakers:
        learnt = ", ".join(speakers) if speakers else f"{own} only (train with --learn-from everyone to speak as others)"
        raise LikemeError(f"this run did not learn {name!r}'s voice: it learnt {learnt}")
    return name, partner or own


def voice_config(meta: dict) -> dict:
    """How a run that writes replies builds its prompts (format, context_turns, block_size, session gap,
    heldout): its own config for a voice run, the voice's for a run tuned from one (`voice_config:`)."""
    return meta.get("voice_config") or meta.get("config") or {}


def versions() -> dict:
    """The versions of Python and of the libraries that shape a run's result."""
    import importlib.metadata
    import platform

    out = {"python": platform.python_version()}
    for dist in VERSIONED:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


class Interrupted(LikemeError):
    """Training stopped by Ctrl-C after a step, with a checkpoint that --resume continues from."""

    def __init__(self, run: Path, step: int, recipe: str):
        self.run, self.step = run, step
        super().__init__(f"interrupted at step {step}; a checkpoint is in {run}: continue with "
                         f"likeme train {recipe} --out {run} --resume")


def start(recipe: str, cfg, *, default_name: str, resume: bool = False):
    """(Run, config) for a new run or one to resume, before any data or model is loaded.

    New: the folder is `cfg.out`, else `$LIKEME_HOME/runs/<default_name>`; a folder holding anything
    is refused. Resume: the folder must hold an unfinished run of this recipe; its saved config
    replaces `cfg` (flags other than --out are not read again).
    """
    path = Path(cfg.out) if cfg.out else runs_dir() / default_name
    if not resume:
        # Several processes (likeme.processes): the main one checks, the others may find its folder made.
        if is_main() and path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise LikemeError(f"{path} already exists: pass --out for a new run, or --resume to continue it")
        return Run(path, recipe), cfg
    if not (path / RUN_FILE).is_file():
        raise LikemeError(f"{path}: no run to resume (no {RUN_FILE}); start one without --resume")
    run = Run(path, recipe, read_meta(path))
    if run.meta.get("recipe") != recipe:
        raise LikemeError(f"{path} is a {run.meta.get('recipe')!r} run, not a {recipe} run: "
                          f"resume it with likeme train {run.meta.get('recipe')} --out {path} --resume")
    if run.meta.get("status") == "done":
        raise LikemeError(f"{path} has finished already: nothing to resume")
    names = {f.name for f in dataclasses.fields(cfg)}
    saved = {k: v for k, v in (run.meta.get("config") or {}).items() if k in names}
    return run, dataclasses.replace(cfg, **{**saved, "out": str(path)})


class Run:
    """A run folder being written. Made by `start`; `begin` writes run.yaml once the data is known.
    In a process other than the main one (likeme.processes) nothing is written."""

    def __init__(self, path: str | Path, recipe: str, meta: dict | None = None):
        self.path, self.recipe = Path(path), recipe
        self.meta = meta
        self.resumed = meta is not None
        self.main = is_main()
        self.metrics = MetricsLog(self.path / "metrics.jsonl", write=self.main)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={(self.meta or {}).get('status')!r})"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def begin(self, *, config, task: str, base: str | None, data: dict, **extra) -> Run:
        """Write run.yaml with status `training`. On resume, the data must be what the run started
        from (same sources and counts): a store that changed since gives a different training set."""
        if self.resumed:
            if self.meta.get("data") != data:
                raise LikemeError(f"{self.path}: the data changed since this run started ({_data_diff(self.meta.get('data'), data)}): "
                                  "resuming needs the same data; start a new run with another --out")
            self.update(status="training")
            return self
        self.meta = {"recipe": self.recipe, "task": task, "base": base, "status": "training",
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     **extra, "config": dataclasses.asdict(config), "data": data, "versions": versions()}
        if self.main:
            self.path.mkdir(parents=True, exist_ok=True)
            write_meta(self.path, self.meta)
            write_provenance(self.path, self.meta)
        return self

    @contextmanager
    def saving_model(self):
        """A folder to save the model into: `model/`, written whole or not at all (paths.atomic_dir); in a
        process other than the main one, a scratch folder dropped after (every process saves, as FSDP's
        gathered weights need, and only the main one's save is kept)."""
        if self.main:
            with atomic_dir(self.model_dir) as folder:
                yield folder
        else:
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                yield Path(folder)

    def update(self, **fields) -> None:
        self.meta.update(fields)
        if self.main:
            write_meta(self.path, self.meta)

    @contextmanager
    def recording(self):
        """Marks the run `interrupted` on Ctrl-C and `failed` (with the error) on any other error; a full
        disk becomes a one-line error that says what to do."""
        try:
            yield self
        except (KeyboardInterrupt, Interrupted):
            self.update(status="interrupted")
            raise
        except BaseException as e:
            self.update(status="failed", error=first_line(e))
            if isinstance(e, Exception) and is_disk_full(e):
                raise LikemeError(f"no space left on the disk writing {self.path}: free some space, then continue "
                                  f"with --resume (or start again with --out on a disk with room)") from e
            raise

    def latest_checkpoint(self) -> Path | None:
        """The newest `checkpoints/checkpoint-N` that was written whole (transformers writes its
        trainer_state.json last), or None."""
        found = [p for p in self.checkpoints.glob("checkpoint-*")
                 if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()] \
            if self.checkpoints.is_dir() else []
        return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None

    def finish(self, figures: dict) -> None:
        """metrics.json, status `done`, and no checkpoints left (a finished run needs no optimizer state)."""
        if not self.main:
            return
        figures = {**figures, "peak_memory_bytes": peak_memory()}
        atomic_write(self.path / "metrics.json", json.dumps(figures, indent=2) + "\n")
        self.meta.pop("error", None)
        self.update(status="done")
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def peak_memory() -> int:
    """The most memory this process has held: on a GPU, torch's peak allocation there; else the process's
    peak resident size (what `likeme plan` estimates)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    try:  # Linux: this program's own peak (getrusage's keeps the parent's across fork + exec)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


PROVENANCE_FILE = "provenance.json"


def write_provenance(run: Path, meta: dict) -> dict:
    """run/provenance.json, the run's card: what it was trained on and whose words are in it. From a store:
    each export (name, sha256, platform, date range, what was scrubbed from it), each person and how many of their
    messages, the people forgotten before the run; from files: each file and its sha256."""
    data = meta.get("data") or {}
    card = {"recipe": meta.get("recipe"), "created": meta.get("created"), "base": meta.get("base"),
            "as": meta.get("as"), "data": data}
    if data.get("store") and Path(data["store"]).is_file():
        from likeme.data.store import Store

        with Store(data["store"]) as store:
            card["data"] = store.provenance_card(meta.get("as") if "as" in meta else None)
    atomic_write(run / PROVENANCE_FILE, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return card


def provenance(run: str | Path) -> dict:
    """The card of a run (provenance.json; for a run from before it existed, what run.yaml says)."""
    path = Path(run) / PROVENANCE_FILE
    if path.is_file():
        return json.loads(path.read_text("utf-8"))
    meta = read_meta(run)
    return {"recipe": meta.get("recipe"), "created": meta.get("created"), "base": meta.get("base"),
            "as": meta.get("as"), "data": meta.get("data") or {}}


def all_runs(root: str | Path | None = None) -> list[Path]:
    """The run folders under `root` (default $LIKEME_HOME/runs), oldest first."""
    root = Path(root) if root else runs_dir()
    found = [p for p in root.iterdir() if (p / RUN_FILE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: str(read_meta(p).get("created") or ""))


def trained_on(author: str, root: str | Path | None = None) -> list[Path]:
    """The runs whose training data held messages by `author` (their provenance card counts them)."""
    return [p for p in all_runs(root) if (provenance(p).get("data") or {}).get("messages", {}).get(author)]


def _data_diff(old: dict | None, new: dict) -> str:
    old = old or {}
    for key in ("file", "sha256", "store"):
        if old.get(key) != new.get(key):
            return f"{key}: {old.get(key)} -> {new.get(key)}"
    if old.get("sources") != new.get("sources"):
        return "other exports were ingested or forgotten"
    return "other message counts"


class MetricsLog:
    """run/metrics.jsonl: rows appended as training goes (flushed each time, so a kill loses none),
    read back, and cut after a checkpoint's step when the run resumes. Draws the progress bar when
    one is started with `show`."""

    def __init__(self, path: Path, write: bool = True):
        self.path, self.write = path, write  # write False: a process other than the main one
        self.bar: Progress | None = None

    def rows(self) -> list[dict]:
        """Every complete row (a line cut short by a kill is skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text("utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                out.append(row)
        return out

    def append(self, row: dict) -> None:
        if not self.write:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.bar is not None:
            self.bar.show(row)

    def truncate_after(self, step: int) -> None:
        """Keep the rows up to `step` (the checkpoint a run resumes from): they will not be logged again."""
        if not self.write:
            return
        keep = [r for r in self.rows() if r.get("step", 0) <= step]
        atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def show(self, total: int, initial: int = 0) -> None:
        if self.write:
            self.bar = Progress(total, initial)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Progress:
    """The progress bar of every recipe, drawn from the metrics rows: steps done, loss, rate and time
    left; an evaluation row prints a line above the bar.

        training:  40%|████      | 24/60 [01:02<01:33, 2.6s/step, loss=2.310, tok/s=412]
        step 20: eval_loss 2.1042, eval_accuracy 0.7143
    """

    def __init__(self, total: int, initial: int = 0):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", desc="training", file=sys.stderr,
                        dynamic_ncols=True)

    def show(self, row: dict) -> None:
        if "loss" in row:
            self.bar.update(max(0, row["step"] - self.bar.n))
            rate = {"tok/s": row.get("tokens_per_s")} if row.get("tokens_per_s") else {"ex/s": row.get("examples_per_s")}
            self.bar.set_postfix(loss=f"{row['loss']:.3f}", **{k: f"{v or 0:.0f}" for k, v in rate.items()})
        figures = [f"{k} {v}" for k, v in row.items() if k.startswith("eval_")]
        if figures:
            self.bar.write(f"step {row['step']}: " + ", ".join(figures))
        if row.get("samples"):
            flag = f" (repetition loops in {row['loops']} of {len(row['samples'])}: collapsing?)" if row.get("loops") else ""
            self.bar.write(f"step {row['step']} sample{flag}: {row['samples'][0]!r}")

    def close(self) -> None:
        self.bar.close()
