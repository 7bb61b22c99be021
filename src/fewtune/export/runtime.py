"""Run an exported folder with ONNX Runtime: the same tokenizer, the same probabilities, no torch.

    model.onnx (or model.int8.onnx)   input_ids, attention_mask[, token_type_ids] -> logits
    tokenizer/tokenizer.json          the encoder's own fast tokenizer
    fewtune-onnx.json                 manifest: classes, activation, temperature, tokenizer settings,
                                      the source model's training facts, sha256 of every file

A model trained with long_texts=chunks takes windows and one more input, window_weights, which
averages each text's windows (format version 2, so that an older runtime refuses it rather than
failing inside ONNX Runtime); the windows are cut by text_windows, as in PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backbones.prefix import with_prefix
from ..data import as_labeled
from ..errors import FewtuneError, ModelFolderError
from ..label_shift import parse_class_prior, prior_ratio
from ..labels import ProbabilityLabels
from ..model_texts import join_pairs
from ..storage.model_folder import read_format_file, verify_files
from ..progress import Progress
from ..text_windows import text_windows, window_batches, window_weights

MANIFEST_NAME = "fewtune-onnx.json"
FORMAT = "fewtune-onnx"
FORMAT_VERSION = 2  # the newest this runtime reads
WINDOW_WEIGHTS = "window_weights"  # the input that averages a text's windows (long_texts=chunks)


def format_version(chunks: bool) -> int:
    """The version an export is written with: 1 unless its graph takes windows, which version 1 readers
    would feed wrongly."""
    return 2 if chunks else 1


def is_exported(path: str | Path) -> bool:
    """Whether `path` is a folder written by `fewtune export` (as opposed to a fewtune model folder)."""
    return (Path(path) / MANIFEST_NAME).is_file()


def read_manifest(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    path = Path(path)
    file = path / MANIFEST_NAME
    manifest = read_format_file(path, MANIFEST_NAME, FORMAT, FORMAT_VERSION, kind="exported model folder",
                                content="fewtune ONNX manifest", written="exported")
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("model") not in files:
        raise ModelFolderError(f"{file}: no file list naming the model; the folder is incomplete")
    verify_files(path, files, checksums=verify)
    return manifest


class OnnxClassifier(ProbabilityLabels):
    """An exported classifier: `predict_proba`, `predict`, `classes_` as FewShotClassifier has them."""

    def __init__(self, folder: Path, manifest: dict[str, Any], session, tokenizer, *, show_progress: bool = False):
        self.folder = folder
        self.manifest_ = manifest
        self.session_ = session
        self.tokenizer_ = tokenizer
        self.show_progress = show_progress
        self.classes_ = np.array(manifest["classes"], dtype=object)
        self.multi_label_ = bool(manifest.get("multi_label", False))
        self.text_pairs_ = bool(manifest.get("text_pairs", False))
        self.train_info_ = manifest.get("source", {}).get("training", {})
        self.temperature_ = float(manifest.get("temperature", 1.0))
        self.input_names_ = list(manifest["inputs"])
        self.chunks_ = (manifest.get("long_texts") or {}).get("mode") == "chunks"
        self.set_class_prior(manifest.get("source", {}).get("class_prior"))

    def set_class_prior(self, class_prior: dict | str | None) -> OnnxClassifier:
        """The class mix of the texts to come (None: the shots' own), as FewShotClassifier.set_class_prior."""
        source = self.manifest_.get("source", {})
        ratio = prior_ratio(parse_class_prior(class_prior), self.classes_, self.train_info_.get("class_counts", {}),
                            source.get("params", {}).get("class_weight", "none"), multi_label=self.multi_label_)
        # The class prior as FewShotClassifier applies it, p·π_new/π_train renormalised: a shift of the logits.
        self.log_prior_ratio_ = None if ratio is None else np.log(ratio)
        return self

    @property
    def runtime(self) -> str:
        return "onnx-int8" if self.manifest_.get("quantization") else "onnx"

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None, show_progress: bool = False) -> OnnxClassifier:
        """Check the folder's checksums, open the graph in ONNX Runtime on the CPU.

        threads: intra-op threads (None = ONNX Runtime's default, one per core).
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(path)
        manifest = read_manifest(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        t = manifest["tokenizer"]
        try:
            session = ort.InferenceSession(str(path / manifest["model"]), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(path / t["file"]))
        except Exception as e:  # onnxruntime raises its own types for a bad graph: all mean the same to a user
            raise ModelFolderError(f"{path}: cannot load the exported model ({type(e).__name__}: {e})") from None
        # tokenizer.json stores whatever padding/truncation the tokenizer last used (e.g. pad to 128):
        # set them as sentence-transformers calls the tokenizer (pad to the longest, truncate longest_first).
        tokenizer.enable_truncation(t["max_length"], strategy="longest_first",
                                    direction=t.get("truncation_side", "right"))
        tokenizer.enable_padding(direction=t.get("padding_side", "right"), pad_id=t["pad_id"], pad_token=t["pad_token"],
                                 pad_type_id=t.get("pad_type_id", 0))
        return cls(path, manifest, session, tokenizer, show_progress=show_progress)

    # -- prediction -----------------------------------------------------------------------
    def logits(self, X, *, batch_size: int = 64) -> np.ndarray:
        data = as_labeled(X, source="input")
        if (data.text_pairs is not None) != self.text_pairs_:
            want = "(text, text_pair) pairs" if self.text_pairs_ else "single texts"
            raise FewtuneError(f"this model was trained on {want}; give it the same kind of input")
        texts = data.texts
        if data.text_pairs is not None:  # joined as FewShotClassifier joins them
            texts = join_pairs(data.texts, data.text_pairs, self.manifest_["tokenizer"].get("sep_token"))
        out = np.empty((len(texts), len(self.classes_)), dtype=np.float32)
        # Sorted by length, as fewtune's encode does, so a batch pads short texts to short lengths.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        # A truncating model reads each text as its one window; a chunks model its text_windows.
        windows, owner = self._cut(texts) if self.chunks_ else (texts, np.arange(len(texts)))
        counts = np.bincount(owner, minlength=len(texts))
        first = np.concatenate([[0], np.cumsum(counts)])  # text i's windows: first[i]:first[i + 1]
        with Progress(self.show_progress and len(texts) > 256) as progress:
            task = progress.add("Predicting (ONNX Runtime)", total=len(texts))
            # batch_size windows a run, not texts: a text of 16 windows is 16 sequences in memory.
            for idx in window_batches(order, counts, batch_size):
                rows = np.concatenate([np.arange(first[i], first[i + 1]) for i in idx])
                owners = np.repeat(np.arange(len(idx)), counts[idx])  # each window's row in this batch
                weights = window_weights(owners, len(idx)) if self.chunks_ else None
                out[idx] = self._run([windows[j] for j in rows], weights)
                progress.advance(task, len(idx))
        return out

    def _cut(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        t = self.manifest_["tokenizer"]
        return text_windows(self.tokenizer_, texts, t["max_length"], t.get("prefix", ""))

    def _run(self, texts: list[str], weights: np.ndarray | None) -> np.ndarray:
        encodings = self.tokenizer_.encode_batch(with_prefix(texts, self.manifest_["tokenizer"].get("prefix", "")))
        columns = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        feed = {name: np.array([getattr(e, columns[name]) for e in encodings], dtype=np.int64)
                for name in self.input_names_}
        if weights is not None:
            feed[WINDOW_WEIGHTS] = weights
        return self.session_.run(["logits"], feed)[0]

    def predict_proba(self, X, *, batch_size: int = 64) -> np.ndarray:
        # float64, as the PyTorch heads return, so rows sum to 1 to within 1e-12.
        z = self.logits(X, batch_size=batch_size).astype(np.float64)
        if self.manifest_["activation"] == "sigmoid":
            return 1.0 / (1.0 + np.exp(-z))
        # Temperature scaling as FewShotClassifier applies it, softmax(log p / T), is softmax(z / T):
        # log p differs from z by a constant per row.
        z = z / self.temperature_
        if self.log_prior_ratio_ is not None:
            z = z + self.log_prior_ratio_
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def score(self, X, y) -> float:
        """Accuracy (single-label models)."""
        return float(np.mean(self.predict(X) == np.asarray(y, dtype=object)))
