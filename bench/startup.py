"""How long `likeme --help` takes to answer: the CLI must start at once, whatever it can do.

    .venv/bin/python bench/startup.py            # best of 10 runs of each command

Target: well under a second (`likeme --help` and `likeme train voice --help`).
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

LIKEME = str(Path(sys.executable).parent / "likeme")


def best_of(cmd: list[str], n: int = 10) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return min(times)


if __name__ == "__main__":
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for args in (["--help"], ["train", "voice", "--help"], ["classify", "--help"]):
        print(f"likeme {' '.join(args):<22} {best_of([LIKEME, *args]):.3f} s (best of 10)")
