"""Errors that point at the exact place of bad input."""

from __future__ import annotations

from pathlib import Path


class PolymodalError(Exception):
    """Base class of every error polymodal raises on purpose."""


class DataError(PolymodalError, ValueError):
    """Bad input data: names the file, the row (1-based, header excluded) and the field.

    Example message: ``phase_I_train.csv, row 17, field 'smiless': unparsable SMILES 'C1CC('``.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, row: int | None = None,
                 field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.row = row
        self.field = field
        where = []
        if file is not None:
            where.append(Path(file).name)
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        # One line always: a value quoted from a file (a parser's message, a cell) may hold line breaks.
        message = " ".join(line.strip() for line in message.splitlines() if line.strip()) or message
        super().__init__(f"{prefix}: {message}" if prefix else message)


class MissingDataError(PolymodalError, FileNotFoundError):
    """A data file the user asked for is not in the data directory; says which and where to get it."""


class ConfigError(PolymodalError, ValueError):
    """An unknown or ill-typed configuration key or value."""


class StorageError(PolymodalError, OSError):
    """A file polymodal writes could not be written (disk full, read-only place); names the path.

    An ``OSError`` too, so code that handles OSError keeps working; ``errno`` is the system's code.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = str(path) if path is not None else None
        self.errno = errno
