"""Loading, validating and sampling labeled text data.

- ``load_labeled`` / ``as_labeled``: a file (CSV, TSV, JSONL, Parquet) or in-memory lists ->
  ``LabeledTexts``, with one-line DataErrors that name the file, row and field.
- ``check_trainable``, ``check_overlap``: refuse untrainable data; warn about train/test leakage.
- ``sample_k_shot``, ``draw``: deterministic k examples per class (and the rows not drawn);
  ``fixed_subset``: the same at most N held-out examples whatever the seed.
- ``load_builtin`` / ``list_datasets``: real data sets shipped in pip packages, with fixed test
  splits.
"""

from .builtin import BUILTIN_DATASETS, BuiltinDataset, list_datasets, load_builtin
from .ingest import as_labeled, check_overlap, check_trainable, load_labeled
from .labeled import DataWarning, LabeledTexts, normalize_text
from .readers import read_table
from .sampling import draw, fixed_subset, sample_k_shot

__all__ = [
    "BUILTIN_DATASETS",
    "BuiltinDataset",
    "DataWarning",
    "LabeledTexts",
    "as_labeled",
    "check_overlap",
    "check_trainable",
    "draw",
    "fixed_subset",
    "list_datasets",
    "load_builtin",
    "load_labeled",
    "normalize_text",
    "read_table",
    "sample_k_shot",
]
