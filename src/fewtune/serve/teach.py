"""Training from the page: a few labeled examples in, a new model served by name once it is trained.

On two cores with the default backbone (me5-small), 16 examples took 28-32 s with setfit, the default
method (it also trains 4 fold bodies to choose its head's strength), and 1.5-2.7 s with linear-probe
(benchmarks/teach_time.py, two runs on 2026-12-07).

One training at a time runs in a background thread; the page polls its job for progress, which
comes from the same Progress tasks the command line shows as bars (fewtune.progress.observe_progress).
Which backbone, which methods and their parameters are the operator's choice (TeachConfig); a
request only picks one of the allowed methods, so it cannot ask for an hour of training.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import experiment
from ..backbones.catalog import DEFAULT_ENCODER
from ..data import as_labeled, check_trainable
from ..errors import FewtuneError
from ..progress import observe_progress

# Texts are cut to 128 tokens: a page user pastes sentences, and a longer cut only adds time.
DEFAULT_METHODS = {"setfit": {"max_tokens": 128}, "linear-probe": {"max_tokens": 128}}
MAX_JOBS = 32  # finished jobs remembered for polling


@dataclass
class TeachConfig:
    backbone: str = DEFAULT_ENCODER
    methods: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_METHODS))
    max_examples: int = 256
    keep: int = 4  # taught models kept in memory; the oldest goes when a fifth arrives
    seed: int = 0


@dataclass
class Job:
    id: str
    method: str
    n_examples: int
    status: str = "queued"  # queued, running, done, failed
    stage: str = "loading the backbone"
    done: float = 0
    total: float | None = None
    model: str | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float | None = None

    def view(self) -> dict[str, Any]:
        fraction = 1.0 if self.status == "done" else (min(1.0, self.done / self.total) if self.total else 0.0)
        return {"job": self.id, "status": self.status, "method": self.method, "n_examples": self.n_examples,
                "stage": self.stage, "done": self.done, "total": self.total, "fraction": round(fraction, 4),
                "model": self.model, "error": self.error, "seconds": self.seconds}


class Busy(FewtuneError):
    """A training is already running."""


class Teacher:
    """Starts trainings and keeps their jobs; `on_trained(name, classifier)` registers each result."""

    def __init__(self, config: TeachConfig, on_trained: Callable[[str, Any], None],
                 on_evicted: Callable[[str], None]):
        self.config = config
        self.on_trained = on_trained
        self.on_evicted = on_evicted
        self.jobs: dict[str, Job] = {}
        self.taught: list[str] = []
        self._lock = threading.Lock()
        self._running: Job | None = None
        self._count = 0

    @property
    def busy(self) -> bool:
        return self._running is not None

    def start(self, texts: list[str], labels: list[str], method: str | None) -> Job:
        method = method or next(iter(self.config.methods))
        if method not in self.config.methods:
            raise FewtuneError(f"method {method!r} is not offered here; choose one of {', '.join(self.config.methods)}")
        if len(texts) > self.config.max_examples:
            raise FewtuneError(f"{len(texts)} examples; this server trains on at most {self.config.max_examples}")
        data = as_labeled(texts, labels, source="examples")
        check_trainable(data)  # fails now, with the reason, instead of in the background
        with self._lock:
            if self._running is not None:
                raise Busy(f"a model is already training (job {self._running.id}); wait for it to finish")
            job = Job(id=uuid.uuid4().hex[:12], method=method, n_examples=len(texts))
            for old in list(self.jobs)[:-MAX_JOBS]:  # finished jobs only: the running one is the newest
                del self.jobs[old]
            self.jobs[job.id] = job
            self._running = job
            self._count += 1
            name = f"taught-{self._count}"
        threading.Thread(target=self._train, args=(job, name, data), daemon=True,
                         name=f"fewtune-teach-{job.id}").start()
        return job

    def _train(self, job: Job, name: str, data) -> None:
        def observe(event: str, task: int, value, total) -> None:
            if event == "add":
                job.stage, job.done, job.total = str(value), 0, total
            else:
                job.done += value

        job.status = "running"
        try:
            spec = experiment.RunSpec(backbone=self.config.backbone, method=job.method,
                                      params=self.config.methods[job.method], seed=self.config.seed, quiet=True)
            prepared = experiment.Prepared(data, source=f"{len(data)} examples labeled on the page")
            with observe_progress(observe):
                clf = experiment.run(spec, prepared).model
            self.on_trained(name, clf)
            with self._lock:
                self.taught.append(name)
                while len(self.taught) > self.config.keep:
                    self.on_evicted(self.taught.pop(0))
            job.model, job.stage, job.status = name, "done", "done"
        except FewtuneError as e:
            job.status, job.error = "failed", str(e)
        except Exception as e:  # a bug: the page shows it, the server log keeps the traceback
            traceback.print_exc()
            job.status, job.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            job.seconds = round(time.time() - job.started, 2)
            with self._lock:
                self._running = None
