"""The data of a run: read the file or built-in set, draw K shots per class, hold out a fixed subset.

The one place a `RunSpec` becomes examples: `fewtune train` (both tasks) and `fewtune check-data` read
their data here, so check-data audits exactly the rows train would train on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .. import data
from ..data import check_overlap, check_trainable, draw, fixed_subset
from ..data.ingest import check_known_labels
from ..errors import DataError, warnings_after_checks
from .spec import RunSpec

DEFAULT_MAX_TEST = 1000  # held-out texts scored after a classification run
DEFAULT_GENERATION_SHOTS = 64  # built-in pools hold thousands of examples; few-shot means a few dozen
DEFAULT_GENERATION_MAX_TEST = 100  # perplexity on 100 held-out examples: ~1 min for SmolLM2 on 2 cores


@dataclass
class Prepared:
    """The examples to train on, the held-out ones (None: no evaluation) and what those are, in words."""

    train: Any
    heldout: Any = None
    what: Optional[str] = None
    shots: Optional[int] = None  # as drawn (a generation run on a built-in set draws a default number)
    source: Optional[str] = None  # where examples brought by the caller came from, in words
    pool: Any = None  # every row the shots were drawn from: what `train --check-data` audits, as check-data does

    def description(self, spec: RunSpec) -> str:
        """The data, for the model card: where it came from and how it was drawn."""
        source = self.source or f"{spec.dataset or spec.data}"
        if not self.shots:
            return source
        return source + (f", {self.shots} per class, seed {spec.seed}" if spec.task == "classify"
                         else f", {self.shots} drawn with seed {spec.seed}")


def prepare(spec: RunSpec, *, heldout: bool = True, note: Callable[[str], None] = lambda message: None) -> Prepared:
    """The training examples (the K-shot draw with shots) and, unless heldout=False, the held-out ones.
    heldout=False is check-data's view: the rows are audited, so duplicates are not warned about on
    reading, and one class alone is a finding rather than an error unless shots are drawn. Warnings about
    the rows (duplicates, conflicts) come once every check has passed: a file refused for a conflict gets
    the error alone, not the conflict's warning first."""
    with warnings_after_checks():
        return _prepare(spec, heldout, note)


def _prepare(spec: RunSpec, heldout: bool, note: Callable[[str], None]) -> Prepared:
    classify = spec.task == "classify"
    pool, test_split, what = _pool(spec, quiet_reading=not heldout)
    shots = spec.shots
    if shots is None and spec.dataset is not None and not classify:
        shots = DEFAULT_GENERATION_SHOTS
        note(f"training on {shots} examples of {spec.dataset} drawn with seed {spec.seed} (set --shots to change)")
    if classify and not spec.multi_label and (heldout or shots is not None):
        # check-data lists conflicts itself, row by row; a training run (with --check-data too) stops on them here.
        check_trainable(pool, shots=shots, conflicts=heldout)
    if not classify and shots is not None and shots > len(pool):
        raise DataError(f"--shots {shots} asks for more examples than {spec.dataset or spec.data} has ({len(pool)})")
    train, rest = (pool, []) if shots is None else draw(pool, shots, spec.seed)
    if not heldout:
        return Prepared(train, shots=shots, pool=pool)
    held = test_split
    if held is None and shots is not None and len(rest):
        held, what = rest, f"the {len(rest)} rows of {spec.data} not drawn for training"
    if spec.test is not None:
        held, what = _read(spec, spec.test), str(spec.test)
    if held is not None:
        default = DEFAULT_MAX_TEST if classify else DEFAULT_GENERATION_MAX_TEST
        held = fixed_subset(held, default if spec.max_test is None else spec.max_test)
        if classify:
            check_overlap(train, held)
            if not spec.multi_label:
                check_known_labels(held.labels, train.classes, held.source, allow_unknown=spec.allow_unknown_labels)
        elif not held:
            held, what = None, None
    return Prepared(train, held, what if held is not None else None, shots, pool=pool)


def _pool(spec: RunSpec, *, quiet_reading: bool):
    """All the examples of the data file or built-in set, its test split (built-ins) and what that is."""
    if spec.dataset is None:
        with warnings.catch_warnings():
            if quiet_reading:  # duplicates and conflicts: the audit lists them, row by row
                warnings.simplefilter("ignore")
            return _read(spec, spec.data), None, None
    what = f"the {spec.dataset} test split"
    if spec.task == "classify":
        return (*data.load_builtin(spec.dataset), what)
    generation = _generation()
    if spec.task == "lm":
        return (*generation.load_text_dataset(spec.dataset), what)
    if spec.dataset not in generation.DIALOGUE_DATASETS:
        raise DataError(f"--task generate needs a dialogue data set ({', '.join(generation.DIALOGUE_DATASETS)}), "
                        f"got {spec.dataset!r}")
    return (*generation.load_dialogues(spec.dataset), what)


def _read(spec: RunSpec, path):
    if spec.task == "classify":
        return data.load_labeled(path, text_col=spec.text_col, label_col=spec.label_col,
                                 text_pair_col=spec.text_pair_col, encoding=spec.encoding)
    generation = _generation()
    if spec.task == "generate":
        return generation.load_chats(path, prompt_col=spec.prompt_col, response_col=spec.response_col,
                                     encoding=spec.encoding)
    return generation.load_texts(path, text_col=spec.text_col, encoding=spec.encoding)


def _generation():
    """The dialogue and raw-text readers of --task generate and lm (their package also holds FewShotGenerator)."""
    from .. import generation  # why: torch (the package holds FewShotGenerator); classification needs none of it

    return generation
