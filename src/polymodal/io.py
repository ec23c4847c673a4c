"""Atomic file writes: a reader never sees half a file, an interrupted writer leaves no debris.

A write that fails for lack of space or permission (``OSError``) removes its temporary file and
raises :class:`~polymodal.errors.StorageError` (itself an OSError) naming the target path, so the
command line prints one line instead of a traceback.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from polymodal.errors import DataError, MissingDataError, StorageError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary file lives in the same directory so ``os.replace`` is atomic on POSIX. On an
    exception (or a kill between write and rename) ``path`` keeps its old content or stays absent.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _storage_error(path, err) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            # mkstemp creates 0600 files; give the result the permissions a plain open() would.
            os.chmod(tmp_path, 0o666 & ~_umask())
            os.replace(tmp_path, path)
        except OSError as err:
            raise _storage_error(path, err) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _storage_error(path: Path, err: OSError) -> StorageError:
    if isinstance(err, StorageError):
        return err
    reason = err.strerror or str(err)
    return StorageError(f"cannot write {path}: {reason}", path=path, errno=err.errno)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], *, binary: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file, fsync it, and rename it over ``path``."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:  # disk full, quota, I/O error: the temp file is removed by atomic_path
            raise _storage_error(Path(path), err) from None


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text))


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (NaN and inf become null, so every JSON reader accepts the file), written atomically."""
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False)
    atomic_write(path, lambda fh: fh.write(text))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):
        return _finite(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in metric dicts; JSON wants plain Python.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_run_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from a run folder (config.json, metrics.json).

    Raises:
        MissingDataError: the file is absent (the run folder is incomplete).
        DataError: it is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} not found: not a finished run folder (an interrupted `polymodal run` "
                               "resumes when rerun with the same options)")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON: {err}", file=path) from None
    if not isinstance(value, dict):
        raise DataError(f"expected a JSON object, got {type(value).__name__}", file=path)
    return value


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` of a run folder's weights or checkpoint with ``weights_only=True``.

    A run folder is data: a crafted file in it must never run code. A file that is not plain tensors
    and containers (a pickle payload, a truncated file) is a one-line :class:`DataError` naming it.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path} not found: the run folder is incomplete")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not a file we wrote"
        first = (str(err).splitlines() or [""])[0][:200]
        raise DataError(f"not a loadable weights file ({type(err).__name__}: {first}); delete it to retrain that "
                        "model", file=path) from None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (its temporary files may still be written)."""
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
