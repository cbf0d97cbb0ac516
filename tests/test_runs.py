"""Run folders (runs.py): creating, refusing, resuming, recording the status, and metrics.jsonl."""
import json
from dataclasses import dataclass

import pytest
import yaml

from likeme import paths, runs
from likeme.errors import LikemeError


@dataclass
class Cfg:
    lr: float = 0.1
    out: str | None = None


def test_start_a_new_run_in_the_default_place_or_out():
    run, cfg = runs.start("voice", Cfg(), default_name="ana-voice")
    assert run.path == paths.runs_dir() / "ana-voice" and not run.path.exists() and cfg == Cfg()
    run.begin(config=cfg, task="causal-lm", base="smollm2-135m", data={"store": "s.db"}, **{"as": "Ana"})
    meta = yaml.safe_load((run.path / "run.yaml").read_text())
    assert list(meta)[:5] == ["recipe", "task", "base", "status", "created"]
    assert (meta["recipe"], meta["status"], meta["as"], meta["config"], meta["data"]) == \
        ("voice", "training", "Ana", {"lr": 0.1, "out": None}, {"store": "s.db"})
    assert set(meta["versions"]) >= {"python", "torch", "transformers"}


def test_a_folder_with_anything_in_it_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    runs.start("voice", Cfg(out=str(tmp_path / "run")), default_name="x")  # empty: fine
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(LikemeError, match="already exists: pass --out for a new run, or --resume"):
        runs.start("voice", Cfg(out=str(tmp_path / "run")), default_name="x")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_resume_takes_the_saved_config_and_checks_the_run(tmp_path):
    out = str(tmp_path / "run")
    run, cfg = runs.start("classifier", Cfg(lr=0.5, out=out), default_name="x")
    run.begin(config=cfg, task="classification", base=None, data={"file": "a.csv", "sha256": "1"})
    resumed, cfg = runs.start("classifier", Cfg(lr=9.0, out=out), default_name="x", resume=True)
    assert cfg == Cfg(lr=0.5, out=out) and resumed.resumed  # the flags of a resume are not read again
    with pytest.raises(LikemeError, match=r"the data changed since this run started \(sha256: 1 -> 2\)"):
        resumed.begin(config=cfg, task="classification", base=None, data={"file": "a.csv", "sha256": "2"})
    with pytest.raises(LikemeError, match="is a 'classifier' run, not a voice run"):
        runs.start("voice", Cfg(out=out), default_name="x", resume=True)
    with pytest.raises(LikemeError, match="no run to resume"):
        runs.start("voice", Cfg(out=str(tmp_path / "none")), default_name="x", resume=True)
    resumed.begin(config=cfg, task="classification", base=None, data={"file": "a.csv", "sha256": "1"})
    resumed.finish({"accuracy": 1.0})
    with pytest.raises(LikemeError, match="has finished already"):
        runs.start("classifier", Cfg(out=out), default_name="x", resume=True)


def test_recording_marks_failed_and_interrupted(tmp_path):
    run, cfg = runs.start("voice", Cfg(out=str(tmp_path / "run")), default_name="x")
    run.begin(config=cfg, task="causal-lm", base="b", data={})
    with pytest.raises(ValueError):
        with run.recording():
            raise ValueError("boom\nmore")
    assert runs.read_meta(run.path)["status"] == "failed" and runs.read_meta(run.path)["error"] == "boom"
    with pytest.raises(KeyboardInterrupt):
        with run.recording():
            raise KeyboardInterrupt
    assert runs.read_meta(run.path)["status"] == "interrupted"
    run.finish({"ppl": 3.0})
    assert runs.read_meta(run.path)["status"] == "done" and "error" not in runs.read_meta(run.path)
    figures = json.loads((run.path / "metrics.json").read_text())
    assert figures["ppl"] == 3.0 and figures["peak_memory_bytes"] > 10 * 2 ** 20  # this process holds torch and more


def test_metrics_log_truncates_after_a_checkpoint(tmp_path):
    log = runs.MetricsLog(tmp_path / "metrics.jsonl")
    for step in (1, 2, 2, 3, 4):
        log.append({"step": step, "loss": 1.0 / step})
    with open(log.path, "a") as f:
        f.write('{"step": 5, "lo')  # a line cut short by a kill -9
    assert [r["step"] for r in log.rows()] == [1, 2, 2, 3, 4]
    log.truncate_after(2)
    assert [r["step"] for r in log.rows()] == [1, 2, 2] and log.path.read_text().endswith("}\n")


def test_latest_checkpoint_is_a_whole_one(tmp_path):
    run = runs.Run(tmp_path, "voice")
    assert run.latest_checkpoint() is None
    for step, whole in ((10, True), (20, True), (30, False)):  # checkpoint-30: killed while being written
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if whole:
            (folder / "trainer_state.json").write_text("{}")
    assert run.latest_checkpoint() == tmp_path / "checkpoints" / "checkpoint-20"


def test_base_of_is_relative_to_the_run(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "run").mkdir()
    runs.write_meta(tmp_path / "run", {"base": "../base"})
    assert runs.base_of(tmp_path / "run") == str(tmp_path / "run" / "../base")
    runs.write_meta(tmp_path / "run", {"base": "smollm2-135m"})
    assert runs.base_of(tmp_path / "run") == "smollm2-135m"
    runs.write_meta(tmp_path / "run", {"recipe": "pretrain"})
    assert runs.base_of(tmp_path / "run") is None
