"""The studio's jobs: `likeme ...` commands (train, report, export) run as child processes, one at a time,
in the order they were asked for.

    jobs = Jobs(log_dir)
    job = jobs.submit(["train", "voice", "--as", "Ana", "--out", run], title="voice of Ana", run="ana-voice")
    jobs.stop(job.id)          # SIGINT, as Ctrl-C: the run stops after its step with a checkpoint

A job is `queued`, `running`, then `done`, `stopped` (exit 130: Ctrl-C's checkpoint), or `failed` with the
command's own one-line error. Each child is the CLI itself (`python -m likeme`), so a job does exactly
what the same command does in a terminal, and the studio's process never loads a model to train one.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from likeme.serve.errors import ApiError

ENDED = ("done", "stopped", "failed")


@dataclass
class Job:
    id: int
    args: list[str]
    title: str
    run: str | None = None        # the run folder (by name) the job writes, or None
    kind: str = "train"           # train, report, export
    state: str = "queued"
    message: str = ""             # the command's last line: its result, or its one-line error
    pid: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    log: str = ""

    def card(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "log"}


def last_line(path: Path) -> str:
    """The command's verdict: its last `Error: ...` or `Stopped: ...` line, else its last line."""
    try:
        lines = [x.strip() for x in path.read_text("utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith(("Error:", "Stopped:", "Interrupted", "Traceback")):
            return line if not line.startswith("Traceback") else lines[-1]
    return lines[-1] if lines else ""


class Jobs:
    """A queue of CLI commands run one at a time by a worker thread; each writes its output to a log file."""

    def __init__(self, log_dir: Path, env: dict | None = None):
        self.log_dir, self.env = Path(log_dir), env
        self.jobs: list[Job] = []
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Condition()
        self.closing = False
        self.worker = threading.Thread(target=self._work, daemon=True, name="likeme-studio-jobs")
        self.worker.start()

    def submit(self, args: list[str], *, title: str, run: str | None = None, kind: str = "train") -> Job:
        """Queue `likeme ARGS`. A run already being written by a queued or running job is a 409."""
        with self.lock:
            busy = next((j for j in self.jobs if run and j.run == run and j.state in ("queued", "running")), None)
            if busy:
                raise ApiError(409, f"{run} is already in job {busy.id} ({busy.title}, {busy.state}): wait for it "
                                    "or stop it first", code="run_busy")
            job = Job(len(self.jobs) + 1, list(args), title, run, kind)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            job.log = str(self.log_dir / f"job-{job.id}.log")
            self.jobs.append(job)
            self.lock.notify_all()
            return job

    def get(self, job_id: int) -> Job:
        with self.lock:
            if not 1 <= job_id <= len(self.jobs):
                raise ApiError(404, f"no job {job_id}", param="job")
            return self.jobs[job_id - 1]

    def running(self) -> Job | None:
        with self.lock:
            return next((j for j in self.jobs if j.state == "running"), None)

    def ahead_of(self, job: Job) -> list[Job]:
        """The jobs that run before `job` does."""
        with self.lock:
            return [j for j in self.jobs if j.id < job.id and j.state in ("queued", "running")]

    def stop(self, job_id: int) -> Job:
        """A running job gets SIGINT (as Ctrl-C: a checkpoint, then exit 130); a queued one is dropped."""
        job = self.get(job_id)
        with self.lock:
            if job.state == "queued":
                job.state, job.message, job.ended = "stopped", "taken off the queue before it started", time.time()
            elif job.state == "running" and self.proc is not None:
                self.proc.send_signal(signal.SIGINT)
            else:
                raise ApiError(409, f"job {job_id} has ended ({job.state})", param="job")
        return job

    def busy_with(self, run: str) -> Job | None:
        with self.lock:
            return next((j for j in self.jobs if j.run == run and j.state in ("queued", "running")), None)

    def last_for(self, run: str) -> Job | None:
        """The newest job that writes `run`, whatever its state."""
        with self.lock:
            return next((j for j in reversed(self.jobs) if j.run == run), None)

    def _work(self) -> None:
        while True:
            with self.lock:
                while not self.closing and not any(j.state == "queued" for j in self.jobs):
                    self.lock.wait()
                if self.closing:
                    return
                job = next(j for j in self.jobs if j.state == "queued")
                job.state, job.started = "running", time.time()
                log = open(job.log, "wb")
                try:
                    self.proc = subprocess.Popen([sys.executable, "-m", "likeme", *job.args], stdin=subprocess.DEVNULL,
                                                 stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                 start_new_session=True)  # Ctrl-C on the studio's terminal is ours to pass on
                except OSError as e:
                    job.state, job.message, job.ended = "failed", f"Error: cannot start the job ({e})", time.time()
                    log.close()
                    continue
                job.pid = self.proc.pid
            code = self.proc.wait()
            log.close()
            with self.lock:
                job.ended, self.proc = time.time(), None
                job.state = "done" if code == 0 else "stopped" if code in (130, -signal.SIGINT) else "failed"
                job.message = last_line(Path(job.log)) or ("" if code == 0 else f"exit code {code}")
                if code == -signal.SIGKILL:
                    job.message = "killed"

    def close(self, wait_s: float = 30) -> None:
        """Stop the running job as Ctrl-C would (its checkpoint written), and the worker."""
        with self.lock:
            self.closing = True
            proc = self.proc
            self.lock.notify_all()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
