"""How long `likeme --help` takes to answer: the CLI must start at once, whatever it can do; and how long
`likeme studio` takes from its command to its first answer (and that it loaded no torch to get there).

    .venv/bin/python bench/startup.py            # best of 10 runs of each command, best of 5 studio starts

Targets: well under a second (`likeme --help` and `likeme train voice --help`); the studio under 2 s.
"""
from __future__ import annotations

import os
import platform
import socket
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


def studio_start(n: int = 5) -> tuple[float, bool]:
    """(best seconds from `likeme studio` to its first /health answer, whether torch was loaded then)."""
    import tempfile
    import urllib.request

    times, torch = [], False
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with tempfile.TemporaryDirectory() as home:
            t = time.perf_counter()
            p = subprocess.Popen([LIKEME, "studio", "--port", str(port)], env={**os.environ, "LIKEME_HOME": home},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                while True:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                        break
                    except OSError:
                        time.sleep(0.01)
                times.append(time.perf_counter() - t)
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()  # a page view
                torch = torch or "libtorch" in open(f"/proc/{p.pid}/maps").read()
            finally:
                p.terminate()
                p.wait()
    return min(times), torch


if __name__ == "__main__":
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for args in (["--help"], ["train", "voice", "--help"], ["classify", "--help"]):
        print(f"likeme {' '.join(args):<22} {best_of([LIKEME, *args]):.3f} s (best of 10)")
    seconds, torch = studio_start()
    print(f"likeme studio (to /health) {seconds:.3f} s (best of 5); torch loaded: {torch}")
