"""Error types shared across casnat.

``UserError`` marks a problem the user can fix from the message alone (a missing corpus path, an
unknown config key, an unreadable checkpoint); the CLI prints it as one line without a traceback.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """Bad user input; the message names the file, key or argument and what was expected."""


class UnsupportedModeError(UserError, ValueError):
    """A decoding mode the model has no head for (at_beam without an AT decoder, cassnat without
    the CASS-NAT decoder). A ValueError too, so callers that try modes in turn can catch it."""


_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def one_line_reason(e: BaseException, limit: int = 300) -> str:
    """An exception's message as one line of at most ``limit`` characters.

    Why not its first line: lhotse puts the cause on the lines after the first ("Reading audio
    from 'x.wav' failed. Details:" and then one line per backend with what it said), so the first
    line alone is a reason cut off at "Details:". The lines are joined instead, whitespace
    collapsed, ``<class 'pkg.mod.Name'>`` shortened to ``Name`` and lhotse's hint about an
    environment variable for stack traces dropped (the user cannot act on it here)."""
    lines = [
        ln for ln in str(e).strip().splitlines() if not ln.strip().startswith("Set LHOTSE_")
    ]
    text = " ".join(_CLASS_REPR.sub(r"\1", " ".join(lines)).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
