"""`fewtune bench --ray [ADDRESS]`: every run a Ray task, on this machine or a Ray cluster.

The plan, the records, resume and the failure log are the local runner's (runner.Records,
runner.todo_runs); only who runs a task changes. Each task runs `worker.run_one` in a Ray worker
process, which imports fewtune there: on a cluster every node needs the same fewtune, backbones and
data packages installed (the same image or environment), and nothing is shipped with the task but
its JSON. Ray is an optional extra (`pip install fewtune[ray]`).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Callable

from ..errors import FewtuneError
from .runner import OFFLINE_ENV, Records, todo_runs
from .worker import run_one


def _run_task(task: dict) -> dict:
    """In a Ray worker: one run, or its error as text (a failed run is a record of its own, not a crash)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="fewtune-bench-") as workdir:
            return {"ok": True, "record": run_one({**task, "workdir": workdir})}
    except Exception:
        return {"ok": False, "error": traceback.format_exc()}


def run_all_ray(runs: list[dict], out: Path, *, address: str | None = None, cpus_per_run: int = 1,
                num_cpus: int | None = None, timeout: float | None = None, notes: list[str] = (),
                on_event: Callable[[str, dict, dict | None, str], None] | None = None) -> dict:
    """Do every run not already in `out` as Ray tasks; returns counts {planned, skipped, done, failed}.
    address: a running cluster ("auto", "ray://host:10001"); None or "local" starts a local Ray with num_cpus.
    timeout: seconds before a run is cancelled and recorded as failed, as the local runner does. Only as
    many tasks as the cluster's CPUs can run are in flight, so a task's clock starts when it can start."""
    try:
        import ray
    except ImportError:
        raise FewtuneError("--ray needs the ray package: pip install 'fewtune[ray]'") from None
    address = None if address in (None, "local") else address
    out = Path(out)
    todo, counts = todo_runs(runs, out)
    if not todo:
        return counts
    records = Records(out, counts, notes=notes, engine="ray" + (f" {address}" if address else " (local)"))
    env = {**OFFLINE_ENV, "OMP_NUM_THREADS": str(cpus_per_run), "MKL_NUM_THREADS": str(cpus_per_run)}
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": env})
    try:
        remote = ray.remote(num_cpus=cpus_per_run, max_retries=0)(_run_task)
        room = max(1, int(ray.available_resources().get("CPU", cpus_per_run)) // cpus_per_run)
        queue, pending = list(todo), {}  # pending: task -> (run, when it was sent)

        def finish(run: dict, reply: dict) -> None:
            record = records.add(run, reply.get("record") if reply["ok"] else None, reply.get("error", ""))
            if on_event:
                on_event("done" if record else "failed", run, record, reply.get("error", ""))

        while queue or pending:
            while queue and len(pending) < room:
                run = queue.pop(0)
                if on_event:
                    on_event("start", run, None, "")
                pending[remote.remote({**run, "threads": cpus_per_run})] = (run, time.monotonic())
            wait = None if timeout is None else max(0.05, min(t for _, t in pending.values()) + timeout
                                                     - time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait)
            if not ready:  # the oldest run is past the timeout
                now = time.monotonic()
                for task, (run, sent) in list(pending.items()):
                    if now - sent >= timeout:
                        ray.cancel(task, force=True)
                        del pending[task]
                        finish(run, {"ok": False, "error": f"killed after the run timeout ({timeout:g} s)"})
                continue
            run, _ = pending.pop(ready[0])
            try:
                reply = ray.get(ready[0])
            except Exception as e:  # the worker process died (out of memory, a killed node)
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            finish(run, reply)
    finally:
        if started_here:
            ray.shutdown()
    return counts
