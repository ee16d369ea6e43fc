"""Error types shared across casnat.

``UserError`` marks a problem the user can fix from the message alone (a missing corpus path, an
unknown config key, an unreadable checkpoint); the CLI prints it as one line without a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad user input; the message names the file, key or argument and what was expected."""


class UnsupportedModeError(UserError, ValueError):
    """A decoding mode the model has no head for (at_beam without an AT decoder, cassnat without
    the CASS-NAT decoder). A ValueError too, so callers that try modes in turn can catch it."""
