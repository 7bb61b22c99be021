"""Running a planned benchmark: runs go to worker processes, `jobs` at a time, resumable.

One JSON line per finished run is appended to the output file the moment the run ends, so an
interrupted benchmark loses at most the runs in flight; started again, it skips every run whose
key is already there. Failed runs go to a `.failed.jsonl` beside it with the worker's last lines.
With `jobs` > 1 the machine's cores are shared out: each worker gets cores ÷ jobs torch threads,
because several workers each spinning every core slow one another down several-fold. A worker
that crashes or passes the run timeout is killed, its run recorded as failed, and a new worker
takes the next run.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .context import fewtune_git, machine
from .plan import ANCHORS
from .records import done_keys

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
}


def worker_env(threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


@functools.lru_cache(maxsize=4)
def probe(python: str) -> tuple[dict[str, list[str]], set[str], str | None]:
    """What the worker interpreter offers: {fewtune method: parameter names, former names included (the
    worker reads them, with a warning)}, importable anchors, error."""
    code = (
        "import dataclasses, importlib.util, json\n"
        "from fewtune.methods import METHODS\n"
        f"anchors = {dict(ANCHORS)!r}\n"
        "names = lambda c: [n for f in dataclasses.fields(c) for n in (f.name, *f.metadata.get('renamed_from', ()))]\n"
        "print(json.dumps({'methods': {n: names(c.params_class) for n, c in METHODS.items()},\n"
        "                  'anchors': [a for a, m in anchors.items() if importlib.util.find_spec(m)]}))\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=worker_env())
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {}, set(), lines[-1] if lines else f"exit {proc.returncode}"
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return found["methods"], set(found["anchors"]), None


class Worker:
    """A `python -m fewtune.bench.worker` process that runs the tasks it is sent, one at a time."""

    def __init__(self, python: str, threads: int | None, log_file: Path):
        self.log = open(log_file, "a")
        self.proc = subprocess.Popen([python, "-m", "fewtune.bench.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=worker_env(threads), text=True,
                                     cwd=log_file.parent, start_new_session=True)
        self.log_file = log_file

    def run(self, task: dict, timeout: float) -> tuple[dict | None, str]:
        """(record, "") or (None, why it failed); a worker that died or timed out is closed."""
        self.log.write(f"--- {task['key']}\n")
        self.log.flush()
        load_before = os.getloadavg()
        timer = threading.Timer(timeout, self.kill)
        timer.start()
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        finally:
            timer.cancel()
        if not line:
            code = self.proc.wait()
            self.close()
            tail = self.log_file.read_text(errors="replace").strip().splitlines()[-15:]
            why = "killed after the run timeout" if code == -signal.SIGKILL else f"worker exited ({code})"
            return None, why + "\n" + "\n".join(tail)
        reply = json.loads(line)
        if not reply["ok"]:
            return None, reply["error"].strip().splitlines()[-1] + "\n" + reply["error"]
        record = reply["record"]
        record["load_avg_1min"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
        return record, ""

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self.log.closed:
            return
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait()
        self.log.close()


class Records:
    """Where finished runs go, whichever engine ran them: one JSON line per run in `out` (with the
    machine, git state and notes), one per failure in out.failed.jsonl; `counts` tallies both."""

    def __init__(self, out: Path, counts: dict, *, notes=(), jobs: int = 1, python: str | None = None,
                 engine: str | None = None):
        self.out, self.failed_file, self.counts = out, out.with_suffix(".failed.jsonl"), counts
        self.context = {"machine": machine(), "fewtune_git": fewtune_git(), "notes": list(notes), "jobs": jobs,
                        "python_exe": python, **({"engine": engine} if engine else {})}
        out.parent.mkdir(parents=True, exist_ok=True)

    def add(self, run: dict, record: dict | None, why: str) -> dict | None:
        """Append the run's record (None: its failure, `why`); returns the record as written."""
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if record is None:
            self.counts["failed"] += 1
            with open(self.failed_file, "a") as f:
                f.write(json.dumps({"key": run["key"], "finished": stamp, "error": why}) + "\n")
            return None
        record = {**record, **self.context, "finished": stamp}
        with open(self.out, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.counts["done"] += 1
        return record


def todo_runs(runs: list[dict], out: Path) -> tuple[list[dict], dict]:
    """The runs not yet in `out` (a rerun resumes after them) and the counts to fill in."""
    done = done_keys(out)
    todo = [r for r in runs if r["key"] not in done]
    return todo, {"planned": len(runs), "skipped": len(runs) - len(todo), "done": 0, "failed": 0}


def run_all(runs: list[dict], out: Path, *, python: str | None = None, jobs: int = 1, timeout: float = 6 * 3600,
            fresh_process: bool = False, notes: list[str] = (), on_event: Callable[[str, dict, dict | None, str], None] | None = None) -> dict:
    """Do every run not already in `out`; returns counts {planned, skipped, done, failed}.

    fresh_process: a new worker for every run (slower by the import time, fully isolated) instead
    of one worker per job serving run after run.

    on_event(kind, run, record, why) is called with kind "start", "done" or "failed" (from the
    worker threads, one call at a time).
    """
    python = python or sys.executable
    out = Path(out)
    todo, counts = todo_runs(runs, out)
    if not todo:
        return counts
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    records = Records(out, counts, notes=notes, jobs=jobs, python=python)
    lock = threading.Lock()
    queue = list(enumerate(todo))
    live: set[Worker] = set()
    stopping = threading.Event()

    def serve(slot: int, tmp: str) -> None:
        worker = None
        while True:
            with lock:
                if not queue or stopping.is_set():
                    break
                n, run = queue.pop(0)
                if on_event:
                    on_event("start", run, None, "")
            if worker is None:
                worker = Worker(python, threads, Path(tmp) / f"worker{slot}-{n}.log")
                live.add(worker)
            record, why = worker.run({**run, "workdir": tmp, "threads": threads}, timeout)
            if stopping.is_set():
                break  # interrupted: the run in flight was killed, not failed
            # A run that raised leaves its worker healthy; one that died or timed out does not.
            if fresh_process or worker.proc.poll() is not None:
                worker.close()
                live.discard(worker)
                worker = None
            with lock:
                record = records.add(run, record, why)
                if on_event:
                    on_event("done" if record else "failed", run, record, why)
        if worker is not None:
            worker.close()

    with tempfile.TemporaryDirectory(prefix="fewtune-bench-") as tmp:
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            for future in [pool.submit(serve, slot, tmp) for slot in range(min(jobs, len(todo)))]:
                future.result()
        except BaseException:
            # Ctrl-C (or a bug): workers live in their own sessions, so stop them here; finished
            # runs are already on disk and the next start resumes after them.
            stopping.set()
            for worker in list(live):
                worker.kill()
            raise
        finally:
            pool.shutdown(wait=True)
    return counts
