"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Every output casnat writes (checkpoints, transcripts, hyp/ref/errors files, summaries, benchmark
tables) goes through :func:`atomic_write`: the content is written to a temporary file in the
target's directory, flushed to disk, and renamed over the target (``os.replace`` is atomic on
POSIX). On any failure, including KeyboardInterrupt and a full disk, the temporary file is
removed and the previous target, if any, is left untouched. Running out of space (ENOSPC,
EFBIG, EDQUOT) is re-raised as :class:`DiskFullError`, one line naming the file.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "a.txt", "hello\\n")
>>> (d / "a.txt").read_text()
'hello\\n'
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from casnat.errors import UserError


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. Parent directories are created.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        no_space = _no_space(e)
        if no_space is not None:
            kept = f"the previous {path.name} is unchanged" if path.exists() else "nothing written"
            raise DiskFullError(f"cannot write {path}: {no_space} ({kept})") from e
        raise


class DiskFullError(UserError, OSError):
    """A write failed for lack of space (or over a file-size or disk quota limit). A UserError:
    the user fixes it by freeing space, and the CLI prints one line instead of a traceback."""


_NO_SPACE = {
    errno.ENOSPC: "disk full",
    errno.EFBIG: "file too large (disk full or over the file-size limit)",
    errno.EDQUOT: "disk quota exceeded",
}


def _no_space(e: BaseException) -> str | None:
    """The reason, if ``e`` (or an exception it wraps: torch.save re-raises a failed write as a
    RuntimeError) is an out-of-space error; None otherwise."""
    seen = 0
    while e is not None and seen < 5:
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            return _NO_SPACE[e.errno]
        text = str(e)
        for code, reason in _NO_SPACE.items():
            if os.strerror(code) in text:
                return reason
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (plus a newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_write_with(path: str | Path, writer: Callable[[IO], None], binary: bool = True) -> None:
    """Let ``writer(f)`` fill a temporary file, then rename it over ``path``."""
    with atomic_write(path, "wb" if binary else "w") as f:
        writer(f)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically (checkpoints, CMVN statistics)."""
    import torch

    atomic_write_with(path, lambda f: torch.save(obj, f))


__all__ = [
    "DiskFullError",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_with",
]
