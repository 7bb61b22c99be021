"""fewtune: fine-tune pretrained language models on a handful of labeled examples.

    from fewtune import FewShotClassifier
    clf = FewShotClassifier(backbone="minilm", method="setfit").fit(texts, labels)
"""

from importlib import metadata as _metadata

from .errors import BackboneError, DataError, FewtuneError, ModelFolderError

try:
    __version__ = _metadata.version("fewtune")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["BackboneError", "DataError", "FewShotClassifier", "FewShotGenerator", "FewtuneError", "ModelFolderError",
           "__version__"]


def __getattr__(name: str):
    # Imported on first use: torch and transformers take seconds to import, and `fewtune models`
    # or `fewtune --help` should answer at once.
    if name == "FewShotClassifier":
        from .classifier import FewShotClassifier  # why: torch, transformers, scikit-learn

        return FewShotClassifier
    if name == "FewShotGenerator":
        from .generation import FewShotGenerator  # why: torch, transformers

        return FewShotGenerator
    raise AttributeError(f"module 'fewtune' has no attribute {name!r}")
