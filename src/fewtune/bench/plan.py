"""What a benchmark runs: data sources, the k-shot draws, method variants, and one task per run.

Every method sees the same draws: for each data set, K and seed the training indices come from
`data.sampling.shot_indices(pool, K, seed)` (K per class) once, here, and go to every method's run as
indices; every run is scored on the same fixed test subset (`fixed_subset_indices`: a generator
seeded 0, not the run's seed, as `train` and `evaluate` use). A run's
key names everything that makes it distinct, so a finished run is recognised and skipped when a
benchmark is started again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import CAUSAL_LM, DEFAULT_ENCODER
from ..data import BUILTIN_DATASETS, check_trainable, load_builtin, load_labeled
from ..data.sampling import fixed_subset_indices, shot_indices
from ..errors import DataError, FewtuneError, SettingError

# Libraries run as themselves (not through fewtune), when the worker's interpreter has them.
ANCHORS = {"setfit-lib": "setfit"}
# The default encoder was minilm until me5-small took its place (2026-12), and a key without a
# backbone meant minilm: the committed results keep those keys. A run on any other default encoder
# names it in its key, so it never resumes from, or is read as, a MiniLM record.
KEYLESS_ENCODER = "minilm"
# Not method parameters: options of FewShotClassifier that a variant may set.
CLASSIFIER_OPTIONS = ("select", "posterior", "calibrate", "posterior_samples")
# A user's file with no --test file: this share of every class is held out as the test set.
HELD_OUT_SHARE = 0.3


@dataclass(frozen=True)
class DataSource:
    """A built-in data set (`name`) or a user's file (`path`, its columns, an optional test file)."""

    name: str
    path: str | None = None
    text_col: str = "text"
    label_col: str = "label"
    test_path: str | None = None
    encoding: str = "utf-8"
    # A built-in data set run as a user's file: its template and label words withheld (texts and labels only).
    user_file: bool = False

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and v is not False}

    @property
    def builtin_name(self) -> str:
        return self.name.removesuffix(USER_FILE_SUFFIX) if self.user_file else self.name

    @property
    def withholds_prompt(self) -> bool:
        return self.path is not None or self.user_file

    @classmethod
    def from_dict(cls, d: dict) -> DataSource:
        return cls(**d)

    def load(self):
        """(training pool, test set) as LabeledTexts; the same every time for the same source."""
        if self.path is None:
            return load_builtin(self.builtin_name)
        pool = load_labeled(self.path, text_col=self.text_col, label_col=self.label_col, encoding=self.encoding)
        check_trainable(pool)
        if self.test_path is not None:
            test = load_labeled(self.test_path, text_col=self.text_col, label_col=self.label_col, encoding=self.encoding)
            return pool, test
        test_idx = held_out_rows(pool.labels, HELD_OUT_SHARE)
        train_idx = sorted(set(range(len(pool))) - set(test_idx))
        return pool.subset(train_idx), pool.subset(test_idx)


USER_FILE_SUFFIX = "-as-file"  # a built-in run as a user's file is reported under its own name


def data_source(spec: str, *, text_col: str = "text", label_col: str = "label", test_path: str | None = None,
                encoding: str = "utf-8", user_file: bool = False) -> DataSource:
    """A --dataset entry: a built-in name, or a path to a data file (anything that exists on disk)."""
    if spec in BUILTIN_DATASETS:
        if test_path is not None:
            raise FewtuneError(f"--test applies to a data file, not to the built-in {spec!r} (it has its own test split)")
        if user_file:
            return DataSource(name=spec + USER_FILE_SUFFIX, user_file=True)
        return DataSource(name=spec)
    path = Path(spec)
    if path.exists():
        return DataSource(name=path.stem, path=str(path.resolve()), text_col=text_col, label_col=label_col,
                          test_path=str(Path(test_path).resolve()) if test_path else None, encoding=encoding)
    raise FewtuneError(f"--dataset {spec!r}: neither a built-in data set ({', '.join(sorted(BUILTIN_DATASETS))}) "
                       "nor an existing file")


def held_out_rows(labels, share: float) -> list[int]:
    """A fixed stratified test set: ceil(share × n) rows of every class with more than one row."""
    rng = np.random.default_rng(0)
    by_class: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(str(y), []).append(i)
    chosen = []
    for y in sorted(by_class):
        rows = by_class[y]
        n = int(np.ceil(share * len(rows))) if len(rows) > 1 else 0
        chosen += [int(i) for i in rng.choice(rows, size=n, replace=False)]
    return sorted(chosen)


@dataclass(frozen=True)
class Variant:
    """One row of a report: a method with some parameters (and classifier options such as select=cv)."""

    method: str
    params: dict = field(default_factory=dict, hash=False)

    @property
    def kind(self) -> str:
        return "anchor" if self.method in ANCHORS else "fewtune"


def parse_variant(text: str) -> Variant:
    """'setfit' or 'setfit:l2sp=1,learning_rate=5e-5' -> Variant; values are read as JSON when they parse."""
    method, _, rest = text.partition(":")
    method = method.strip()
    if not method:
        raise FewtuneError(f"method variant {text!r}: expected METHOD or METHOD:KEY=VALUE,KEY=VALUE")
    params = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FewtuneError(f"method variant {text!r}: {item!r} is not KEY=VALUE")
        params[key.strip()] = json_value(value.strip())
    return Variant(method, params)


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def check_variant(variant: Variant, registry: dict[str, list[str]]) -> str | None:
    """Why this variant cannot run with the worker's methods (registry: method -> parameter names), or None.
    Its classifier options are checked as every fit checks them (`fewtune.classifier_plan`), before any data
    set is loaded; not the backbone, which the worker resolves in its own interpreter, nor the parameters'
    values: a bad one fails that variant's runs, recorded in the results file, not the whole benchmark."""
    if variant.kind == "anchor":
        return None
    if variant.method not in registry:
        return f"{variant.method} is not a fewtune method (have: {', '.join(sorted(registry))})"
    unknown = sorted(set(variant.params) - set(registry[variant.method]) - set(CLASSIFIER_OPTIONS))
    if unknown:
        return f"{variant.method} has no parameter {', '.join(unknown)}"
    from ..classifier import FewShotClassifier  # why: torch; recommend.runner imports this module at its top
    from ..classifier_plan import check_settings  # why: as above

    options = {k: v for k, v in variant.params.items() if k in CLASSIFIER_OPTIONS}
    try:  # on the cpu, where the worker runs
        check_settings(FewShotClassifier(method=variant.method, device="cpu", **options), with_backbone=False)
    except SettingError as e:
        if e.choices:  # worded as a variant sets it: METHOD:select=cv
            return f"{variant.method}: {e.setting} must be {' or '.join(map(repr, e.choices))}"
        return f"{variant.method}: {e}"
    except FewtuneError as e:
        return str(e)
    return None


def run_key(dataset: str, k: int, seed: int, method: str, params: dict, max_test: int, max_tokens: int = 0) -> str:
    # The format of benchmarks/results/*.jsonl: keep it, or every committed run would be redone (so the
    # token limit keeps the name it had when those runs were keyed, max_seq_length).
    key = f"{dataset}|K={k}|seed={seed}|{method}|{json.dumps(params, sort_keys=True)}|test={max_test}"
    return key + (f"|max_seq_length={max_tokens}" if max_tokens else "")


def default_encoder(v: Variant) -> str | None:
    """The encoder a variant runs on when no backbone is given; None for a causal-LM method."""
    from ..methods import get_method  # why: torch; recommend.runner imports this module at its top

    if v.kind == "fewtune" and get_method(v.method).backbone_kinds[0] == CAUSAL_LM:
        return None  # its default is the causal LM's, which did not change
    return DEFAULT_ENCODER


def _backbone_suffix(v: Variant, backbone: str | None) -> str:
    named = backbone or default_encoder(v)
    return f"|backbone={named}" if named and (backbone or named != KEYLESS_ENCODER) else ""


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def plan_runs(sources: list[DataSource], shots: list[int], seeds: list[int], variants: list[Variant], *,
              max_test: int, max_tokens: int = 0, backbone: str | None = None) -> list[dict]:
    """One task per (data set, K, seed, variant), in that order; each names its split by indices."""
    runs = []
    suffixes = {v: _backbone_suffix(v, backbone) for v in variants}
    for source in sources:
        pool, test = source.load()
        test_idx = [int(i) for i in fixed_subset_indices(len(test), max_test)]
        for k in shots:
            for seed in seeds:
                try:
                    train_idx = [int(i) for i in shot_indices(pool, k, seed)]
                except DataError as e:
                    raise DataError(f"{source.path or source.name}: K={k}: {e}") from None
                split = {"dataset": source.name, "source": source.to_dict(), "K": k, "seed": seed,
                         "train_idx": train_idx, "test_idx": test_idx, "split_sha": digest(train_idx, test_idx),
                         "max_tokens": max_tokens, "backbone": backbone}
                for v in variants:
                    key = run_key(source.name, k, seed, v.method, v.params, max_test, max_tokens)
                    key += suffixes[v]
                    runs.append({**split, "method": v.method, "kind": v.kind, "params": dict(v.params), "key": key})
    return runs
