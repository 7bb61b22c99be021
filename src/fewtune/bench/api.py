"""The work behind `fewtune bench`: check the request, plan the runs, run them with a progress bar."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from ..errors import FewtuneError
from .plan import ANCHORS, Variant, check_variant, data_source, json_value, parse_variant, plan_runs
from .ray_runner import run_all_ray
from .records import done_keys
from .runner import probe, run_all


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def split_methods(text: str) -> list[str]:
    """'a,b:x=1,y=2,c' -> ['a', 'b:x=1,y=2', 'c']: a KEY=VALUE item belongs to the method before it."""
    items: list[str] = []
    for part in split_list(text):
        if "=" in part and ":" not in part and items and ":" in items[-1]:
            items[-1] += "," + part
        else:
            items.append(part)
    return items


def int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(t) for t in split_list(text)]
    except ValueError:
        raise FewtuneError(f"--{what} must be whole numbers separated by commas, got {text!r}") from None
    if not values or min(values) < (0 if what == "seeds" else 1):
        raise FewtuneError(f"--{what} {text!r}: give at least one value, each {'≥ 0' if what == 'seeds' else '≥ 1'}")
    return values


def seed_list(text: str) -> list[int]:
    """'5' means seeds 0-4 (the issue's `--seeds 5`); '0,3,7' means exactly those."""
    if "," not in text and "-" not in text:
        count = int_list(text, "seeds")[0]
        if count < 1:
            raise FewtuneError(f"--seeds {text}: a single number is how many seeds (0 to N-1); give at least 1")
        return list(range(count))
    if "-" in text and "," not in text:
        low, _, high = text.partition("-")
        return list(range(int_list(low, "seeds")[0], int_list(high, "seeds")[0] + 1))
    return int_list(text, "seeds")


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """--param METHOD.KEY=VALUE items -> {method: {key: value}}; values are read as JSON when they parse."""
    overrides: dict[str, dict] = {}
    for item in items:
        name, sep, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not sep or not dot or not key:
            raise FewtuneError(f"--param {item!r}: expected METHOD.KEY=VALUE, e.g. setfit.l2sp=1")
        overrides.setdefault(method, {})[key] = json_value(value)
    return overrides


def resolve_variants(methods: str, baselines: str, extra: list[str], params: list[str],
                     registry: dict[str, list[str]], anchors: set[str], probe_error: str | None) -> tuple[list[Variant], list[str]]:
    """The variants to run and notes on what was skipped (a baseline whose library is missing)."""
    overrides = parse_overrides(params)
    if probe_error:
        raise FewtuneError(f"the worker interpreter cannot import fewtune's methods: {probe_error}")
    notes: list[str] = []
    variants: list[Variant] = []
    asked = [(m, True) for m in split_methods(methods)] + [(m, False) for m in split_methods(baselines)]
    asked += [(v, True) for v in extra]
    for text, required in asked:
        v = parse_variant(text)
        v = Variant(v.method, {**overrides.get(v.method, {}), **v.params})
        if v.kind == "anchor" and v.method not in anchors:
            message = f"{v.method} skipped: the worker's Python has no {ANCHORS[v.method]} package"
            if required:
                raise FewtuneError(message + " (install it, or pass --python with an interpreter that has it)")
            notes.append(message)
            continue
        problem = check_variant(v, registry)
        if problem:
            raise FewtuneError(problem)
        if all((v.method, v.params) != (u.method, u.params) for u in variants):
            variants.append(v)
    if not variants:
        raise FewtuneError("no methods to run")
    return variants, notes


def bench(*, datasets: str, methods: str, baselines: str, variants: list[str], params: list[str], shots: str,
          seeds: str, max_test: int, max_tokens: int, backbone: str | None, out: Path, jobs: int, python: str | None,
          timeout: float, text_col: str, label_col: str, test: str | None, encoding: str, dry_run: bool,
          on_event: Callable | None = None, on_plan: Callable | None = None, as_user_file: bool = False,
          ray: str | None = None) -> dict:
    """ray: None for the local process pool; "local" for a Ray started here, or a Ray cluster's address."""
    if jobs < 1:
        raise FewtuneError(f"--jobs must be at least 1, got {jobs}")
    if ray is not None and python is not None:
        raise FewtuneError("--python applies to the local runner; Ray's workers run the cluster's own Python")
    if ray is not None:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise FewtuneError("--ray needs the ray package: pip install 'fewtune[ray]'")
    # A relative interpreter path would be read from the workers' own folder: anchor it here (abspath,
    # not resolve: a venv's python is a symlink whose target has no venv).
    python = os.path.abspath(python) if python and os.sep in python else (python or sys.executable)
    if shutil.which(python) is None:
        raise FewtuneError(f"--python {python}: no such interpreter (give the path of a python executable)")
    sources = [data_source(d, text_col=text_col, label_col=label_col, test_path=test, encoding=encoding,
                           user_file=as_user_file) for d in split_list(datasets)]
    if not sources:
        raise FewtuneError("--dataset: give at least one built-in name or data file")
    shot_list, seed_values = int_list(shots, "shots"), seed_list(seeds)
    registry, anchors, probe_error = probe(python)
    chosen, notes = resolve_variants(methods, baselines, variants, params, registry, anchors, probe_error)
    runs = plan_runs(sources, shot_list, seed_values, chosen, max_test=max_test,
                     max_tokens=max_tokens, backbone=backbone)
    if on_plan:
        on_plan(runs, notes)
    if dry_run:
        done = done_keys(out) if out.exists() else set()
        return {"planned": len(runs), "skipped": sum(r["key"] in done for r in runs), "done": 0, "failed": 0,
                "todo": [r["key"] for r in runs if r["key"] not in done], "notes": notes}
    if ray is not None:
        counts = run_all_ray(runs, out, address=ray, cpus_per_run=max(1, (os.cpu_count() or 1) // jobs),
                             timeout=timeout, notes=notes, on_event=on_event)
    else:
        counts = run_all(runs, out, python=python, jobs=jobs, timeout=timeout, notes=notes, on_event=on_event)
    return {**counts, "out": str(out), "notes": notes}
