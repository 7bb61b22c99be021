"""A static-embedding classifier: a model2vec token table, mean-pooled, then a linear head. No torch.

    static/                 a model2vec StaticModel folder (model.safetensors, tokenizer.json, config.json)
    head.safetensors        weight (classes × dims) and bias of a softmax head
    fewtune-static.json     manifest: classes, the backbone the table was distilled from, how the head
                            was trained (teacher, pool), sha256 of every file
    README.md               a model card

An embedding is a lookup and an average, so this predicts thousands of texts a second on one core
(model2vec, the field's library for it, does the lookup). Written by `fewtune distill --student
static`; `fewtune predict` and `fewtune serve` take the folder as they take an ONNX export, and loading
it imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..storage.atomic import atomic_folder
from ..data import DataWarning, as_labeled
from ..errors import FewtuneError, ModelFolderError
from ..label_shift import parse_class_prior, prior_ratio
from ..labels import ProbabilityLabels
from ..model_card import with_metadata
from ..numeric import softmax
from ..storage.integrity import seal
from ..storage.model_folder import CARD_NAME, library_versions, read_format_file, sha256, verify_files

MANIFEST_NAME = "fewtune-static.json"
FORMAT = "fewtune-static"
FORMAT_VERSION = 1
TABLE_FOLDER = "static"
HEAD_FILE = "head.safetensors"
# What a model2vec folder needs to load; its README and modules.json stay behind.
TABLE_FILES = ("model.safetensors", "tokenizer.json", "config.json")
_NO_READING = "probabilities are the class prior, not a reading of the text"
UNKNOWN_TEXT = ("none of this text's tokens is in the static model's vocabulary (emoji only, or another script?); "
                f"its {_NO_READING}")
UNKNOWN_TEXT_WARNING = ("some texts have no token the static model knows (emoji only, or another script?); their "
                        f"{_NO_READING}")


def is_static(path: str | Path) -> bool:
    """Whether `path` is a folder written by `fewtune distill --student static`."""
    return (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    path = Path(path)
    manifest = read_format_file(path, MANIFEST_NAME, FORMAT, FORMAT_VERSION, kind="static-embedding model folder",
                                content="fewtune static-embedding manifest", written="written")
    files = manifest.get("files")
    if not isinstance(files, dict) or HEAD_FILE not in files:
        raise ModelFolderError(f"{path / MANIFEST_NAME}: no file list naming {HEAD_FILE}; the folder is incomplete")
    verify_files(path, files, checksums=verify)
    return manifest


def write_static_classifier(path: str | Path, table: Path, weight: np.ndarray, bias: np.ndarray,
                            manifest: dict[str, Any], render_card: Callable[[dict[str, Any]], str], *,
                            overwrite: bool = False) -> Path:
    """Write the folder atomically: a reader sees the old folder or the complete new one."""
    from safetensors.numpy import save_file

    path = Path(path)
    if path.exists():
        if not overwrite:
            raise ModelFolderError(f"{path} already exists; choose another folder or pass overwrite")
        if not path.is_dir() or (any(path.iterdir()) and not is_static(path)):
            raise ModelFolderError(f"{path} exists and is not a static-embedding model folder; refusing to replace it")
    with atomic_folder(path, overwrite=True) as tmp:
        (tmp / TABLE_FOLDER).mkdir()
        for name in TABLE_FILES:
            shutil.copyfile(table / name, tmp / TABLE_FOLDER / name)
        save_file({"weight": np.ascontiguousarray(weight, dtype=np.float32),
                   "bias": np.ascontiguousarray(bias, dtype=np.float32)}, str(tmp / HEAD_FILE))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest,
                    "versions": library_versions("model2vec"),
                    "files": {p.relative_to(tmp).as_posix(): sha256(p) for p in files}}
        manifest = seal(manifest)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(with_metadata(manifest, render_card(manifest)), encoding="utf-8")
    return path


class StaticClassifier(ProbabilityLabels):
    """`predict_proba`, `predict`, `classes_` as FewShotClassifier has them, from a static table and a head."""

    runtime = "static"

    def __init__(self, folder: Path, manifest: dict[str, Any], table, weight: np.ndarray, bias: np.ndarray):
        self.folder = folder
        self.manifest_ = manifest
        self.table_ = table
        self.weight_ = weight.astype(np.float64)
        self.bias_ = bias.astype(np.float64)
        self.classes_ = np.array(manifest["classes"], dtype=object)
        self.multi_label_ = False
        self.text_pairs_ = False
        self.train_info_ = manifest.get("training", {})
        self.set_class_prior(manifest.get("class_prior"))

    @classmethod
    def load(cls, path: str | Path) -> StaticClassifier:
        from model2vec import StaticModel
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path)
        manifest = read_manifest(path)
        try:
            head = load_file(str(path / HEAD_FILE))
            table = StaticModel.from_pretrained(path / TABLE_FOLDER)
        except (SafetensorError, OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise ModelFolderError(f"{path}: cannot load the static-embedding model ({type(e).__name__}: {e})") from None
        weight, bias = head.get("weight"), head.get("bias")
        if weight is None or bias is None or weight.shape != (len(manifest["classes"]), table.dim):
            raise ModelFolderError(f"{path / HEAD_FILE}: a head of shape "
                                   f"{None if weight is None else weight.shape} does not fit "
                                   f"{len(manifest['classes'])} classes of {table.dim}-dimensional embeddings")
        return cls(path, manifest, table, weight, bias)

    def set_class_prior(self, class_prior: dict | str | None) -> StaticClassifier:
        """The class mix of the texts to come (None: the training mix), as FewShotClassifier.set_class_prior."""
        ratio = prior_ratio(parse_class_prior(class_prior), self.classes_, self.train_info_.get("class_counts", {}),
                            "none", multi_label=False)
        self.log_prior_ratio_ = None if ratio is None else np.log(ratio)
        return self

    def embed(self, texts: list[str]) -> np.ndarray:
        return embed(self.table_, texts)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, one row per text; a text with no token the table knows gets the class
        prior and a DataWarning (see predict_proba_flagged)."""
        import warnings

        proba, unknown = self.predict_proba_flagged(X)
        if unknown.any():
            # One fixed message, so a file predicted in chunks warns once, not once a chunk.
            warnings.warn(UNKNOWN_TEXT_WARNING, DataWarning, stacklevel=2)
        return proba

    def predict_proba_flagged(self, X) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, unknown): unknown[i] is True when text i has no token the table knows.

        The table averages the vectors of the tokens it knows and drops the rest, so a text made only
        of unknown tokens (emoji, a script the table was not distilled for) embeds to all zeros, and
        the head would answer its bias alone: a label at whatever probability the bias happens to give
        (0.68 on one student), with nothing in the text behind it. Such a text gets the class prior
        instead (no_evidence_proba: what Bayes' rule says when there is no evidence, so an
        abstain_below above the largest class share abstains on it), and the flag lets a caller say
        so: the server marks the row unknown_text, predict_proba warns.
        """
        data = as_labeled(X, source="input")
        if data.text_pairs is not None:
            raise FewtuneError("this model was trained on single texts; give it the same kind of input")
        x = self.embed(data.texts)
        z = x @ self.weight_.T + self.bias_
        if self.log_prior_ratio_ is not None:
            z = z + self.log_prior_ratio_
        proba = softmax(z)
        unknown = ~np.any(x, axis=1)
        if unknown.any():
            proba[unknown] = self.no_evidence_proba()
        return proba, unknown

    def no_evidence_proba(self) -> np.ndarray:
        """The class probabilities of a text the table cannot read: the training mix (uniform when the
        manifest has no class counts), shifted to the class prior given to set_class_prior if any."""
        counts = self.train_info_.get("class_counts") or {}
        try:
            prior = np.array([float(counts[str(c)]) for c in self.classes_])
        except (KeyError, TypeError, ValueError):
            prior = np.ones(len(self.classes_))
        if not (np.all(np.isfinite(prior)) and np.all(prior >= 0) and prior.sum() > 0):
            prior = np.ones(len(self.classes_))
        prior = prior / prior.sum()
        if self.log_prior_ratio_ is not None:
            prior = prior * np.exp(self.log_prior_ratio_)
            prior = prior / prior.sum()
        return prior

    def score(self, X, y) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y, dtype=object)))


def embed(table, texts: list[str]) -> np.ndarray:
    """model2vec's embedding of each text, in float64 (the table is stored in float16)."""
    # One process: model2vec's multiprocessing pays a pool start-up for big batches, a loss on 2 cores.
    return np.asarray(table.encode(list(texts), use_multiprocessing=False), dtype=np.float64)
