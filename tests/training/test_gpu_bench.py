"""bench/gpu.py, the GPU bench, in its CPU dry run: every part's row comes out and it exits 0."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name, flops", [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A10G", 125e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
    ("NVIDIA GeForce RTX 4090", 165e12), ("Tesla T4", None)])
def test_peak_flops_by_gpu_name_longest_name_first(name, flops):
    assert bench_module().peak_flops(name) == flops


def test_dry_run_prints_a_row_for_every_part_and_exits_0(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], capture_output=True, text=True,
                          timeout=240, env={**os.environ, "LIKEME_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout[done.stdout.index("| part |"):]
    rows = json.loads(out.read_text())["rows"]
    by_part = {}
    for r in rows:
        by_part.setdefault(r["part"], []).append(r)
        assert f"| {r['part']} | {r['setting']} |" in table
    assert set(by_part) == {"train", "stock", "4bit", "fsdp", "generate"}
    for part in ("train", "stock"):  # both training loops ran on the CPU and were timed
        (r,) = by_part[part]
        assert r["tokens_s"] > 0 and r["peak"] > 0 and r["mfu"] == "n/a", r
    assert by_part["4bit"][0]["note"] == by_part["fsdp"][0]["note"] == "skipped: no CUDA"
    generated = {r["setting"]: r for r in by_part["generate"]}
    assert list(generated) == [f"likeme generate {p}" for p in ("fp32", "bf16", "fp16", "int8")]
    assert all(r.get("tokens_s", 0) > 0 for r in generated.values()), generated
