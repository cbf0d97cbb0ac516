"""Training in several processes: data-parallel through accelerate, on CPUs (gloo) and GPUs (NCCL, FSDP,
DeepSpeed).

    likeme train voice --as Ana --processes 2                  # 2 CPU processes (gloo), or 2 GPUs (NCCL)
    torchrun --standalone --nproc_per_node 2 -m likeme train voice --as Ana          # the same, by hand
    likeme train voice --as Ana --processes 8 --strategy fsdp   # 8 GPUs, FSDP: the accelerate line below
    accelerate launch --config_file src/likeme/configs/accelerate/fsdp.yaml --num_processes 8 -m likeme train voice --as Ana

GPU processes start through `accelerate launch`, with the FSDP and DeepSpeed ZeRO configurations
shipped in configs/accelerate/; CPU processes are started by `relaunch` (see why there). Either way the
Trainer finds the process group in the environment (RANK, WORLD_SIZE, ...).

Every process runs the same recipe; transformers' Trainer splits each global batch between them and
averages the gradients. Every process goes on through the recipe's evaluation and save (the Trainer's
evaluation gathers from all of them, FSDP's save gathers the weights), and only the main one (rank 0)
writes the run folder, prints and plots (runs.Run, plots). Decisions a process takes alone (stop on Ctrl-C, stop at a time budget, the schedule
that budget stretches) are taken by rank 0 and sent to the rest, so that no process waits forever for
a step the others skipped.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from likeme.errors import LikemeError

STRATEGIES = ("ddp", "fsdp", "deepspeed")
CONFIGS = Path(__file__).resolve().parent / "configs" / "accelerate"


def rank() -> int:
    """This process's rank among the launched ones (0 when not launched: a plain `likeme` run)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True in the process that writes the run folder and talks to the user."""
    return rank() == 0


def launched() -> bool:
    """True inside `accelerate launch` / torchrun (they set LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def _shared(value: float):
    """`value` as a one-element tensor where the process group's backend can send it; None with one process."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return torch.tensor([float(value)], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")


def from_main(value: float) -> float:
    """rank 0's `value`, in every process (the value itself when there is one process)."""
    import torch.distributed as dist

    t = _shared(value)
    if t is None:
        return value
    dist.broadcast(t, src=0)
    return float(t.item())


def any_process(flag: bool) -> bool:
    """True in every process when `flag` is true in any of them (a Ctrl-C seen by one)."""
    import torch.distributed as dist

    t = _shared(1.0 if flag else 0.0)
    if t is None:
        return flag
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def launch_command(args: list[str], processes: int, strategy: str = "ddp", *, gpus: int) -> list[str]:
    """The `accelerate launch` line that runs `likeme ARGS` in `processes` processes on `gpus` GPUs.

    Example: launch_command(["train", "voice", "--as", "Ana"], 4, gpus=4) ->
      [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "4", "--num_machines", "1",
       "-m", "likeme", "train", "voice", "--as", "Ana"]
    """
    line = [sys.executable, "-m", "accelerate.commands.launch"]
    if strategy != "ddp":
        if strategy == "deepspeed":
            import importlib.util

            if importlib.util.find_spec("deepspeed") is None:
                raise LikemeError("--strategy deepspeed needs DeepSpeed: pip install deepspeed (it compiles its "
                                  "kernels for your CUDA), or use --strategy fsdp")
        line += ["--config_file", str(CONFIGS / f"{strategy}.yaml")]
    elif processes > 1:
        line += ["--multi_gpu"]
    return line + ["--num_processes", str(processes), "--num_machines", "1", "-m", "likeme", *args]


def without_flags(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """argv without `--name VALUE` / `--name=VALUE` for each name.

    Example: without_flags(["train", "voice", "--processes", "2", "--as", "Ana"], ("--processes",))
      -> ["train", "voice", "--as", "Ana"]
    """
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        if any(a.startswith(n + "=") for n in names):
            continue
        out.append(a)
    return out


def relaunch(argv: list[str], processes: int, strategy: str = "ddp", *, gpus: int | None = None) -> int:
    """Run `likeme ARGV` (without --processes/--strategy) in `processes` processes; returns the exit code
    (the main process's, or the first failure's).

    On GPUs through `accelerate launch`. On CPUs the processes are started here, with the environment
    torchrun would give them (RANK, WORLD_SIZE, MASTER_ADDR/PORT: gloo on 127.0.0.1) and the cores shared
    out between them: `accelerate launch --cpu` starts several CPU processes only through MPI, and
    torchrun ends its workers on Ctrl-C before they can save a checkpoint, where here every process gets
    the Ctrl-C itself, all stop after the same step and the main one saves.
    """
    import signal
    import subprocess

    if processes < 1:
        raise LikemeError(f"--processes {processes}: give 1 or more")
    if strategy not in STRATEGIES:
        raise LikemeError(f"unknown --strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    argv = without_flags(argv, ("--processes", "--strategy"))
    if strategy != "ddp" and not gpus:
        raise LikemeError(f"--strategy {strategy} shards the model over GPUs and this machine has none: "
                          "use --strategy ddp (data-parallel CPU processes)")
    if gpus and processes > gpus:
        raise LikemeError(f"--processes {processes} on {gpus} GPU(s): one process per GPU, give at most {gpus}")
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // processes))
    if gpus:
        children = [subprocess.Popen(launch_command(argv, processes, strategy, gpus=gpus),
                                     env={**os.environ, "OMP_NUM_THREADS": threads})]
    else:
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(processes),
               "LOCAL_WORLD_SIZE": str(processes), "OMP_NUM_THREADS": threads}
        children = [subprocess.Popen([sys.executable, "-m", "likeme", *argv],
                                     env={**env, "RANK": str(i), "LOCAL_RANK": str(i)}) for i in range(processes)]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the processes get the terminal's Ctrl-C themselves
    try:
        return _wait(children)
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(children) -> int:
    """Wait for all; the first to fail ends the others (they would wait for it in the next collective)."""
    import time

    while True:
        codes = [c.poll() for c in children]
        failed = [code for code in codes if code not in (None, 0)]
        if failed or all(code is not None for code in codes):
            break
        time.sleep(0.1)
    if failed:
        time.sleep(2.0)  # the main process ending on Ctrl-C (130) exits last: give it time to write its checkpoint
        for c in children:
            if c.poll() is None:
                c.terminate()
        for c in children:
            c.wait()
    main = children[0].returncode
    return main if main else next((c.returncode for c in children if c.returncode), 0)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
