"""The `likeme` command: a thin table of commands over the library (`main.py`)."""
