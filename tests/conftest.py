import shutil
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


@pytest.fixture(scope="session")
def smollm2_home(tmp_path_factory) -> Path:
    """One LIKEME_HOME for every SmolLM2 test in the session, so the 30 s conversion runs once."""
    return tmp_path_factory.mktemp("smollm2-home")


# Tiny models: each built once per test session, copied into each test that asks for it (a test may
# train from it, write beside it or damage it without touching the next test's copy).
@pytest.fixture(scope="session")
def _tiny_models(tmp_path_factory):
    from tiny import save_tiny_bert, save_tiny_causal_lm, save_tiny_sentence_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {"lm": lambda: save_tiny_causal_lm(root / "lm"), "bert": lambda: save_tiny_bert(root / "bert"),
            "st": lambda: save_tiny_sentence_model(root / "st")}, {}


def _copy(_tiny_models, kind: str, tmp_path: Path) -> Path:
    makers, built = _tiny_models
    if kind not in built:
        built[kind] = makers[kind]()
    return Path(shutil.copytree(built[kind], tmp_path / f"tiny-{kind}"))


@pytest.fixture
def tiny_lm(_tiny_models, tmp_path) -> Path:
    """The 2-layer Llama and its ChatML tokenizer (tiny.save_tiny_causal_lm), as a model folder."""
    return _copy(_tiny_models, "lm", tmp_path)


@pytest.fixture
def tiny_bert(_tiny_models, tmp_path) -> Path:
    """A 2-layer BERT with a WordPiece vocabulary of the classifier rows (tiny.save_tiny_bert)."""
    return _copy(_tiny_models, "bert", tmp_path)


@pytest.fixture
def tiny_st(_tiny_models, tmp_path) -> Path:
    """A 2-layer BERT with mean pooling as a sentence-transformers folder (tiny.save_tiny_sentence_model)."""
    return _copy(_tiny_models, "st", tmp_path)


@pytest.fixture(scope="session")
def tiny_voice_run(_tiny_models, tmp_path_factory) -> Path:
    """A LoRA voice run of Ana (2 steps on the three-person store from the tiny causal LM), trained once per
    session: for tests that read a run (export, backends, precision) and write only inside RUN/export."""
    from tiny import three_person_store

    from likeme.recipes.voice import VoiceConfig, train_voice

    tmp = tmp_path_factory.mktemp("voice-run")
    three_person_store(tmp / "s.db").close()
    return train_voice(VoiceConfig(name="Ana", db=str(tmp / "s.db"), base=str(_copy(_tiny_models, "lm", tmp)),
                                   learn_from="me", max_steps=2, batch_size=4, grad_accum=1, eval_every=2, out=str(tmp / "ana")), progress=False)
