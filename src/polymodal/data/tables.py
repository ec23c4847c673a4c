"""Reading a data file so that every way it can be damaged ends in one DataError naming the file.

``pandas.read_csv`` and ``json.load`` fail on a damaged file with a dozen exception types
(``EmptyDataError``, ``ParserError``, ``UnicodeDecodeError``, ``EOFError`` and ``BadGzipFile`` from a
cut or bit-flipped ``.gz``, ``zlib.error``, ``JSONDecodeError``), none of which says which file it
was. :func:`read_csv` and :func:`read_json` turn each into a :class:`~polymodal.errors.DataError`
whose one-line message names the file (and the row where the parser knows it).

A file cut in the middle of its last row is the one damage that parses: pandas fills the missing
fields with NaN, and a row cut inside its last field keeps a shortened value (MIMIC's ``4019``
becomes ``4``). Every file of the datasets polymodal reads ends with a line break, so with
``final_newline=True`` (the default) a file whose last byte is not one is refused, naming its last
row: a truncated copy is an error, never a silently shortened row.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.errors import DataError, MissingDataError

__all__ = ["read_csv", "read_csv_rows", "read_json"]

# pandas' C parser reports "Expected 10 fields in line 5, saw 11" (line counts the header as 1)
# or "EOF inside string starting at row 4" (row counts data rows from 1).
_PARSER_LINE = re.compile(r"\bline (\d+)")
_PARSER_ROW = re.compile(r"\brow (\d+)")


class _TailReader(io.RawIOBase):
    """A raw stream that remembers its last byte and whether it reached the end, for the final-newline check."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw
        self.last = b""
        self.at_end = False
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.last = data[-1:]
            self.size += n
        else:
            self.at_end = True
        return n


def read_csv(path: str | Path, *, final_newline: bool = True, require_rows: bool = False,
             check_fields: bool = False, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` of a ``.csv`` or ``.csv.gz`` (UTF-8) whose every failure is a DataError.

    Args:
        path: the file; a name ending in ``.gz`` is decompressed.
        final_newline: refuse a file whose last byte is not a line break (a copy cut mid-row).
        require_rows: refuse a file with a header and no data row.
        check_fields: refuse a row with fewer fields than the header (a file cut mid-row, or a row
            missing its last commas), which pandas pads silently. It re-reads the file with the csv
            module, so use it for small uncompressed files read as text.
        **kwargs: passed to ``pandas.read_csv`` (not ``compression`` or ``encoding``).

    Raises:
        MissingDataError: the file does not exist.
        DataError: empty, not UTF-8, malformed CSV, damaged or truncated gzip, cut mid-row, no rows,
            or unreadable; the message names the file and, where known, the row.
    """
    path = Path(path)
    if {"chunksize", "iterator", "compression", "encoding"} & set(kwargs):
        raise TypeError("read_csv reads a whole file as UTF-8 and decompresses .gz itself: no chunksize, iterator, "
                        "compression or encoding")
    try:
        with open(path, "rb") as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if path.name.endswith(".gz") else raw
            tail = _TailReader(stream)
            frame = pd.read_csv(io.BufferedReader(tail, buffer_size=1 << 20), encoding="utf-8", **kwargs)
    except FileNotFoundError:
        raise MissingDataError(f"{path} not found") from None
    except pd.errors.EmptyDataError:
        raise DataError("empty file (not even a header row)", file=path) from None
    except pd.errors.ParserError as err:
        raise DataError(f"malformed CSV: {_one_line(err)}", file=path, row=_parser_row(str(err))) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason}, byte {err.object[err.start:err.start + 1]!r})",
                        file=path) from None
    except EOFError:
        raise DataError("compressed file ends early (truncated copy?): download it again", file=path) from None
    except (gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"damaged gzip file ({_one_line(err)}): download it again", file=path) from None
    except OSError as err:  # a directory, no permission, an I/O error
        raise DataError(f"cannot read: {err.strerror or _one_line(err)}", file=path) from None
    if final_newline and tail.at_end and tail.size and tail.last not in (b"\n", b"\r"):
        if len(frame):
            raise DataError("file ends inside this row, without a line break: it looks cut off (truncated copy?); "
                            "if the row is complete, end the file with a newline", file=path, row=len(frame))
        raise DataError("file ends inside its header row, without a line break: it looks cut off", file=path)
    if require_rows and not len(frame):
        raise DataError("no data rows (only a header)", file=path)
    if check_fields:
        _check_fields(path)
    return frame


def _check_fields(path: Path) -> None:
    """The first data row with fewer fields than the header is a DataError naming it and its first absent field."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = (row for row in reader if row)  # pandas skips blank lines and does not number them
        for row_no, row in enumerate(rows, start=1):
            if len(row) < len(header):
                raise DataError(f"row has {len(row)} of the header's {len(header)} fields (file cut mid-row?)",
                                file=path, row=row_no, field=header[len(row)])


def read_csv_rows(path: str | Path, *, require_rows: bool = True) -> list[dict[str, str]]:
    """A small UTF-8 CSV as ``csv.DictReader`` rows (every value a string), checked row by row.

    Raises:
        MissingDataError: the file does not exist.
        DataError: empty, not UTF-8, no data rows (when ``require_rows``), a row with fewer or more
            fields than the header (a file cut mid-row, a stray comma), naming file and row.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            rows = list(reader)
    except FileNotFoundError:
        raise MissingDataError(f"{path} not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason}, byte {err.object[err.start:err.start + 1]!r})",
                        file=path) from None
    except csv.Error as err:
        raise DataError(f"malformed CSV: {_one_line(err)}", file=path) from None
    except OSError as err:
        raise DataError(f"cannot read: {err.strerror or _one_line(err)}", file=path) from None
    if not header:
        raise DataError("empty file (not even a header row)", file=path)
    if require_rows and not rows:
        raise DataError("no data rows (only a header)", file=path)
    for row_no, row in enumerate(rows, start=1):
        if None in row:  # DictReader files extra fields under the key None
            raise DataError(f"row has {len(header) + len(row[None])} fields, the header {len(header)}", file=path,
                            row=row_no)
        short = [name for name in header if row[name] is None]  # and gives missing ones the value None
        if short:
            raise DataError(f"row has {len(header) - len(short)} of the header's {len(header)} fields "
                            "(file cut mid-row?)", file=path, row=row_no, field=short[0])
    return rows


def read_json(path: str | Path) -> Any:
    """A UTF-8 JSON file; an empty, non-UTF-8 or invalid file is a DataError naming it (and the line)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise MissingDataError(f"{path} not found") from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=path) from None
    except OSError as err:
        raise DataError(f"cannot read: {err.strerror or _one_line(err)}", file=path) from None
    if not text.strip():
        raise DataError("empty file (expected JSON)", file=path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}", file=path) from None


def _parser_row(message: str) -> int | None:
    """The 1-based data row in a pandas parser error, if it names one."""
    if line := _PARSER_LINE.search(message):
        return int(line.group(1)) - 1
    if row := _PARSER_ROW.search(message):
        return int(row.group(1))
    return None


def _one_line(err: BaseException) -> str:
    # pandas prefixes some parser messages with "Error tokenizing data. C error: " and may add newlines.
    return " ".join(str(err).replace("Error tokenizing data. C error: ", "").split())
