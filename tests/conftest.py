from pathlib import Path

import pytest

# Real public exports from other projects' test suites live beside the project, never inside it.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

needs_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No test touches the user's ~/.likeme."""
    monkeypatch.setenv("LIKEME_HOME", str(tmp_path / "likeme-home"))
    monkeypatch.delenv("LIKEME_DB", raising=False)
