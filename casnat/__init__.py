"""casnat: CASS-NAT non-autoregressive speech recognition.

>>> import casnat
>>> casnat.__version__
'0.1.0'

Decoding API (imported lazily, so ``import casnat`` stays light):

>>> rec = casnat.load_model("egs/fsdd/exp/cassnat")             # doctest: +SKIP
>>> rec.transcribe(["a.wav"], mode="cassnat")[0].text          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "Recognizer", "Transcript"]


def __getattr__(name: str) -> Any:
    if name in ("load_model", "Recognizer", "Transcript"):
        from casnat import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'casnat' has no attribute {name!r}")
