"""How `likeme serve` holds up: 1, 8 and 32 concurrent clients on the CPU, then 100 requests at once
against a limit of 4. Everything talks to 127.0.0.1; every loop is bounded.

    .venv/bin/python bench/serve.py --run runs/robin-voice          # any voice run (LoRA on smollm2-135m)
    .venv/bin/python bench/serve.py --run RUN --clients 1 8 32 --requests 16 --max-tokens 32

Each client streams chat completions one after another (a different seed each; per load 16 requests,
or 2 per client when there are more clients); per load: requests/s,
p50/p95 time to first token and to the whole reply, errors, and the server's peak resident memory
(VmHWM). The overload step starts a second server with `--max-concurrent 4 --max-queue 0` and sends 100
requests at the same moment: how many were answered, how many refused (429) and how fast, whether
anything else happened, whether the server still answers afterwards, and its memory before and after.
First, the time a 429 takes when the server is full and not swamped (`--refusal-only`).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

try:
    import httpx2 as httpx  # what the openai client is built on
except ImportError:
    import httpx

LIKEME = str(Path(sys.executable).parent / "likeme")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int) -> dict:
    """Resident memory now and at its peak (VmRSS, VmHWM) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: round(int(fields[f].split()[0]) / 1024, 1) for k, f in (("rss", "VmRSS"), ("peak", "VmHWM"))}


class Server:
    def __init__(self, run: str, *flags):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([LIKEME, "serve", run, "--port", str(self.port), *map(str, flags)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.5)
        self.model = httpx.get(self.url + "/v1/models").json()["data"][0]["id"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def one_chat(url: str, model: str, seed: int, max_tokens: int) -> dict:
    """One streamed chat completion: status, time to first token, total time."""
    body = {"model": model, "stream": True, "seed": seed, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "what are you doing this weekend?"}]}
    t0 = time.perf_counter()
    first = None
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
            if r.status_code != 200:
                r.read()
                return {"status": r.status_code, "total": time.perf_counter() - t0}
            for line in r.iter_lines():
                if line.startswith("data: {") and first is None and '"content": "' in line and '"content": ""' not in line:
                    first = time.perf_counter() - t0
    except httpx.HTTPError as e:
        return {"status": type(e).__name__, "total": time.perf_counter() - t0}
    total = time.perf_counter() - t0
    return {"status": 200, "ttft": first if first is not None else total, "total": total}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else float("nan")


def load(server: Server, clients: int, requests: int, max_tokens: int) -> dict:
    """`clients` threads, each sending its share of `requests` streamed chats one after another."""
    results: list[dict] = []
    lock = threading.Lock()

    def client(c: int):
        for i in range(c, requests, clients):
            r = one_chat(server.url, server.model, seed=c * 1000 + i, max_tokens=max_tokens)
            with lock:
                results.append(r)

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t
    ok = [r for r in results if r["status"] == 200]
    return {"clients": clients, "requests": len(results), "ok": len(ok), "errors": len(results) - len(ok),
            "requests_per_s": round(len(ok) / wall, 3), "ttft_p50": pct([r["ttft"] for r in ok], 0.5),
            "ttft_p95": pct([r["ttft"] for r in ok], 0.95), "total_p50": pct([r["total"] for r in ok], 0.5),
            "total_p95": pct([r["total"] for r in ok], 0.95), "wall_s": round(wall, 1),
            "server_mib": memory_mib(server.proc.pid)}


def overload(run: str, n: int, max_tokens: int) -> dict:
    server = Server(run, "--max-concurrent", 4, "--max-queue", 0)
    try:
        before = memory_mib(server.proc.pid)
        one_chat(server.url, server.model, 0, max_tokens)  # warm
        warm = memory_mib(server.proc.pid)
        barrier = threading.Barrier(n)

        def fire(i):
            barrier.wait()
            return one_chat(server.url, server.model, i, max_tokens)

        t = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(fire, range(n)))
        wall = time.perf_counter() - t
        codes: dict = {}
        for r in results:
            codes[str(r["status"])] = codes.get(str(r["status"]), 0) + 1
        refused = [r["total"] for r in results if r["status"] == 429]
        health = httpx.get(server.url + "/health").json()
        after = one_chat(server.url, server.model, 12345, max_tokens)
        return {"requests": n, "limit": "--max-concurrent 4 --max-queue 0", "statuses": codes,
                "refusal_p50_s": pct(refused, 0.5), "refusal_max_s": round(max(refused), 3) if refused else None,
                "wall_s": round(wall, 1), "health_after": health, "answers_after": after["status"] == 200,
                "memory_mib": {"started": before, "warm": warm, "after": memory_mib(server.proc.pid)}}
    finally:
        server.stop()


def refusal(run: str, n: int = 20) -> dict:
    """How long a 429 takes from a full server: --max-concurrent 1 --max-queue 0, one long generation
    running, then `n` requests one after another (one connection each)."""
    server = Server(run, "--max-concurrent", 1, "--max-queue", 0)
    try:
        body = {"model": server.model, "prompt": "Once upon a time", "max_tokens": 400, "temperature": 1.0}
        busy = threading.Thread(target=lambda: httpx.post(server.url + "/v1/completions", json=body, timeout=600))
        busy.start()
        while httpx.get(server.url + "/health").json()["generating"] == 0:
            time.sleep(0.05)
        times, codes = [], []
        for _ in range(n):
            t = time.perf_counter()
            codes.append(httpx.post(server.url + "/v1/chat/completions", json={
                "model": server.model, "messages": [{"role": "user", "content": "hi"}]}).status_code)
            times.append(time.perf_counter() - t)
        busy.join()
        return {"requests": n, "refused": codes.count(429), "p50_s": pct(times, 0.5), "max_s": round(max(times), 4)}
    finally:
        server.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, help="A voice run to serve.")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=16, help="Requests per load (at least 2 per client).")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--overload", type=int, default=100, help="Requests sent at once against a limit of 4 (0: skip).")
    ap.add_argument("--out", type=Path, default=Path("/tmp/serve-bench.json"))
    ap.add_argument("--refusal-only", action="store_true", help="Only time a 429 from a full server.")
    args = ap.parse_args(argv)
    out: dict = {"run": args.run, "max_tokens": args.max_tokens, "cpus": os.cpu_count(), "loads": []}
    out["refusal"] = refusal(args.run)
    print(json.dumps(out["refusal"]), file=sys.stderr)
    if args.refusal_only:
        return 0
    server = Server(args.run)  # the defaults: --max-concurrent 1 --max-queue 32
    try:
        one_chat(server.url, server.model, 0, args.max_tokens)  # warm
        for c in args.clients:
            row = load(server, c, max(args.requests, 2 * c), args.max_tokens)
            print(json.dumps(row), file=sys.stderr)
            out["loads"].append(row)
    finally:
        server.stop()
    if args.overload:
        out["overload"] = overload(args.run, args.overload, args.max_tokens)
        print(json.dumps(out["overload"]), file=sys.stderr)
    args.out.write_text(json.dumps(out, indent=2))
    print("| clients | requests | ok | errors | req/s | TTFT p50 / p95 (s) | total p50 / p95 (s) | server peak MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in out["loads"]:
        print(f"| {r['clients']} | {r['requests']} | {r['ok']} | {r['errors']} | {r['requests_per_s']} | "
              f"{r['ttft_p50']} / {r['ttft_p95']} | {r['total_p50']} / {r['total_p95']} | {r['server_mib']['peak']} |")
    if args.overload:
        print(json.dumps(out["overload"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
