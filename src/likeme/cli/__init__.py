"""The `likeme` command: a thin table of commands over the library. main.py gathers them from one module
per topic (data, talk and repl, score, check, ship, train), which share their flags through options.py."""
