"""--report-to on every training command: transformers' tracker integrations, checked before anything loads."""
import importlib.util

import pytest
from tiny import likeme_cli

from likeme.runs import Run
from likeme.training.trainer import arguments

TRAINERS = ["voice", "pretrain", "instruct", "reward", "prefer", "embedder", "distill", "classifier"]


@pytest.mark.parametrize("recipe", TRAINERS)
def test_every_training_command_has_report_to(recipe):
    p = likeme_cli("train", recipe, "--help")
    assert p.returncode == 0 and "--report-to [none|tensorboard|mlflow|trackio]" in p.stdout


def test_the_runs_config_reaches_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "unset")  # undone after the test: arguments() sets it
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR")
    (tmp_path / "r").mkdir()
    run = Run(tmp_path / "r", "voice", {"config": {"report_to": "none"}})
    assert arguments(run, seed=0, max_steps=1).report_to in ([], "none", ["none"])
    run = Run(tmp_path / "r", "voice", {"config": {"report_to": "tensorboard"}})
    args = arguments(run, seed=0, max_steps=1)
    assert args.report_to == ["tensorboard"] and args.run_name == "r"
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "r" / "tensorboard")  # kept when the run is done


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_a_tracker_that_is_not_installed_is_one_line_before_anything_loads(tmp_path):
    p = likeme_cli("train", "voice", "--as", "Ana", "--db", tmp_path / "none.db", "--report-to", "mlflow")
    assert p.returncode == 1
    assert p.stderr.strip() == "Error: --report-to mlflow needs the mlflow package: pip install 'likeme[mlflow]'"
