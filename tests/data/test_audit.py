"""fewtune check-data: the audit's rules on planted cases, the command, and train --check-data.

The rules (fewtune.data.audit) get synthetic embeddings, so what is planted is known exactly; the
command runs on the tiny random sentence-transformers backbone; one integration test uses MiniLM.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fewtune.data.audit_backbone import render, token_limit
from fewtune.data.audit import ERROR, WARNING, audit, class_imbalance, exact_duplicates, near_duplicates, out_of_fold_probabilities, too_long
from tests.helpers.cli import run_cli
from tests.helpers.files import write_csv


def blobs(per_class=8, classes=3, dim=16, seed=0, spread=0.3):
    """Well separated clusters: class c sits around 3·e_c."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    centers = 3.0 * np.eye(dim)[:classes]
    return centers[y] + spread * rng.standard_normal((len(y), dim)), y


def names(n):
    return [f"line {i + 2}" for i in range(n)]


# --- the rules -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_flipped_label_is_flagged_first_with_the_true_label_suggested(seed):
    X, y = blobs(seed=seed)
    labels = [["bird", "cat", "dog"][c] for c in y]
    flipped = 5 + 8 * seed % 24  # a different example each seed
    true = labels[flipped]
    labels[flipped] = "dog" if true != "dog" else "cat"
    report = audit([f"text {i}" for i in range(len(y))], labels, names(len(y)), embeddings=X, seed=seed)
    suspects = report.of_kind("suspect-label")
    assert suspects and suspects[0].rows == [f"line {flipped + 2}"]
    assert suspects[0].details["suggested"] == true and suspects[0].details["rank"] == 1
    assert suspects[0].severity == WARNING and not report.errors
    assert report.self_confidence[flipped] == min(report.self_confidence)


def test_out_of_fold_probabilities_never_see_the_example_they_score():
    X, y = blobs(per_class=4, classes=2)
    X[0] = X[4]  # example 0 is a copy of a class-1 point, labeled 0: in-sample it would look fine
    probs = out_of_fold_probabilities(X, y)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs[0, 0] < 0.5
    with pytest.raises(ValueError, match="at least 2"):
        out_of_fold_probabilities(X[:5], np.array([0, 0, 0, 0, 1]))


def test_same_text_under_two_labels_is_an_error_and_the_same_label_twice_a_warning():
    keys = [("a fine film", None), ("dull", None), ("a fine film", None), ("dull", None), ("other", None)]
    findings = exact_duplicates(keys, ["pos", "neg", "neg", "neg", "pos"], names(5))
    by_kind = {f.kind: f for f in findings}
    assert by_kind["label-conflict"].severity == ERROR
    assert by_kind["label-conflict"].rows == ["line 2", "line 4"]
    assert "line 2 = 'pos'" in by_kind["label-conflict"].message
    assert by_kind["duplicate"].severity == WARNING and by_kind["duplicate"].rows == ["line 3", "line 5"]


def test_exact_duplicates_ignore_case_and_spacing_through_audit():
    texts = ["Great  film", "great film", "bad", "worse", "fine", "meh"]
    report = audit(texts, ["pos", "neg", "neg", "neg", "pos", "pos"], names(6), embeddings=None)
    assert [f.kind for f in report.errors] == ["label-conflict"]
    assert report.notes and "near-duplicates" in report.notes[0]


def test_near_duplicates_by_cosine_similarity_with_a_configurable_threshold():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 32))
    X[4] = X[1] + 0.05 * rng.standard_normal(32)  # a near copy of row 1
    keys = [(str(i), None) for i in range(6)]
    labels = ["a", "b", "a", "b", "a", "b"]
    found = near_duplicates(X, keys, labels, names(6), threshold=0.95)
    assert [f.rows for f in found] == [["line 3", "line 6"]]
    assert found[0].details["labels"] == ["b", "a"] and found[0].details["similarity"] > 0.95
    assert near_duplicates(X, keys, labels, names(6), threshold=0.9999) == []
    # Exact duplicates (same key) are reported once, by exact_duplicates, not again here.
    assert near_duplicates(X, [("k", None)] * 6, labels, names(6), threshold=0.95) == []


def test_centring_removes_a_shared_direction_that_makes_every_pair_look_alike():
    # A causal LM's mean-pooled states: one large common component plus what differs per text.
    X, y = blobs(per_class=4, classes=2, dim=16)
    X = X + 50.0 * np.ones(16)
    keys, labels = [(str(i), None) for i in range(8)], ["a"] * 4 + ["b"] * 4
    assert len(near_duplicates(X, keys, labels, names(8))) == 28  # every pair, without centring
    assert near_duplicates(X, keys, labels, names(8), centre=True) == []
    probs = out_of_fold_probabilities(X, y, centre=True)
    assert (probs.argmax(1) == y).all()


def test_class_imbalance_and_over_long_texts_counted_in_tokens():
    assert class_imbalance(["a"] * 8 + ["b"] * 8) == []
    (finding,) = class_imbalance(["a"] * 12 + ["b"] * 6, max_ratio=1.5)
    assert finding.details["ratio"] == 2.0 and "'a' has 12" in finding.message
    (long,) = too_long([10, 300, 40, 257], 256, names(4))
    assert long.rows == ["line 3", "line 5"] and long.details["tokens"] == {"line 3": 300, "line 5": 257}
    assert too_long([256], 256, names(1)) == []


def test_a_class_with_one_example_skips_suspects_with_a_note():
    X, y = blobs(per_class=3, classes=2)
    labels = ["a", "a", "a", "b", "b", "c"]
    report = audit([str(i) for i in range(6)], labels, names(6), embeddings=X)
    assert not report.of_kind("suspect-label") and report.self_confidence is None
    assert any("single example" in n for n in report.notes)


def test_report_json_and_text_name_the_rows():
    X, y = blobs(per_class=4, classes=2)
    texts = [f"text {i}" for i in range(8)]
    texts[7] = "text 0"  # a conflict: row 2 (a) and row 9 (b)
    report = audit(texts, ["a"] * 4 + ["b"] * 4, names(8), embeddings=X, source="my.csv")
    d = json.loads(json.dumps(report.to_dict()))
    assert d["errors"] == 1 and d["findings"][0]["kind"] == "label-conflict"
    assert d["findings"][0]["rows"] == ["line 2", "line 9"]
    text = render(report)
    assert text.splitlines()[0].startswith("checked 8 examples of my.csv")
    assert "error: [label-conflict]" in text and text.splitlines()[-1].startswith("1 error")


def test_token_limit_reads_the_length_parameters_the_method_declares():
    from types import SimpleNamespace

    from fewtune.methods import get_method

    setfit, zero_shot, hybrid = get_method("setfit"), get_method("zero-shot"), get_method("hybrid")
    assert token_limit(setfit, SimpleNamespace(max_tokens=64)) == 64
    assert token_limit(setfit, SimpleNamespace(max_tokens=0)) is None
    assert token_limit(zero_shot, SimpleNamespace(max_tokens=256)) == 256
    assert token_limit(hybrid, SimpleNamespace(max_tokens=0)) is None  # each part its own
    assert token_limit(get_method("majority"), SimpleNamespace(max_tokens=64)) is None  # reads no text


# --- the command ----------------------------------------------------------------------------------
CLEAN = [[f"a great film number {i}", "pos"] for i in range(4)] + [[f"an awful film number {i}", "neg"] for i in range(4)]


def test_check_data_command_exits_2_on_errors_and_prints_json(tmp_path, capfd, st_folder):
    bad = write_csv(tmp_path / "bad.csv", CLEAN + [["A great film number 0", "neg"]])
    result = run_cli(capfd, "check-data", "--data", bad, "--backbone", st_folder, "-q")
    assert result.code == 2
    assert "error: [label-conflict]" in result.out and "line 2 = 'pos', line 10 = 'neg'" in result.out
    result = run_cli(capfd, "check-data", "--data", bad, "--backbone", st_folder, "-q", "--json")
    assert result.code == 2
    report = json.loads(result.out)
    assert report["errors"] == 1 and report["n"] == 9 and report["class_counts"] == {"neg": 5, "pos": 4}


def test_check_data_command_on_clean_data_exits_0_and_honours_shots(tmp_path, capfd, st_folder):
    good = write_csv(tmp_path / "good.csv", CLEAN)
    result = run_cli(capfd, "check-data", "--data", good, "--backbone", st_folder, "--shots", "3", "--json", "-q",
                     "--max-tokens", "4")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["n"] == 6 and report["errors"] == 0
    assert report["settings"]["max_tokens"] == 4
    assert any(f["kind"] == "too-long" for f in report["findings"])  # "a great film number 0" is > 4 tokens


def test_train_check_data_stops_on_errors_naming_the_rows_and_writes_nothing(tmp_path, capfd, st_folder):
    bad = write_csv(tmp_path / "bad.csv", CLEAN + [["an awful film number 3", "pos"]])
    out = tmp_path / "model"
    result = run_cli(capfd, "train", "--data", bad, "--backbone", st_folder, "--check-data", "-q",
                     "-p", "steps=2", "-o", out)
    assert result.code == 2  # the conflict stops the run as it stops plain `train`
    assert "the same text under two labels" in result.err and "line 9" in result.err and "line 10" in result.err
    assert not out.exists()


def test_train_check_data_audits_the_whole_file_not_only_the_drawn_shots(tmp_path, capfd, st_folder):
    # A conflicting pair outside the 2 shots a class would be scored as held-out truth: it stops the run.
    bad = write_csv(tmp_path / "bad.csv", CLEAN + [["an awful film number 3", "pos"]])
    result = run_cli(capfd, "train", "--data", bad, "--backbone", st_folder, "--check-data", "-q", "--shots", "2",
                     "-p", "steps=2")
    assert result.code == 2 and "the same text under two labels" in result.err
    # Findings of rows the shots leave out are reported: every row is audited, as `fewtune check-data` does.
    good = write_csv(tmp_path / "good.csv", CLEAN + [["an awful film number 3", "neg"]])  # a duplicate
    result = run_cli(capfd, "train", "--data", good, "--backbone", st_folder, "--check-data", "-q", "--json",
                     "--shots", "2", "-p", "steps=2", "-p", "batch_size=4")
    assert result.code == 0, result.err
    report = json.loads(result.out)["check_data"]
    assert report["n"] == 9 and any(f["kind"] == "duplicate" for f in report["findings"])


def test_train_check_data_goes_on_after_warnings_and_reports_in_json(tmp_path, capfd, st_folder):
    good = write_csv(tmp_path / "good.csv", CLEAN + [["a great film number 0", "pos"]])  # a duplicate
    result = run_cli(capfd, "train", "--data", good, "--backbone", st_folder, "--check-data", "-q", "--json",
                     "-p", "steps=2", "-p", "batch_size=4")
    assert result.code == 0, result.err
    report = json.loads(result.out)["check_data"]
    assert report["errors"] == 0 and any(f["kind"] == "duplicate" for f in report["findings"])


# --- a real encoder -------------------------------------------------------------------------------
@pytest.mark.integration
def test_minilm_flags_a_planted_flipped_label_first():
    from fewtune.data.audit_backbone import run_audit
    from fewtune.data import as_labeled

    # Topics, not sentiment: MiniLM's embeddings separate topics well (sentiment barely: see
    # benchmarks/label_noise.py on mr), so the planted flip is unambiguous to it.
    sport = ["the striker scored twice in the second half", "a late goal won the cup final",
             "the tennis champion lost in straight sets", "the team signed a new goalkeeper",
             "the marathon runner set a course record", "the coach praised his defenders after the match"]
    food = ["simmer the tomato sauce for twenty minutes", "knead the bread dough until it is smooth",
            "this soup needs more garlic and pepper", "bake the cake at 180 degrees for half an hour",
            "a recipe for crispy roast potatoes", "whisk the eggs with sugar and butter"]
    texts, labels = sport + food, ["sport"] * 6 + ["food"] * 6
    labels[8] = "sport"  # "this soup needs more garlic and pepper", labeled sport
    report = run_audit(as_labeled(texts, labels), backbone="minilm")
    suspects = report.of_kind("suspect-label")
    assert suspects and suspects[0].rows == ["example 8"] and suspects[0].details["suggested"] == "food"
    assert not report.errors
