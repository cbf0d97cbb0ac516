"""likeme: turn your own chat history into language models that are like you.

Data flows one way: exports -> `likeme.data.ingest` -> `likeme.data.store` (SQLite) -> datasets -> run dirs.
Heavy libraries are imported inside the functions that need them so that `likeme --help` is instant.
"""
__version__ = "0.1.0"

from likeme.errors import IngestError, LikemeError, UnknownFormatError  # noqa: E402

__all__ = ["IngestError", "LikemeError", "UnknownFormatError", "__version__", "load"]


def __getattr__(name: str):
    """`likeme.load` (any run: a Voice, a Classifier or an Embedder) is imported on first use only
    (PEP 562), keeping `import likeme` light."""
    if name == "load":
        from likeme.use.load import load

        return load
    raise AttributeError(f"module 'likeme' has no attribute {name!r}")
