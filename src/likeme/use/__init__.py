"""A finished run at work: load it (`load.py`), let a voice write (`generate.py` on `decoding.py`, or the
llama.cpp backend), classify, embed, score with a reward model or judge, recall, search, export.
Nothing here imports `likeme.training`, `likeme.recipes` or `likeme.check`."""
