"""`distill`: the teacher labels the pool, a student learns the labels (and the shots), the student is saved.

Everything a user can get wrong is checked before the teacher labels a single text: the output
folder, the student's kind, backbone and parameters, the teacher (a single-label classifier), the
pool (its column, its size, its language) and the shots (their labels among the teacher's classes).
The student's folder is written atomically at the end, so a failed or interrupted run leaves nothing.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones import ENCODER, FAST_ENCODER, a_kind, resolve_backbone
from ..data import as_labeled
from ..data.language import text_scripts
from ..errors import FewtuneError, warnings_after_checks
from ..export.static import StaticClassifier, embed, write_static_classifier
from ..labels import plain_label
from ..methods import get_method  # the package: importing it registers every method
from ..model_card import render_static_card
from ..paths import fewtune_home
from ..saved_models import check_classifier_folder, saved_facts
from ..storage.atomic import atomic_write_bytes
from .pool import read_pool, warn_if_foreign, warn_if_one_sided
from .static_table import static_table
from .students import ENCODER_DEFAULTS, _soft_logistic, fit_static_head, shot_repeats, train_encoder_student
from .teacher import check_teacher, describe_teacher, label, load_teacher

STUDENTS = ("encoder", "static")
HELDOUT_SHARE, HELDOUT_MAX, HELDOUT_MIN_POOL = 0.1, 500, 100


def distill(teacher: str | Path, unlabeled: str | Path, output: str | Path, *, student: str = "encoder",
            backbone: str = FAST_ENCODER, shots=None, text_col: str = "text", encoding: str = "utf-8",
            max_pool: int = 0, rounds: int = 1, params: dict[str, Any] | None = None, seed: int = 0,
            device: str | None = None, trust: bool = False, overwrite: bool = False,
            show_progress: bool = False) -> dict[str, Any]:
    """Train a fast student on what `teacher` (a saved classifier's folder) says about the texts in `unlabeled`.

    student: "encoder" (a `finetune` model on `backbone`, exportable to ONNX) or "static" (a model2vec
        table distilled from `backbone`, and a softmax head; predicts without torch).
    shots: the labeled examples, as a LabeledTexts or (texts, labels); they join the pool with their
        true labels, repeated to make about a tenth of a training pass.
    max_pool: label at most this many pool texts (a random sample; 0 = all).
    rounds: 1, or more for self-training: round r's teacher is round r-1's student.
    params: the encoder student's `finetune` parameters (over ENCODER_DEFAULTS).
    Returns what the student's card says: teacher, pool, agreement on held-out pool texts, seconds.
    """
    started = time.perf_counter()
    output, params = Path(output), dict(params or {})
    if student == "encoder":  # old names of finetune's settings read as the new ones ENCODER_DEFAULTS uses
        params = get_method("finetune").params_class.with_new_names(params, method="finetune")
    with warnings_after_checks():  # a refused teacher or shots: the error alone, not a note on the pool first
        _check_options(output, student, backbone, rounds, max_pool, params, overwrite)
        check_classifier_folder(teacher, trust=trust)
        told = saved_facts(teacher)
        check_teacher(teacher, multi_label=bool(told.get("multi_label")), text_pairs=bool(told.get("text_pairs")))
        pool = read_pool(unlabeled, text_col=text_col, encoding=encoding, max_texts=max_pool, seed=seed)  # before the load
        model = load_teacher(teacher, device=device, trust=trust, show_progress=show_progress)
        classes = [plain_label(c) for c in model.classes_]
        facts = describe_teacher(teacher, model)
        warn_if_foreign(pool.texts, facts["backbone"], "teacher", pool.file)
        warn_if_foreign(pool.texts, backbone, "student", pool.file)
        shot_texts, shot_labels = _shots(shots, classes)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool.texts))
    n_held = min(HELDOUT_MAX, int(HELDOUT_SHARE * len(order))) if len(order) >= HELDOUT_MIN_POOL else 0
    held, train = np.sort(order[:n_held]), np.sort(order[n_held:])
    labeled_at = time.perf_counter()
    soft = cached_labels(facts, pool.texts)
    cached = soft is not None
    if not cached:
        soft = label(model, pool.texts, show_progress=show_progress)
        cache_labels(facts, pool.texts, soft)
    warn_if_one_sided(soft, classes, pool.file)
    seconds = {"teacher_labeling": round(time.perf_counter() - labeled_at, 3), "teacher_labels_cached": cached}
    teacher_held = soft[held]
    del model  # a causal-LM teacher holds gigabytes the student's training can use

    repeats = shot_repeats(len(train), len(shot_texts))
    one_hot = np.eye(len(classes))[[classes.index(y) for y in shot_labels]] if shot_texts else np.zeros((0, len(classes)))
    texts = [pool.texts[i] for i in train] + shot_texts * repeats
    history, trained = [], None
    for r in range(1, rounds + 1):
        targets = np.vstack([soft[train], np.tile(one_hot, (repeats, 1))]) if repeats else soft[train]
        round_started = time.perf_counter()
        trained = _train(student, texts, targets, classes, backbone=backbone, params=params, seed=seed, device=device,
                         trust=trust, show_progress=show_progress)
        entry = {"round": r, "train_seconds": round(time.perf_counter() - round_started, 3)}
        if n_held:
            entry.update(_agreement(trained.predict_proba([pool.texts[i] for i in held]), teacher_held))
        history.append(entry)
        if r < rounds:  # self-training: the student relabels the pool for the next round
            soft = label(trained, pool.texts, show_progress=show_progress, what=f"round {r} student")
    seconds["students"] = round(sum(h["train_seconds"] for h in history), 3)

    info = {
        "teacher": facts,
        "pool": {"file": Path(pool.file).name, "n_texts": pool.n_texts, "sha256": pool.sha256,
                 "n_used": len(pool.texts), "n_train": len(train), "n_heldout": n_held},
        "n_shots": len(shot_texts), "shot_repeats": repeats, "rounds": rounds, "student": student,
        "heldout": ({"n": n_held, **{k: history[-1][k] for k in ("agreement", "total_variation")}} if n_held else None),
        "history": history,
    }
    seconds["total"] = round(time.perf_counter() - started, 3)
    info["seconds"] = seconds
    if student == "encoder":
        trained.train_info_["distillation"] = info
        trained.train_info_["data"] = f"{len(texts)} texts: {len(train)} from {Path(pool.file).name} labeled by the " \
                                      f"teacher, {len(shot_texts)} shots ×{repeats}"
        trained.save(output, overwrite=overwrite)
    else:
        trained.save(output, info, overwrite=overwrite)
    return {"output": str(output), **info}


def _labels_file(teacher: dict, texts: list[str]) -> Path:
    h = hashlib.sha256(teacher["config_sha256"].encode())
    for text in texts:
        h.update(text.encode("utf-8") + b"\n")
    return fewtune_home() / "distill-labels" / f"{h.hexdigest()[:32]}.safetensors"


def cached_labels(teacher: dict, texts: list[str]) -> np.ndarray | None:
    """The teacher's probabilities for exactly these texts, when an earlier run labeled them (the teacher's
    fewtune.json, which holds its weights' sha256, and every text are the key): a second student from one
    teacher and pool costs no teacher time."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    file = _labels_file(teacher, texts)
    try:
        soft = load_file(str(file))["probabilities"]
    except (FileNotFoundError, SafetensorError, KeyError, OSError):
        return None
    return soft.astype(np.float64) if soft.shape == (len(texts), len(teacher["classes"])) else None


def cache_labels(teacher: dict, texts: list[str], soft: np.ndarray) -> None:
    from safetensors.numpy import save

    file = _labels_file(teacher, texts)
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(file, save({"probabilities": np.ascontiguousarray(soft)}))


def _check_options(output: Path, student: str, backbone: str, rounds: int, max_pool: int, params: dict,
                   overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise FewtuneError(f"{output} already exists; choose another output folder or pass --overwrite")
    if student not in STUDENTS:
        raise FewtuneError(f"--student must be one of {', '.join(STUDENTS)}, got {student!r}")
    if not isinstance(rounds, int) or rounds < 1:
        raise FewtuneError(f"rounds must be at least 1 (2 or more: self-training), got {rounds!r}")
    if max_pool < 0:
        raise FewtuneError(f"max_pool must be 0 (all) or positive, got {max_pool}")
    if params and student == "static":
        raise FewtuneError("--param sets the encoder student's finetune parameters; the static student has none")
    resolved = resolve_backbone(backbone)
    if resolved.kind != ENCODER:
        raise FewtuneError(f"the student's backbone must be a sentence encoder; "
                           f"'{backbone}' is {a_kind(resolved.kind)}")
    if student == "encoder":
        get_method("finetune").params_class.from_dict({**ENCODER_DEFAULTS, **params}, method="finetune")


def _shots(shots, classes: list) -> tuple[list[str], list]:
    if shots is None:
        return [], []
    data = shots if hasattr(shots, "texts") else as_labeled(*shots, source="shots")
    if data.labels is None:
        raise FewtuneError(f"{data.source}: the shots need labels")
    if data.text_pairs is not None:
        raise FewtuneError(f"{data.source}: distillation covers single texts, not (text, text_pair) pairs")
    by_name = {str(c): c for c in classes}
    unknown = sorted({str(y) for y in data.labels} - set(by_name))
    if unknown:
        raise FewtuneError(f"{data.source}: labels {unknown} are not classes of the teacher ({', '.join(by_name)})")
    return list(data.texts), [by_name[str(y)] for y in data.labels]


def _train(student: str, texts, targets, classes, *, backbone, params, seed, device, trust, show_progress):
    if student == "encoder":
        return train_encoder_student(texts, targets, classes, backbone=backbone, params=params, seed=seed,
                                     device=device, trust=trust, show_progress=show_progress)
    return StaticStudent.fit(texts, targets, classes, backbone=backbone, seed=seed, trust=trust,
                             show_progress=show_progress)


def _agreement(student_p: np.ndarray, teacher_p: np.ndarray) -> dict[str, float]:
    return {"agreement": round(float(np.mean(student_p.argmax(1) == teacher_p.argmax(1))), 5),
            "total_variation": round(float(0.5 * np.abs(student_p - teacher_p).sum(1).mean()), 5)}


class StaticStudent:
    """A static table and a head, trained in memory; `save` writes the torch-free folder."""

    def __init__(self, table_folder: Path, runtime, backbone: str, head_info: dict, class_counts: dict):
        self.table_folder, self.runtime, self.backbone = table_folder, runtime, backbone
        self.head_info, self.class_counts = head_info, class_counts

    @classmethod
    def fit(cls, texts, targets, classes, *, backbone: str, seed: int, trust: bool, show_progress: bool):
        from model2vec import StaticModel

        folder = static_table(backbone, scripts=text_scripts(texts), trust=trust, show_progress=show_progress)
        table = StaticModel.from_pretrained(folder)
        x = embed(table, texts)
        # The head's strength is chosen on a tenth of the training texts, then refitted on all of them.
        order = np.random.default_rng(seed).permutation(len(texts))
        val = order[: len(order) // 10] if len(order) >= HELDOUT_MIN_POOL else order[:0]
        fit = order[len(val):]
        weight, bias, head_info = fit_static_head(x[fit], targets[fit], x[val], targets[val], seed=seed)
        if len(val):
            weight, bias = _soft_logistic(x, targets, head_info["C"], seed)
        counts = np.bincount(targets.argmax(1), minlength=len(classes))
        class_counts = {str(c): int(n) for c, n in zip(classes, counts)}
        manifest = {"classes": list(classes), "training": {"class_counts": class_counts}}
        runtime = StaticClassifier(None, manifest, table, weight, bias)
        return cls(folder, runtime, backbone, {**head_info, "n_examples": len(texts)}, class_counts)

    @property
    def classes_(self) -> np.ndarray:
        return self.runtime.classes_

    def predict_proba(self, X) -> np.ndarray:
        return self.runtime.predict_proba(X)

    def save(self, output: Path, info: dict, *, overwrite: bool) -> None:
        manifest = {
            "method": "static",
            "classes": self.runtime.manifest_["classes"],
            "multi_label": False,
            "text_pairs": False,
            "backbone": {"name": self.backbone, "kind": "static", "dims": int(self.runtime.weight_.shape[1])},
            "params": {"C": self.head_info["C"]},
            "training": {"n_examples": self.head_info["n_examples"], "class_counts": self.class_counts,
                         "head": self.head_info, "distillation": info},
        }
        write_static_classifier(output, self.table_folder, self.runtime.weight_, self.runtime.bias_, manifest,
                                render_static_card, overwrite=overwrite)
