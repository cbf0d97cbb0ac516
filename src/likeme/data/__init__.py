"""Data, before any model: exports are read (`ingest/`, one module per format), kept in one SQLite store
(`store.py`, with `scrub.py` and the table reader `tables.py`), and turned into examples for one person
(`examples.py`: chats; `text.py`: raw text; `labels.py`: labelled texts; `authors.py`: who wrote what).
Nothing here imports torch."""
