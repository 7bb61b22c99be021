"""The teacher: any saved classifier, checked, then asked for its probabilities on the pool a batch at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FewtuneError
from ..export.runtime import MANIFEST_NAME
from ..export.static import MANIFEST_NAME as STATIC_MANIFEST
from ..saved_models import load_classifier, runtime_of
from ..storage.model_folder import CONFIG_NAME, sha256
from ..progress import Progress

BATCH = 64  # texts per call: the bar moves, and a teacher's memory stays that of one batch


def load_teacher(path: str | Path, *, device: str | None = None, trust: bool = False, show_progress: bool = False):
    """The classifier in `path`, refused when it cannot teach a single-label student."""
    teacher = load_classifier(path, device=device, trust=trust, show_progress=show_progress)
    check_teacher(path, multi_label=teacher.multi_label_, text_pairs=teacher.text_pairs_)
    return teacher


def check_teacher(path: str | Path, *, multi_label: bool, text_pairs: bool) -> None:
    """Refuse a teacher that cannot teach a single-label student (from its folder's facts before the load)."""
    if multi_label:
        raise FewtuneError(f"{path}: the teacher is multi-label (independent probabilities per label); distillation "
                           "learns one distribution over the classes per text, from a single-label classifier")
    if text_pairs:
        raise FewtuneError(f"{path}: the teacher reads (text, text_pair) pairs; distillation covers single texts")


def describe_teacher(path: str | Path, teacher) -> dict[str, Any]:
    """What the student's card says of its teacher."""
    path = Path(path)
    runtime = runtime_of(path)
    if runtime == "pytorch":
        method, backbone, marker = teacher.method, teacher.backbone_.name, path / CONFIG_NAME
    else:
        facts = teacher.manifest_.get("source", teacher.manifest_)
        method, backbone = facts.get("method"), (facts.get("backbone") or {}).get("name")
        marker = path / (MANIFEST_NAME if runtime == "onnx" else STATIC_MANIFEST)
    return {"folder": path.name, "method": method, "backbone": _public(backbone), "runtime": runtime,
            "classes": [str(c) for c in teacher.classes_], "config_sha256": sha256(marker)}


def label(teacher, texts: list[str], *, show_progress: bool = False, what: str = "teacher") -> np.ndarray:
    """The teacher's class probabilities for every text (rows in `teacher.classes_` order), float64."""
    out = np.empty((len(texts), len(teacher.classes_)), dtype=np.float64)
    with Progress(show_progress) as progress:
        task = progress.add(f"Labeling the pool ({what})", total=len(texts))
        for start in range(0, len(texts), BATCH):
            proba = np.asarray(teacher.predict_proba(texts[start:start + BATCH]), dtype=np.float64)
            out[start:start + len(proba)] = proba
            progress.advance(task, len(proba))
    broken = ~np.isfinite(out).all(1) | (out < 0).any(1) | ~np.isclose(out.sum(1), 1.0, atol=1e-4)
    if broken.any():
        bad = int(np.flatnonzero(broken)[0])
        raise FewtuneError(f"the {what} gave no probability distribution for pool text {bad} "
                           f"({out[bad].tolist()}); it cannot teach soft labels")
    return out


def _public(name: str | None) -> str | None:
    # A backbone given as a local folder is named by its path: the card keeps the folder's name only.
    return Path(name).name if name and Path(name).is_absolute() else name
