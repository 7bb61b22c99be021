"""A FewShotClassifier's model folder: what `save` writes and `load` reads back.

The folder format itself (fewtune.json, checksums, atomic writes, no pickle) is storage.model_folder's;
this module decides what of a fitted classifier goes in it: its options, the method's weights and the
fitted chain of posterior and calibration strategies, each writing its own state.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from safetensors import SafetensorError

from .backbones import ResolvedBackbone, pick_device
from .bayes import load_chain
from .errors import FewtuneError
from .label_shift import parse_class_prior, prior_vector
from .labels import plain_label
from .methods import get_method
from .model_card import render_card, with_front_matter
from .storage.model_folder import SPEC_NAME, read_model_folder, write_model_folder
from .training.base_weights import standalone_bodies


def save_classifier(clf, path: str | Path, *, overwrite: bool = False, evaluation: dict | None = None,
                    standalone: bool = False, run_spec: str | None = None) -> Path:
    """What FewShotClassifier.save writes: fewtune.json (method, params, classes, backbone, training, the
    posterior and calibration chain's state), the method's weights, each strategy's files and a card."""
    config = {
        "method": clf.method,
        "params": clf.model_.params.to_dict(),
        "classes": [plain_label(c) for c in clf.classes_],
        "text_pairs": clf.text_pairs_,
        "multi_label": clf.multi_label_,
        "seed": clf.seed,
        "backbone": {"name": clf.backbone_.name, "kind": clf.backbone_.kind, "source": clf.backbone_.source},
        "training": clf.train_info_,
    }
    if evaluation:
        config["evaluation"] = evaluation
    for strategy in clf.strategies_:
        config.update(strategy.state())
    class_prior = parse_class_prior(clf.class_prior)
    if class_prior is not None:
        weights = prior_vector(class_prior, clf.classes_)
        config["class_prior"] = {str(plain_label(c)): float(w) for c, w in zip(clf.classes_, weights)}

    def write(folder: Path) -> None:
        with standalone_bodies(standalone):
            clf.model_.save(folder)
        for strategy in clf.strategies_:
            strategy.write(folder)
        if run_spec is not None:
            (folder / SPEC_NAME).write_text(run_spec, encoding="utf-8")

    card = with_front_matter(functools.partial(render_card, strategies=[s.describe() for s in clf.strategies_]))
    return write_model_folder(path, config, write, card, overwrite=overwrite)


def load_classifier_folder(cls, path: str | Path, *, device: str | None = None, trust: bool = False,
                           show_progress: bool = False):
    """A saved classifier; trust=True also loads pickle files and custom code (only from a source you trust)."""
    path = Path(path)
    config = read_model_folder(path, allow_pickle=trust)
    if "task" in config:
        raise FewtuneError(f"{path} holds a '{config['task']}' model (a fine-tuned causal LM), not a classifier; "
                           "load it with FewShotGenerator.load / `fewtune generate`")
    try:
        method_cls = get_method(config["method"])
        # A model saved before a setting was renamed loads as it was, silently (params.param's renamed_from).
        params = method_cls.params_class.from_dict(config["params"], method=config["method"], warn_renamed=False)
        b = config["backbone"]
        backbone = ResolvedBackbone(name=b["name"], kind=b["kind"], path=str(path), source=b["source"],
                                    trusted=trust)
        clf = cls(backbone=b["name"], method=config["method"], params=params.to_dict(),
                  seed=config.get("seed", 0), device=device, show_progress=show_progress, trust=trust)
        clf.classes_ = np.array(config["classes"], dtype=object)
        clf.text_pairs_ = bool(config.get("text_pairs", False))
        clf.multi_label_ = bool(config.get("multi_label", False))
        clf.backbone_ = backbone
        clf.train_info_ = config.get("training", {})
        clf.model_ = method_cls.load(path, params, backbone, device or pick_device(), len(clf.classes_))
        clf.model_.class_names = [str(plain_label(c)) for c in clf.classes_]
        clf.strategies_ = load_chain(config, path, clf)
        for strategy in clf.strategies_:
            clf.set_params(**strategy.options())
        clf.class_prior = config.get("class_prior")
    except (KeyError, TypeError, OSError, ValueError, SafetensorError) as e:
        raise FewtuneError(f"{path}: cannot load model ({type(e).__name__}: {e})") from None
    return clf
