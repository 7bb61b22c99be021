"""A new user's ratings, as they would write them: item ids or titles, numbers or like/dislike.

An item may be named by its id ("50" in ml-100k), its full text's title part ("Star Wars (1977)")
or its bare title ("Star Wars"), case and spacing ignored. A name that fits several items (ml-100k
lists a few films twice) is an error listing their ids; an unknown one is an error suggesting the
closest titles.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from ..data.readers import read_table
from ..errors import DataError
from .data import LikeScale

ITEM_COLUMNS = ("item", "item_id", "title", "movie", "movie_title", "name")
RATING_COLUMNS = ("rating", "score", "stars", "like")
LIKE_WORDS = {"like": 1, "liked": 1, "yes": 1, "+": 1, "👍": 1, "dislike": -1, "disliked": -1, "no": -1, "-": -1, "👎": -1}


def _key(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _title(text: str) -> str:
    return text.split(" — ", 1)[0]  # 'Toy Story (1995) — Animation, …' → 'Toy Story (1995)'


def _bare(title: str) -> str:
    head, _, tail = title.rpartition(" (")
    return head if head and tail.rstrip(")").isdigit() else title


def _article_first(title: str) -> str:
    """MovieLens writes 'Shawshank Redemption, The (1994)'; people write 'The Shawshank Redemption (1994)'."""
    year = ""
    head, sep, tail = title.rpartition(" (")
    if sep and tail.rstrip(")").isdigit():
        title, year = head, f" ({tail}"
    for article in ("The", "A", "An", "Les", "La", "Le", "Il", "Das", "Der", "Die", "El"):
        if title.endswith(f", {article}"):
            return f"{article} {title[:-len(article) - 2]}{year}"
    return title + year


class ItemMatcher:
    """Finds catalogue items (by index) from what a user calls them."""

    def __init__(self, item_ids, item_texts):
        self.item_ids = [str(i) for i in item_ids]
        self.item_texts = list(item_texts)
        self._by_id = {_key(i): k for k, i in enumerate(self.item_ids)}
        self._by_name: dict[str, list[int]] = {}
        for k, text in enumerate(self.item_texts):
            title, bare = _title(text), _bare(_title(text))
            names = {_key(text), _key(title), _key(bare), _key(_article_first(bare)), _key(_article_first(title))}
            for name in names:
                self._by_name.setdefault(name, []).append(k)

    def find(self, name, where: str) -> int:
        key = _key(name)
        if not key:
            raise DataError(f"{where}: empty item name")
        if key in self._by_id:
            return self._by_id[key]
        found = self._by_name.get(key, [])
        if len(found) == 1:
            return found[0]
        if found:
            listed = "; ".join(f"id {self.item_ids[k]}: {self.item_texts[k]}" for k in found[:5])
            raise DataError(f"{where}: {name!r} matches {len(found)} items ({listed}); give the item id instead")
        close = difflib.get_close_matches(key, list(self._by_name), n=3, cutoff=0.6)
        hint = "; did you mean " + ", ".join(repr(self.item_texts[self._by_name[c][0]]) for c in close) + "?" if close else ""
        raise DataError(f"{where}: unknown item {name!r}{hint}")


def rating_label(value, scale: LikeScale, where: str) -> int:
    """+1, −1 or 0 (neutral) for a rating number or a like/dislike word."""
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in LIKE_WORDS:
            return LIKE_WORDS[word]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: rating {value!r} is neither a number nor like/dislike") from None
    if not np.isfinite(number):
        raise DataError(f"{where}: rating {value!r} is not a finite number")
    return int(scale.labels(np.array([number]))[0])


def parse_history(pairs, matcher: ItemMatcher, scale: LikeScale, *, source: str = "history",
                  rows: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item indices, labels ±1, items rated neutral) from (item, rating) pairs.

    Neutral ratings say little about taste, so they are not labels; but the user has seen those
    items, and callers should not recommend them back. An item rated twice keeps its last rating.
    """
    chosen: dict[int, int] = {}
    for n, (item, rating) in enumerate(pairs):
        where = f"{source}, {rows[n]}" if rows else f"{source}, item {n + 1}"
        index = matcher.find(item, where)
        chosen.pop(index, None)  # re-inserted: the order of the last ratings
        chosen[index] = rating_label(rating, scale, where)
    items = np.fromiter(chosen.keys(), dtype=np.int64, count=len(chosen))
    labels = np.fromiter(chosen.values(), dtype=np.int8, count=len(chosen))
    return items[labels != 0], labels[labels != 0], items[labels == 0]


def as_pairs(history) -> list[tuple]:
    """(item, rating) pairs from a dict, a list of pairs, or a DataFrame with item and rating columns."""
    if history is None:
        return []
    if isinstance(history, dict):
        return list(history.items())
    if hasattr(history, "columns"):
        item_col = pick_column(list(history.columns), ITEM_COLUMNS, None, "history", "item")
        rating_col = pick_column(list(history.columns), RATING_COLUMNS, None, "history", "rating")
        return list(zip(history[item_col], history[rating_col]))
    pairs = list(history)
    for n, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError(f"history, item {n + 1}: expected an (item, rating) pair, got {pair!r}")
    return pairs


def read_history_file(path: str | Path, matcher: ItemMatcher, scale: LikeScale, *, item_col: str | None = None,
                      rating_col: str | None = None, encoding: str = "utf-8") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A history file (CSV, TSV, JSONL or Parquet) with an item column and a rating column."""
    columns, records, rows = read_table(path, encoding=encoding)
    source = str(path)
    item_col = pick_column(columns, ITEM_COLUMNS, item_col, source, "item")
    rating_col = pick_column(columns, RATING_COLUMNS, rating_col, source, "rating")
    pairs = []
    for record, row in zip(records, rows):
        for col in (item_col, rating_col):
            if record.get(col) in (None, ""):
                raise DataError(f"{source}, {row}: empty {col!r}")
        pairs.append((record[item_col], record[rating_col]))
    return parse_history(pairs, matcher, scale, source=source, rows=rows)


def pick_column(columns: list[str], candidates: tuple[str, ...], given: str | None, source: str, what: str) -> str:
    if given is not None:
        if given not in columns:
            raise DataError(f"{source}: no column {given!r}; the columns are {', '.join(map(str, columns))}")
        return given
    lowered = {str(c).casefold(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(f"{source}: no {what} column (looked for {', '.join(candidates)}); the columns are "
                    f"{', '.join(map(str, columns))}; name it with --{what}-col")
