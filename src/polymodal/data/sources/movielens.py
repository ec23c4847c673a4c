"""MovieLens (GroupLens): user-item interactions plus item title, genres, year and user tags.

Two releases, selected by ``source``:

``"latest-small"`` (ml-latest-small, Sept 2018), files directly in the folder given::

    movies.csv    movieId,title,genres          genres "A|B|C" or "(no genres listed)"; title ends "(YYYY)"
    ratings.csv   userId,movieId,rating,timestamp
    tags.csv      userId,movieId,tag,timestamp   (optional: without it every item has no tag text)
    links.csv     movieId,imdbId,tmdbId          (not needed; not read)

``"ml100k"`` (MovieLens 100K, 1998), the folder ``ml-100k/`` as GroupLens distributes it::

    u.data    user id \\t item id \\t rating \\t timestamp        (no header)
    u.item    item id | title | release date | video release date | IMDb URL | 19 genre flags  (latin-1)
    u.genre   genre name | index                                   (the order of the 19 flags)

ml-100k has no tags: every item's tag text is empty and ``actions`` says so.

Validation: a missing file is a :class:`MissingDataError`; a missing column, an unparsable id,
rating or timestamp, a genre flag other than 0/1, or a rating of an unknown item is a
:class:`DataError` naming the file, the row (1-based, header excluded) and the field. Items
without a year in the title (ml-latest-small has a few) keep ``year = NaN`` and are counted in
``actions``; so are tags of unknown items (skipped) and duplicate (user, item) ratings (the first
kept). Nothing else is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from polymodal.errors import DataError, MissingDataError

SOURCES = ("latest-small", "ml100k")
_YEAR = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_HOW_TO_GET = ("download it from https://grouplens.org/datasets/movielens/ ({name}.zip) and unpack it "
               "into the data directory")


@dataclass
class MovieLensData:
    """One MovieLens release, ids as in the files.

    Attributes:
        source: ``"latest-small"`` or ``"ml100k"``.
        interactions: one row per (user, item): ``user_id``, ``item_id`` (int64), ``rating`` (float64),
            ``timestamp`` (int64); implicit feedback treats every row as a positive.
        items: one row per item: ``item_id``, ``title`` (without the year), ``year`` (float64, NaN
            when unknown), ``genres`` (tuple of str), ``tags`` (str, distinct tags joined by ", ";
            "" when none).
        genres: the genre vocabulary in file order (the multi-hot columns).
        actions: what the adapter did, one line each.
    """

    source: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    genres: list[str]
    actions: list[str] = field(default_factory=list)

    def genre_matrix(self) -> np.ndarray:
        """(n_items, n_genres) float32 multi-hot, rows in ``items`` order."""
        index = {g: j for j, g in enumerate(self.genres)}
        out = np.zeros((len(self.items), len(self.genres)), dtype=np.float32)
        for i, gs in enumerate(self.items["genres"]):
            for g in gs:
                out[i, index[g]] = 1.0
        return out


def load_movielens(data_dir: str | Path, source: str = "latest-small") -> MovieLensData:
    """Read one MovieLens release.

    Args:
        data_dir: for ``"latest-small"`` the folder holding movies.csv and ratings.csv (or a data
            directory holding ``movielens_latest_small/``); for ``"ml100k"`` the folder holding
            ``ml-100k/`` (or the ``ml-100k`` folder itself).
        source: ``"latest-small"`` or ``"ml100k"``.

    Raises:
        ValueError: unknown source.
        MissingDataError: a required file is absent (says where to get it).
        DataError: malformed content, naming file, row and field.
    """
    root = Path(data_dir)
    if source == "latest-small":
        if not (root / "movies.csv").exists() and (root / "movielens_latest_small").is_dir():
            root = root / "movielens_latest_small"
        return _load_latest(root)
    if source == "ml100k":
        if (root / "ml-100k").is_dir():
            root = root / "ml-100k"
        return _load_100k(root)
    raise ValueError(f"unknown MovieLens source {source!r}; choose one of {SOURCES}")


def _need(path: Path, release: str) -> Path:
    if not path.exists():
        raise MissingDataError(f"{path} not found; " + _HOW_TO_GET.format(name=release))
    return path


def _columns(df: pd.DataFrame, path: Path, wanted: tuple[str, ...]) -> None:
    for col in wanted:
        if col not in df.columns:
            raise DataError(f"missing column (has {list(df.columns)})", file=path, field=col)


def _integers(values: pd.Series, path: Path, name: str, *, kind: str = "integer") -> np.ndarray:
    """Column -> int64/float64 array; the first unparsable entry raises naming its 1-based row."""
    parsed = pd.to_numeric(values, errors="coerce")
    bad = parsed.isna().to_numpy()
    if kind == "integer":
        bad |= ~np.isfinite(parsed.to_numpy(dtype=float, na_value=np.nan)) | (parsed.fillna(0) % 1 != 0).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"not a{'n' if kind == 'integer' else ''} {kind}: {values.iloc[i]!r}",
                        file=path, row=i + 1, field=name)
    return parsed.to_numpy(dtype=np.int64 if kind == "integer" else np.float64)


def _split_year(title: str) -> tuple[str, float]:
    match = _YEAR.search(title)
    if match is None:
        return title.strip(), float("nan")
    return title[: match.start()].strip(), float(match.group(1))


def _interactions(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, times: np.ndarray,
                  known: set[int], path: Path, actions: list[str]) -> pd.DataFrame:
    unknown = ~pd.Series(items).isin(known).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(f"item {items[i]} is not in the item file ({unknown.sum()} such rows)",
                        file=path, row=i + 1, field="item")
    frame = pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings, "timestamp": times})
    dup = frame.duplicated(["user_id", "item_id"], keep="first")
    if dup.any():
        actions.append(f"{path.name}: {int(dup.sum())} repeated (user, item) rows; the first of each kept")
        frame = frame[~dup.to_numpy()].reset_index(drop=True)
    actions.append(f"{path.name}: {len(frame)} interactions, {frame.user_id.nunique()} users, "
                   f"{frame.item_id.nunique()} items rated")
    return frame


def _load_latest(root: Path) -> MovieLensData:
    actions: list[str] = []
    movies_path = _need(root / "movies.csv", "ml-latest-small")
    ratings_path = _need(root / "ratings.csv", "ml-latest-small")
    movies = pd.read_csv(movies_path, dtype=str, keep_default_na=False, encoding="utf-8")
    _columns(movies, movies_path, ("movieId", "title", "genres"))
    ids = _integers(movies["movieId"], movies_path, "movieId")
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(f"movieId {ids[i]} appears twice", file=movies_path, row=i + 1, field="movieId")
    titles, years = zip(*(_split_year(t) for t in movies["title"]), strict=True) if len(movies) else ((), ())
    genre_lists = [tuple(g for g in s.split("|") if g and g != "(no genres listed)") for s in movies["genres"]]
    vocab: list[str] = []
    for gs in genre_lists:
        vocab.extend(g for g in gs if g not in vocab)
    items = pd.DataFrame({"item_id": ids, "title": list(titles), "year": np.asarray(years, dtype=float),
                          "genres": genre_lists})
    n_no_year = int(items["year"].isna().sum())
    if n_no_year:
        actions.append(f"movies.csv: {n_no_year} titles without a year (year left missing)")
    n_no_genre = sum(1 for g in genre_lists if not g)
    if n_no_genre:
        actions.append(f"movies.csv: {n_no_genre} movies with '(no genres listed)' (all genre flags 0)")

    ratings = pd.read_csv(ratings_path, dtype=str, keep_default_na=False)
    _columns(ratings, ratings_path, ("userId", "movieId", "rating", "timestamp"))
    known = set(ids.tolist())
    inter = _interactions(_integers(ratings["userId"], ratings_path, "userId"),
                          _integers(ratings["movieId"], ratings_path, "movieId"),
                          _integers(ratings["rating"], ratings_path, "rating", kind="number"),
                          _integers(ratings["timestamp"], ratings_path, "timestamp"), known, ratings_path, actions)

    tags_path = root / "tags.csv"
    tag_text = {}
    if tags_path.exists():
        tags = pd.read_csv(tags_path, dtype=str, keep_default_na=False, encoding="utf-8")
        _columns(tags, tags_path, ("userId", "movieId", "tag"))
        tag_items = _integers(tags["movieId"], tags_path, "movieId")
        ok = pd.Series(tag_items).isin(known).to_numpy()
        if (~ok).any():
            actions.append(f"tags.csv: {int((~ok).sum())} tags of unknown movies skipped")
        frame = pd.DataFrame({"item_id": tag_items[ok], "tag": tags["tag"].to_numpy()[ok]})
        frame["tag"] = frame["tag"].str.strip()
        frame = frame[frame["tag"] != ""]
        # Case-insensitive de-duplication keeps one spelling per tag per movie, in file order.
        frame = frame[~frame.assign(low=frame["tag"].str.lower()).duplicated(["item_id", "low"])]
        tag_text = frame.groupby("item_id", sort=False)["tag"].agg(", ".join).to_dict()
        actions.append(f"tags.csv: {len(tags)} tag applications, {len(tag_text)} movies with tag text")
    else:
        actions.append("tags.csv absent: no item has tag text")
    items["tags"] = [tag_text.get(int(i), "") for i in items["item_id"]]
    return MovieLensData("latest-small", inter, items, vocab, actions)


def _load_100k(root: Path) -> MovieLensData:
    actions = ["ml-100k has no tags: every item's tag text is empty"]
    data_path = _need(root / "u.data", "ml-100k")
    item_path = _need(root / "u.item", "ml-100k")
    genre_path = _need(root / "u.genre", "ml-100k")

    genre_rows = [line for line in genre_path.read_text(encoding="latin-1").splitlines() if line.strip()]
    vocab: list[str] = []
    for r, line in enumerate(genre_rows, start=1):
        name, sep, index = line.rpartition("|")
        if not sep or not index.strip().isdigit():
            raise DataError(f"expected 'name|index', got {line!r}", file=genre_path, row=r, field="index")
        if int(index) != len(vocab):
            raise DataError(f"genre index {index} out of order (expected {len(vocab)})", file=genre_path, row=r,
                            field="index")
        vocab.append(name)

    n_flags = len(vocab)
    ids, titles, years, genre_lists = [], [], [], []
    for r, line in enumerate(item_path.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + n_flags:
            raise DataError(f"expected {5 + n_flags} '|'-separated fields, got {len(parts)}", file=item_path,
                            row=r, field="line")
        if not parts[0].strip().isdigit():
            raise DataError(f"not an integer: {parts[0]!r}", file=item_path, row=r, field="item id")
        flags = parts[5:]
        for j, f in enumerate(flags):
            if f not in ("0", "1"):
                raise DataError(f"genre flag must be 0 or 1, got {f!r}", file=item_path, row=r, field=vocab[j])
        title, year = _split_year(parts[1])
        if np.isnan(year) and parts[2][-4:].isdigit():
            year = float(parts[2][-4:])  # "01-Jan-1995": the release date when the title has no year
        ids.append(int(parts[0]))
        titles.append(title)
        years.append(year)
        genre_lists.append(tuple(vocab[j] for j, f in enumerate(flags) if f == "1" and vocab[j] != "unknown"))
    dup = pd.Series(ids).duplicated().to_numpy()
    if dup.any():
        raise DataError(f"item id {ids[int(np.flatnonzero(dup)[0])]} appears twice", file=item_path,
                        row=int(np.flatnonzero(dup)[0]) + 1, field="item id")
    # "unknown" is a flag for 'no genre known', not a genre: it is left out of the multi-hot vocabulary.
    vocab = [g for g in vocab if g != "unknown"]
    items = pd.DataFrame({"item_id": np.asarray(ids, dtype=np.int64), "title": titles,
                          "year": np.asarray(years, dtype=float), "genres": genre_lists, "tags": ""})
    n_no_year = int(items["year"].isna().sum())
    if n_no_year:
        actions.append(f"u.item: {n_no_year} items without a year (year left missing)")

    data = pd.read_csv(data_path, sep="\t", header=None, dtype=str, keep_default_na=False)
    if data.shape[1] != 4:
        raise DataError(f"expected 4 tab-separated fields, got {data.shape[1]}", file=data_path, row=1, field="line")
    data.columns = ["user id", "item id", "rating", "timestamp"]
    inter = _interactions(_integers(data["user id"], data_path, "user id"),
                          _integers(data["item id"], data_path, "item id"),
                          _integers(data["rating"], data_path, "rating", kind="number"),
                          _integers(data["timestamp"], data_path, "timestamp"), set(ids), data_path, actions)
    return MovieLensData("ml100k", inter, items, vocab, actions)
