"""The command-line tests' shared data and trained models, built once for the package (every test uses the
tiny random sentence-transformers backbone from tests/conftest.py and a few contrastive steps)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from tests.helpers.cli import private_home, run_redirected
from tests.helpers.files import write_csv
from tests.helpers.fast import FAST_SETFIT
from tests.helpers.reviews import HEADER, MULTILINE_TEXT, NEG, POS, PREDICT_TEXTS, review_rows, train_args


@pytest.fixture(scope="package")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_data")
    write_csv(folder / "my.csv", review_rows(), header=HEADER)
    # Labeled held-out data with yet other column names, for `evaluate`.
    test_rows = [[f"t{i}", f"simply {POS[i % 4]}, I {POS[(i + 2) % 4]} scene {i}", "positive"] for i in range(8)]
    test_rows += [[f"u{i}", f"simply {NEG[i % 4]}, I {NEG[(i + 2) % 4]} scene {i}", "negative"] for i in range(8)]
    write_csv(folder / "test.csv", test_rows, header=["key", "opinion", "verdict"])
    texts = [*PREDICT_TEXTS, MULTILINE_TEXT]
    write_csv(folder / "texts.csv", [[f"x{i}", t] for i, t in enumerate(texts)], header=["id", "review"])
    return folder


@pytest.fixture(scope="package")
def trained(data_dir, st_folder, tmp_path_factory):
    """`fewtune train` on the user's own CSV, as a user would type it (no --quiet, no --json)."""
    out = tmp_path_factory.mktemp("cli_trained") / "model"
    with private_home(tmp_path_factory):
        result = run_redirected(*train_args(data_dir / "my.csv", out, st_folder))
    assert result.code == 0, result.err
    return types.SimpleNamespace(model=out, result=result)


@pytest.fixture(scope="package")
def api_model(st_folder, tmp_path_factory):
    """A model trained with the Python API; its in-memory probabilities are taken before saving."""
    from fewtune import FewShotClassifier

    rows = review_rows(8)
    with private_home(tmp_path_factory):
        clf = FewShotClassifier(backbone=str(st_folder), params=dict(FAST_SETFIT), seed=0)
        clf.fit([r[1] for r in rows], [r[2] for r in rows])
        texts = [*PREDICT_TEXTS, MULTILINE_TEXT]
        proba = clf.predict_proba(texts)
        folder = tmp_path_factory.mktemp("cli_api") / "model"
        clf.save(folder)
    return types.SimpleNamespace(model=folder, classes=list(clf.classes_), texts=texts, proba=proba)


@pytest.fixture(scope="package")
def seed7_runs(data_dir, st_folder, tmp_path_factory):
    """Two `train --seed 7 --json --quiet` runs on the same data, into two folders."""
    folders = [tmp_path_factory.mktemp("cli_seed7") / name for name in ("a", "b")]
    with private_home(tmp_path_factory):
        args = ["--seed", "7", "--json", "--quiet"]
        results = [run_redirected(*train_args(data_dir / "my.csv", f, st_folder), *args) for f in folders]
    for r in results:
        assert r.code == 0, r.err
    return types.SimpleNamespace(folders=folders, results=results)
