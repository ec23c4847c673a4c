"""MovieLens loader on generated tiny files in both layouts (ml-latest-small and ml-100k)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polymodal.data.sources.movielens import load_movielens
from polymodal.errors import DataError, MissingDataError

GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
               "War", "Western"]


def write_latest(root: Path, *, ratings: str | None = None, movies: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "movies.csv").write_text(movies or (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children\n"
        '2,"Misérables, Les (1995)",Drama\n'
        "3,Some Series (2006–2007),(no genres listed)\n"
        "4,No Year Film,Comedy|Drama\n"), encoding="utf-8")
    (root / "ratings.csv").write_text(ratings or (
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,2,3.5,964982704\n2,1,5,964982705\n"
        "2,3,1.0,964982706\n2,3,2.0,964982707\n"))
    (root / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,pixar,1\n2,1,Pixar,2\n2,1,fun,3\n"
                                   "2,99,ghost,4\n")
    (root / "links.csv").write_text("movieId,imdbId,tmdbId\n1,0114709,862\n")
    return root


def write_100k(root: Path, *, data: str | None = None, item_flags: str | None = None) -> Path:
    folder = root / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n",
                                    encoding="latin-1")
    flags1 = ["0"] * 19
    flags1[3] = flags1[4] = flags1[5] = "1"  # Animation, Children's, Comedy
    flags2 = item_flags.split("|") if item_flags else ["1"] + ["0"] * 18  # unknown only
    lines = [f"1|Toy Story (1995)|01-Jan-1995||http://x|{'|'.join(flags1)}",
             f"2|Café Noir|01-Jan-1994||http://y|{'|'.join(flags2)}"]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.data").write_text(data or "196\t1\t3\t881250949\n186\t2\t3\t891717742\n196\t2\t1\t878887116\n")
    return root


def test_latest_small_reads_items_ratings_tags(tmp_path: Path) -> None:
    d = load_movielens(write_latest(tmp_path / "movielens_latest_small"), "latest-small")
    assert d.source == "latest-small"
    assert list(d.items["item_id"]) == [1, 2, 3, 4]
    assert list(d.items["title"]) == ["Toy Story", "Misérables, Les", "Some Series", "No Year Film"]
    assert d.items["year"].tolist()[:3] == [1995.0, 1995.0, 2006.0] and np.isnan(d.items["year"].iloc[3])
    assert d.genres == ["Adventure", "Animation", "Children", "Drama", "Comedy"]
    assert d.items["genres"].iloc[2] == ()
    assert d.genre_matrix().sum(axis=1).tolist() == [3.0, 1.0, 0.0, 2.0]
    # Case-insensitive tag de-duplication; the tag of the unknown movie 99 is skipped and counted.
    assert d.items["tags"].tolist() == ["pixar, fun", "", "", ""]
    assert any("1 tags of unknown movies skipped" in a for a in d.actions)
    # The repeated (2, 3) rating keeps the first row and is counted.
    assert len(d.interactions) == 4 and d.interactions["rating"].tolist()[-1] == 1.0
    assert any("1 repeated" in a for a in d.actions)
    assert any("1 titles without a year" in a for a in d.actions)


def test_latest_small_found_inside_data_dir(tmp_path: Path) -> None:
    write_latest(tmp_path / "movielens_latest_small")
    assert len(load_movielens(tmp_path).items) == 4


def test_ml100k_reads_original_layout(tmp_path: Path) -> None:
    d = load_movielens(write_100k(tmp_path), "ml100k")
    assert d.source == "ml100k"
    assert list(d.items["title"]) == ["Toy Story", "Café Noir"]
    assert d.items["year"].tolist() == [1995.0, 1994.0]  # the second from its release date
    assert "unknown" not in d.genres and len(d.genres) == 18
    assert d.items["genres"].iloc[0] == ("Animation", "Children's", "Comedy")
    assert d.items["genres"].iloc[1] == ()
    assert d.items["tags"].tolist() == ["", ""]
    assert d.interactions[["user_id", "item_id"]].values.tolist() == [[196, 1], [186, 2], [196, 2]]
    assert any("no tags" in a for a in d.actions)


def test_bad_rating_names_file_row_field(tmp_path: Path) -> None:
    root = write_latest(tmp_path, ratings="userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,four,2\n")
    with pytest.raises(DataError) as err:
        load_movielens(root)
    assert (err.value.file, err.value.row, err.value.field) == (str(root / "ratings.csv"), 2, "rating")
    assert "ratings.csv, row 2, field 'rating'" in str(err.value)


def test_rating_of_unknown_movie_names_row(tmp_path: Path) -> None:
    root = write_latest(tmp_path, ratings="userId,movieId,rating,timestamp\n1,1,4.0,1\n1,42,3,2\n")
    with pytest.raises(DataError, match=r"ratings.csv, row 2, field 'item'.*item 42"):
        load_movielens(root)


def test_missing_column_and_missing_file(tmp_path: Path) -> None:
    root = write_latest(tmp_path, movies="movieId,name,genres\n1,x,Drama\n")
    with pytest.raises(DataError, match="field 'title'"):
        load_movielens(root)
    with pytest.raises(MissingDataError, match="grouplens"):
        load_movielens(tmp_path / "nowhere", "ml100k")


def test_ml100k_bad_user_id_and_bad_flag(tmp_path: Path) -> None:
    root = write_100k(tmp_path / "a", data="196\t1\t3\t881250949\nx7\t2\t3\t891717742\n")
    with pytest.raises(DataError, match=r"u.data, row 2, field 'user id'"):
        load_movielens(root, "ml100k")
    root = write_100k(tmp_path / "b", item_flags="|".join(["0"] * 5 + ["2"] + ["0"] * 13))
    with pytest.raises(DataError, match=r"u.item, row 2, field 'Comedy'"):
        load_movielens(root, "ml100k")


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ml100k"):
        load_movielens(tmp_path, "ml-1m")
