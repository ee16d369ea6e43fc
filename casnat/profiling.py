"""Named phases for timing inference, without monkeypatching.

Library code marks its phases with ``with phase("encoder"):``; nothing is recorded (and the
context manager costs one global lookup) unless a :class:`PhaseRecorder` is active. The decoding
benchmark (``casnat bench-decode --profile``) activates one around an untimed pass and reports
seconds per phase. Phases may nest; each records its own wall time, so nested phases are
reported separately and the caller subtracts them if it wants exclusive times.

>>> with PhaseRecorder() as rec:
...     with phase("encoder"):
...         pass
>>> sorted(rec.seconds)
['encoder']
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_active: PhaseRecorder | None = None


class PhaseRecorder:
    """Accumulates wall seconds per phase name while active (one recorder at a time).

    ``sync`` runs at every phase boundary (e.g. ``torch.cuda.synchronize``), so asynchronous
    device work is charged to the phase that launched it.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.sync = sync

    def __enter__(self) -> PhaseRecorder:
        global _active
        if _active is not None:
            raise RuntimeError("a PhaseRecorder is already active")
        _active = self
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        _active = None


@contextmanager
def _timed(rec: PhaseRecorder, name: str) -> Iterator[None]:
    if rec.sync is not None:
        rec.sync()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if rec.sync is not None:
            rec.sync()
        rec.seconds[name] += time.perf_counter() - t0


@contextmanager
def _noop() -> Iterator[None]:
    yield


def phase(name: str):
    """Context manager marking a named phase; a no-op unless a recorder is active."""
    rec = _active
    return _noop() if rec is None else _timed(rec, name)


__all__ = ["PhaseRecorder", "phase"]
