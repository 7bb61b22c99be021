"""The models a server holds, by name: loaded once, with the facts `/info` reports.

Names come from the operator (the command line or `create_app`'s dict) or are made up by the server
for models trained from the page; a request only ever looks a name up in this dict, so nothing a
client sends becomes a path.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FewtuneError
from ..saved_models import load_classifier, runtime_of
from ..storage.model_folder import read_model_folder

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CLASSIFIER, GENERATOR = "classifier", "generator"


@dataclass
class Served:
    name: str
    kind: str  # CLASSIFIER or GENERATOR
    runtime: str  # pytorch, onnx, onnx-int8, static
    model: Any
    info: dict[str, Any]
    # One request at a time per model: the PyTorch encoders switch train/eval mode around a batch,
    # and on a 2-core machine parallel batches of one model only compete for the same cores.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def classes(self) -> list:
        return [_plain(c) for c in self.model.classes_]


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise FewtuneError(f"model name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                           "or digit")
    return name


def load_served(name: str, path: str | Path, *, threads: int | None = None) -> Served:
    """A fewtune model folder (classifier or generator), an exported ONNX folder or a static student."""
    path = Path(path)
    if runtime_of(path) != "pytorch":  # torch-free: its manifest carries the facts a fewtune.json would
        model = load_classifier(path, threads=threads)
        return Served(name, CLASSIFIER, model.runtime, model,
                      _info(model.manifest_.get("source", model.manifest_), model.runtime, path))
    config = read_model_folder(path)
    if "task" in config:
        from ..generation import FewShotGenerator  # why: torch; a server of ONNX or static models never imports it

        model = FewShotGenerator.load(path)
        return Served(name, GENERATOR, "pytorch", model, _info(config, "pytorch", path))
    from ..classifier import FewShotClassifier  # why: torch; a server of ONNX or static models never imports it

    model = FewShotClassifier.load(path)
    return Served(name, CLASSIFIER, "pytorch", model, _info(config, "pytorch", path))


def served_from_classifier(name: str, clf, *, origin: str) -> Served:
    """A model trained in this process (the page's teach loop), described as a saved one would be."""
    config = {"method": clf.method, "classes": [_plain(c) for c in clf.classes_], "multi_label": clf.multi_label_,
              "text_pairs": clf.text_pairs_, "backbone": {"name": clf.backbone_.name, "kind": clf.backbone_.kind},
              "training": clf.train_info_}
    info = _info(config, "pytorch", None)
    info["origin"] = origin
    return Served(name, CLASSIFIER, "pytorch", clf, info)


def _info(config: dict[str, Any], runtime: str, path: Path | None) -> dict[str, Any]:
    """The model card's facts: what was trained, on what, how well it did on held-out data."""
    training = config.get("training") or {}
    info = {
        "kind": GENERATOR if "task" in config else CLASSIFIER,
        "runtime": runtime,
        "method": config.get("method") or config.get("task"),
        "backbone": _public_name((config.get("backbone") or {}).get("name")),
        "folder": path.name if path is not None else None,  # the name only: the server's layout is not news
        "trained": {k: training[k] for k in ("n_examples", "class_counts", "train_seconds", "data") if k in training},
        "evaluation": config.get("evaluation"),
        "versions": {k: v for k, v in (config.get("versions") or {}).items() if k in ("fewtune", "torch", "python")},
    }
    if info["kind"] == CLASSIFIER:
        info.update(classes=config.get("classes"), multi_label=bool(config.get("multi_label")),
                    text_pairs=bool(config.get("text_pairs")),
                    posterior=(config.get("posterior") or {}).get("kind"),
                    calibrated="temperature" in config)
    else:
        info["task"] = config.get("task")
    return info


def _public_name(name: str | None) -> str | None:
    # A backbone given as a local folder is named by its path; clients see the folder's name only.
    return Path(name).name if name and Path(name).is_absolute() else name


def _plain(value):
    return value.item() if hasattr(value, "item") else value
