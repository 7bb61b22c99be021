"""prepare(spec): the rows a run trains on and is scored on, the same for train and check-data."""

from __future__ import annotations

import csv

import pytest

from fewtune.errors import DataError
from fewtune.experiment import RunSpec, prepare


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([f"review number {i}", "pos" if i % 2 else "neg"] for i in range(40))
    return path


def test_check_data_audits_the_rows_train_trains_on(reviews):
    spec = RunSpec(data=reviews, shots=4, seed=7)
    assert prepare(spec, heldout=False).train.rows == prepare(spec).train.rows
    assert prepare(spec).train.rows != prepare(RunSpec(data=reviews, shots=4, seed=8)).train.rows


def test_the_rows_not_drawn_are_held_out_and_capped_to_a_fixed_subset(reviews):
    spec = RunSpec(data=reviews, shots=4, max_test=10)
    prepared = prepare(spec)
    assert len(prepared.train) == 8 and len(prepared.heldout) == 10
    assert not set(prepared.train.texts) & set(prepared.heldout.texts)
    assert prepared.heldout.rows == prepare(spec).heldout.rows
    assert "32 rows" in prepared.what and prepared.description(spec).endswith("4 per class, seed 0")


def test_all_rows_train_and_nothing_is_held_out_without_shots_or_test(reviews):
    prepared = prepare(RunSpec(data=reviews))
    assert len(prepared.train) == 40 and prepared.heldout is None


def test_too_few_examples_for_the_shots_is_named_before_training(reviews):
    with pytest.raises(DataError, match="shots"):
        prepare(RunSpec(data=reviews, shots=30))


def test_a_generation_run_on_a_built_in_set_draws_a_few_dozen_by_default():
    notes = []
    spec = RunSpec(dataset="chitchat", task="generate", max_test=5)
    prepared = prepare(spec, note=notes.append)
    assert prepared.shots == 64 == len(prepared.train) and len(prepared.heldout) == 5
    assert "64 examples of chitchat" in notes[0]
    assert prepared.description(spec) == "chitchat, 64 drawn with seed 0"


def test_generation_wants_a_dialogue_set():
    with pytest.raises(DataError, match="dialogue data set"):
        prepare(RunSpec(dataset="mr", task="generate"))
